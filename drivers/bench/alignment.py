"""Aligning a free-running capture of a looped ARB period with the period that was played.

The analyser starts capturing at an arbitrary sample of the looping
waveform, after the path's own delay; in the steady state its samples are
periodic with the ARB period P. So:

1. `average_periods`: the K captured periods are averaged (noise down by
   10 log10 K dB), giving one period circularly shifted by an unknown delay d;
2. `integer_delay`: the peak of the circular cross-correlation with the
   played period gives d to the nearest sample;
3. `fractional_delay`: the residual is the phase ramp across the
   cross-spectrum; the fraction f in [-1, 1] that maximises
   ``|sum_k X[k] exp(j 2 pi k f / P)|`` (the band-limited interpolation of the
   correlation's peak) is found by a bounded scalar search. A 0.3-sample
   residual left in would cap agreement near -5 dB on full-band I/Q;
4. `advance`: the period is shifted back by d exactly (a phase ramp on its
   FFT: exact for a periodic, band-limited signal);
5. `correlation`: the normalised correlation of aligned and played periods;
   below about 0.5 the capture is not of this waveform and is rejected.

The correlation peak of an amplifier with memory lies later than its
response starts (its trailing taps pull the peak), so aligning by the peak
alone would hand DPD an amplifier that answers before it is driven (a
precursor no causal model can fit: direct learning then stalls). The
calibration therefore also finds `causal_offset`: the extra advance that
leaves the least energy before lag 0 in the small-signal impulse response
(zero for a pure delay; the path's own fraction, within a few thousandths of
a sample, for the simulated amplifiers). The session adds it to every
capture's delay.

Gain and phase are not normalised here: the session keeps one complex gain
from its small-signal calibration (a per-capture normalisation would hide
the compression that DPD must see).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar


@dataclass(frozen=True)
class Alignment:
    """How one capture was aligned: total delay (samples, modulo the period) and its quality."""

    delay: float
    integer: int
    fraction: float
    correlation: float
    gain: complex  # least-squares complex gain of aligned capture on the played period
    drift: float = 0.0  # the capture's own delay estimate minus the session's (samples)


def average_periods(capture: np.ndarray, period: int) -> np.ndarray:
    """The mean of the whole periods in ``capture`` (length >= period)."""
    k = len(capture) // period
    if k < 1:
        raise ValueError(f"a capture of {len(capture)} samples holds no whole period of {period}")
    return capture[: k * period].reshape(k, period).mean(axis=0)


def _signed_bins(n: int) -> np.ndarray:
    return np.fft.fftfreq(n) * n


def integer_delay(ref: np.ndarray, period: np.ndarray) -> int:
    """Lag (0..P-1) at which ``period`` best matches ``ref`` circularly shifted."""
    r = np.fft.ifft(np.fft.fft(period) * np.conj(np.fft.fft(ref)))
    return int(np.argmax(np.abs(r)))


def fractional_delay(ref: np.ndarray, period: np.ndarray, lag: int) -> float:
    """The fraction f in [-1, 1] such that ``period`` is best ``ref`` delayed by lag + f."""
    n = len(ref)
    k = _signed_bins(n)
    x = np.fft.fft(period) * np.conj(np.fft.fft(ref)) * np.exp(2j * np.pi * k * lag / n)

    def neg_peak(f: float) -> float:
        return -float(np.abs(np.sum(x * np.exp(2j * np.pi * k * f / n))))

    res = minimize_scalar(neg_peak, bounds=(-1.0, 1.0), method="bounded", options={"xatol": 1e-7})
    return float(res.x)


def advance(period: np.ndarray, delay: float) -> np.ndarray:
    """``period`` shifted earlier by ``delay`` samples, circularly (band-limited, exact for integers)."""
    n = len(period)
    k = _signed_bins(n)
    if n % 2 == 0:
        k[n // 2] = 0.0  # the Nyquist bin has no sign: leave it unrotated so a real signal stays real
    return np.fft.ifft(np.fft.fft(period) * np.exp(2j * np.pi * k * delay / n))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """|<a, b>| / (|a| |b|), 0 for an all-zero input."""
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(abs(np.vdot(b, a)) / den) if den > 0 else 0.0


def _precursor(ref: np.ndarray, y: np.ndarray, pre: int, post: int) -> float:
    """Share of the least-squares impulse response (lags -pre..post, circular) before lag 0."""
    basis = np.stack([np.roll(ref, k) for k in range(-pre, post + 1)], axis=1)
    h, *_ = np.linalg.lstsq(basis, y, rcond=None)
    total = float(np.sum(np.abs(h) ** 2))
    return float(np.sum(np.abs(h[:pre]) ** 2)) / total if total > 0 else 0.0


def causal_offset(ref: np.ndarray, aligned: np.ndarray, *, pre: int = 4, post: int = 24) -> float:
    """The advance in [-0.5, 0.5] after which the small-signal response has least energy before lag 0."""
    res = minimize_scalar(
        lambda e: _precursor(ref, advance(aligned, e), pre, post),
        bounds=(-0.5, 0.5),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(res.x)


def align(
    ref: np.ndarray,
    capture: np.ndarray,
    *,
    session_fraction: float | None = None,
    offset: float = 0.0,
) -> tuple[np.ndarray, Alignment]:
    """The captured period aligned onto ``ref`` (one ARB period), and how.

    With ``session_fraction`` (the calibration's fractional delay, fixed for
    the session: the capture start moves by whole samples only), the capture
    takes the whole-sample shift whose interpolated correlation at that
    fraction is highest, so per-capture estimation noise (and the bias a
    compressing amplifier puts into the peak) never jitters the answers;
    ``drift`` says how far the capture's own estimate lay from it (flagged by
    the caller). ``offset`` (the calibration's
    `causal_offset`) is added to the delay.
    """
    ref = np.asarray(ref, complex)
    avg = average_periods(np.asarray(capture, complex), len(ref))
    lag = integer_delay(ref, avg)
    frac = fractional_delay(ref, avg, lag)
    delay = lag + frac
    drift = 0.0
    if session_fraction is not None:
        n = len(ref)
        k = _signed_bins(n)
        x = np.fft.fft(avg) * np.conj(np.fft.fft(ref))
        base = round(delay - session_fraction)
        cands = [base - 1, base, base + 1]
        score = [abs(np.sum(x * np.exp(2j * np.pi * k * (c + session_fraction) / n))) for c in cands]
        chosen = cands[int(np.argmax(score))] + session_fraction
        drift = float((delay - chosen + n / 2) % n - n / 2)
        delay = chosen
    delay = (delay + offset) % len(ref)
    out = advance(avg, delay)
    energy = float(np.vdot(ref, ref).real)
    gain = complex(np.vdot(ref, out) / energy) if energy > 0 else 0j
    whole = int(np.floor(delay))
    return out, Alignment(delay, whole, delay - whole, correlation(out, ref), gain, drift)
