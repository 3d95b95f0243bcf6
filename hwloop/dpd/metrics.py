"""Linearity figures of a power amplifier's output: ACPR, EVM and NMSE, in decibels.

Conventions, chosen to match how OpenDPD and most DPD papers report them:

- ACPR (adjacent channel power ratio, dBc): Welch power spectral density of
  the complex baseband output (Hann window, ``nperseg`` samples, half
  overlap, two-sided, no detrending); the main channel is the band
  ``|f| <= bw/2``; each adjacent channel has the same bandwidth, centred one
  channel spacing (``spacing``, default ``bw``) above and below. The ratio of
  each adjacent channel's power to the main channel's; the WORSE (larger)
  side is reported, since a transmitter must meet its mask on both sides.
  It needs no reference signal and is invariant to gain and delay. On a
  stretch shorter than a few Welch segments the window leaks the main
  channel into the adjacent ones (on 350 samples of a 200 MHz OFDM signal
  at 800 MS/s, a floor near -34 dBc); `hwloop.dpd.readings.acpr_reading`
  reads the same ratio without that.
- EVM and NMSE compare the output y with the ideal linear output ``G * u``
  (u the target signal, G the linear gain). ``gain=None`` fits G as the
  least-squares complex gain of y on u, so only the distortion is scored,
  not a gain or phase offset the next stage would calibrate away; pass a
  number to score against a fixed gain (e.g. the gain a DPD was trained
  to). EVM here is the RMS error over the RMS reference, both in the main
  channel only (y is band-limited to ``|f| <= bw/2`` first, as a receiver's
  channel filter would), in dB; NMSE is the same ratio over the whole band
  (out-of-band distortion counts too).
- Uncertainty and short stretches: `hwloop.dpd.readings`.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

from hwloop.dpd.signals import cplx
from hwloop.errors import ShapeError, UsageError

FS = 800e6  # DPA_200MHz sample rate, Hz
BW = 200e6  # DPA_200MHz channel bandwidth, Hz
NPERSEG = 2048


def _as_complex(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x)
    return arr.astype(np.complex128) if np.iscomplexobj(arr) and arr.ndim == 1 else cplx(arr)


def _check_band(fs: float, bw: float, spacing: float) -> None:
    if not (fs > 0 and bw > 0 and spacing >= bw):
        raise UsageError(
            f"need fs > 0, bw > 0 and spacing >= bw, got fs={fs:g}, bw={bw:g}, spacing={spacing:g}"
        )
    if spacing + bw / 2 > fs / 2 + 1e-9 * fs:
        raise UsageError(
            f"adjacent channels at +-{spacing:g} Hz of width {bw:g} Hz do not fit at fs = {fs:g} Hz"
        )


def check_band(fs: float, bw: float, spacing: float | None = None) -> None:
    """A usage error unless the adjacent channels (at +-spacing, default bw) fit at fs."""
    _check_band(fs, bw, bw if spacing is None else spacing)


def psd(x: np.ndarray, fs: float = FS, nperseg: int = NPERSEG) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Welch PSD (Hann, half overlap), frequencies sorted ascending."""
    z = _as_complex(x)
    seg = min(nperseg, len(z))
    f, p = sps.welch(z, fs=fs, window="hann", nperseg=seg, return_onesided=False, detrend=False)
    order = np.argsort(f)
    return f[order], p[order]


def channel_powers(
    x: np.ndarray, fs: float = FS, bw: float = BW, nperseg: int = NPERSEG, spacing: float | None = None
) -> tuple[float, float, float]:
    """(lower adjacent, main, upper adjacent) channel powers from the Welch PSD."""
    spacing = bw if spacing is None else spacing
    _check_band(fs, bw, spacing)
    f, p = psd(x, fs, nperseg)

    half = bw / 2
    main = float(np.sum(p[np.abs(f) <= half]))  # closed: the edge bins belong to the main channel
    upper = float(np.sum(p[(f > spacing - half) & (f <= spacing + half)]))
    lower = float(np.sum(p[(f < -spacing + half) & (f >= -spacing - half)]))
    return lower, main, upper


def acpr_sides_db(
    x: np.ndarray, fs: float = FS, bw: float = BW, nperseg: int = NPERSEG, spacing: float | None = None
) -> tuple[float, float]:
    """(lower, upper) adjacent-channel power over main-channel power, dBc."""
    lower, main, upper = channel_powers(x, fs, bw, nperseg, spacing)
    if main <= 0:
        raise ShapeError("the signal has no power in the main channel: ACPR is undefined")
    floor = 1e-30 * main
    return 10 * np.log10(max(lower, floor) / main), 10 * np.log10(max(upper, floor) / main)


def acpr_db(
    x: np.ndarray, fs: float = FS, bw: float = BW, nperseg: int = NPERSEG, spacing: float | None = None
) -> float:
    """ACPR in dBc, the worse of the two adjacent channels."""
    return float(max(acpr_sides_db(x, fs, bw, nperseg, spacing)))


def linear_gain(y: np.ndarray, u: np.ndarray) -> complex:
    """Least-squares complex gain G minimising sum |y - G u|^2."""
    yc, uc = _as_complex(y), _as_complex(u)
    den = np.vdot(uc, uc).real
    if den == 0:
        raise ShapeError("the reference signal is all zeros")
    return complex(np.vdot(uc, yc) / den)


def _ratio_db(num: float, den: float) -> float:
    """10 log10(num / den); -inf for an exact match."""
    return float("-inf") if num == 0.0 else float(10 * np.log10(num / den))


def _pair(y: np.ndarray, u: np.ndarray, gain: complex | float | None) -> tuple[np.ndarray, np.ndarray]:
    yc, uc = _as_complex(y), _as_complex(u)
    if yc.shape != uc.shape:
        raise ShapeError(f"output and target differ in length: {yc.shape} vs {uc.shape}")
    g = linear_gain(yc, uc) if gain is None else complex(gain)
    return yc, g * uc


def nmse_db(y: np.ndarray, u: np.ndarray, gain: complex | float | None = None) -> float:
    """10 log10(sum |y - G u|^2 / sum |G u|^2) over the whole band."""
    yc, ref = _pair(y, u, gain)
    return _ratio_db(float(np.sum(np.abs(yc - ref) ** 2)), float(np.sum(np.abs(ref) ** 2)))


def _in_band(z: np.ndarray, fs: float, bw: float) -> np.ndarray:
    mask = np.abs(np.fft.fftfreq(len(z), d=1.0 / fs)) <= bw / 2
    return np.fft.ifft(np.fft.fft(z) * mask)


def evm_db(
    y: np.ndarray, u: np.ndarray, gain: complex | float | None = None, fs: float = FS, bw: float = BW
) -> float:
    """RMS error over RMS reference inside the main channel, in dB (20 log10 of the ratio)."""
    yc, ref = _pair(y, u, gain)
    _check_band(fs, bw, bw)
    err, r = _in_band(yc - ref, fs, bw), _in_band(ref, fs, bw)
    return _ratio_db(float(np.sum(np.abs(err) ** 2)), float(np.sum(np.abs(r) ** 2)))


def dpd_report(
    y: np.ndarray,
    u: np.ndarray,
    *,
    fs: float = FS,
    bw: float = BW,
    nperseg: int = NPERSEG,
    gain: complex | float | None = None,
) -> dict[str, float]:
    """``acpr_dbc``, ``evm_db`` and ``nmse_db`` of output y for target u, rounded for JSON."""
    return {
        "acpr_dbc": round(acpr_db(y, fs, bw, nperseg), 3),
        "evm_db": round(evm_db(y, u, gain, fs, bw), 3),
        "nmse_db": round(nmse_db(y, u, gain), 3),
    }


NR_OCCUPIED = 0.9828  # transmission bandwidth over channel bandwidth, NR 100 MHz at 30 kHz (273 RB)


def _aclr_powers(
    x: np.ndarray, fs: float, bw: float, occupied: float, nperseg: int
) -> tuple[float, list[float]]:
    if not 0 < occupied <= 1:
        raise UsageError(f"occupied fraction must be in (0, 1], got {occupied}")
    _check_band(fs, bw, bw)
    f, p = psd(x, fs, nperseg)
    half = occupied * bw / 2
    return float(np.sum(p[np.abs(f) <= half])), [float(np.sum(p[np.abs(f - c) <= half])) for c in (-bw, bw)]


def aclr_db(
    x: np.ndarray, fs: float = FS, bw: float = BW, occupied: float = NR_OCCUPIED, nperseg: int = 4096
) -> float:
    """ACLR as 3GPP TS 38.104 (6.6.3) defines it for NR, in dB: the power through a square filter
    of the transmission bandwidth (``occupied`` times the channel bandwidth ``bw``) on the assigned
    channel over the power through the same filter on an adjacent channel, centred ``bw`` away;
    the worse side. Positive, larger is better (unlike ACPR's dBc: about -ACPR, on a narrower
    filter that leaves the guard bands out)."""
    main, sides = _aclr_powers(x, fs, bw, occupied, nperseg)
    if main <= 0:
        raise ShapeError("the signal has no power in the assigned channel: ACLR is undefined")
    return float(10 * np.log10(main / max(max(sides), 1e-30 * main)))
