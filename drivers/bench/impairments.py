"""What a transceiver adds to the bench's alignment: IQ image, carrier offset, DC offset, capture phase.

A radio's receiver is not an analyser: its I and Q branches differ a little
in gain and phase (an image of the signal, y = mu r + nu conj(r)), its RX LO
is not exactly the TX LO (a residual carrier offset turns the capture's phase
at a steady rate, and the capture starts at an unknown phase), and its mixer
leaks a DC offset. `clean_capture` undoes them around the shared alignment
(`alignment.align`), in the order they happened, backwards:

1. the image, with the session's widely linear correction ``c = y + w conj(y)``
   (`fit_image` finds w once, in the calibration: the conj(x) taps of a
   widely linear fit divided by the conjugated direct taps, the ratio an
   RX imbalance gives; image rejection reported before and after);
2. the session's DC offset (from the calibration's fit);
3. the carrier offset: the looped period makes the capture periodic, so the
   phase between consecutive periods is 2 pi f P / fs whatever the
   amplifier does (`carrier_offset`); unwrapped around the calibration's
   estimate, it holds up to fs / (2 P_cal), 3.5 kHz for a 4,352-sample
   calibration at 30.72 MS/s, with a period of any length; the capture is
   turned back by it, sample by sample;
4. alignment (integer and fractional delay, averaging over the periods:
   `alignment.align`, the same as the instrument bench's);
5. what DC is left, from the end of the guard (the amplifier's input has
   been zero there for half a guard);
6. the capture's phase (the carrier offset makes it new on every capture):
   the least-squares phase against the session's gain over the samples where
   the drive is small (below ``SMALL`` of its peak), where the amplifier is
   linear, so its AM/PM at large drive is kept, as the session gain keeps
   its compression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwloop.drivers.bench.alignment import Alignment, advance, align

SMALL = 0.3  # drive magnitude, relative to the period's peak, below which the amplifier is linear
MIN_SMALL = 64  # fewer small samples than this: the phase comes from all of them
RIDGE = 1e-5  # of the mean diagonal of the widely linear fit's normal equations


@dataclass(frozen=True)
class ImageFit:
    """A widely linear fit of a capture on its drive: direct taps h, image taps q, DC."""

    w: complex  # the correction c = y + w conj(y)
    irr_db: float  # image rejection before correction, dB
    dc: complex


def derotate(y: np.ndarray, omega: float) -> np.ndarray:
    """``y`` turned back by ``omega`` rad per sample, from its first sample."""
    return y * np.exp(-1j * omega * np.arange(len(y)))


def carrier_offset(y: np.ndarray, period: int, around: float | None = None) -> float:
    """The residual carrier offset (rad per sample) of a capture of whole looped periods.

    With ``around`` (rad/sample, the calibration's), the per-period phase is
    unwrapped to the 2 pi multiple nearest to it."""
    k = len(y) // period
    if k < 2:
        return 0.0 if around is None else around
    p = y[: k * period].reshape(k, period)
    step = float(np.angle(np.sum(np.conj(p[:-1]) * p[1:])))
    if around is not None:
        step += 2 * math.pi * round((around * period - step) / (2 * math.pi))
    return step / period


def _taps(ref: np.ndarray, pre: int, post: int) -> np.ndarray:
    return np.stack([np.roll(ref, m) for m in range(-pre, post + 1)], axis=1)


def fit_image(ref: np.ndarray, capture: np.ndarray, omega: float, delay: float, *, pre: int = 4,
              post: int = 24) -> ImageFit:  # fmt: skip
    """Widely linear fit of a whole capture (its own carrier offset ``omega``, the drive delayed by
    ``delay`` samples): ``y = e^{j w n} (h * x) + e^{-j w n} (q * conj x) + dc``."""
    n = len(capture)
    k = n // len(ref)
    x = np.tile(advance(ref, -delay), k)[:n]
    rot = np.exp(1j * omega * np.arange(n))
    direct = _taps(x, pre, post) * rot[:, None]
    image = np.conj(_taps(x, pre, post)) * np.conj(rot)[:, None]
    a = np.concatenate([direct, image, np.ones((n, 1))], axis=1)
    ah = a.conj().T
    gram = ah @ a  # normal equations: 59 unknowns, thousands of rows
    # A band-limited drive leaves long tap sets nearly collinear (filters that pass only where it has
    # no power): a light ridge keeps those directions from soaking up noise into the image taps.
    ridge = RIDGE * np.trace(gram).real / len(gram)
    coef = np.linalg.solve(gram + ridge * np.eye(len(gram)), ah @ capture)
    m = pre + post + 1
    h, q, dc = coef[:m], coef[m : 2 * m], complex(coef[-1])
    hh = float(np.sum(np.abs(h) ** 2))
    kk = complex(np.sum(q * h) / hh) if hh > 0 else 0j  # q = k conj(h) for an RX imbalance
    irr = -20 * math.log10(max(abs(kk), 1e-12))
    return ImageFit(-kk, irr, dc)


def correct_image(y: np.ndarray, w: complex) -> np.ndarray:
    return y + w * np.conj(y)


def guard_dc(aligned: np.ndarray, guard: int) -> complex:
    """The mean of the guard's second half (zero drive for half a guard), or 0 for a short guard."""
    if guard < 32:
        return 0j
    return complex(np.mean(aligned[guard // 2 : guard - 4]))


def capture_phase(aligned: np.ndarray, ref: np.ndarray, gain: complex, guard: int) -> float:
    """The capture's phase against ``gain`` (rad), from the samples of small drive after the guard."""
    x, y = ref[guard:], aligned[guard:]
    mag = np.abs(x)
    small = mag < SMALL * mag.max() if len(mag) and mag.max() > 0 else np.zeros(len(x), bool)
    if small.sum() < MIN_SMALL:
        small = np.ones(len(x), bool)
    return float(np.angle(np.vdot(gain * x[small], y[small])))


@dataclass(frozen=True)
class Cleaned:
    aligned: np.ndarray  # the period, aligned onto the drive, image, DC, offset and phase removed
    alignment: Alignment
    omega: float  # carrier offset, rad per sample
    phase: float  # the capture's phase, rad
    dc: complex  # DC left after the session's, removed


def clean_capture(
    ref: np.ndarray,
    capture: np.ndarray,
    *,
    w: complex,
    dc: complex,
    omega: float | None,
    gain: complex | None,
    guard: int,
    session_fraction: float | None = None,
    offset: float = 0.0,
) -> Cleaned:
    """Steps 1-6 of the module's docstring on one capture (complex ADC units); ``gain`` None: no
    phase correction (the calibration's own capture, whose phase defines the session's)."""
    y = correct_image(np.asarray(capture, complex), w) - dc
    om = carrier_offset(y, len(ref), omega)
    aligned, a = align(ref, derotate(y, om), session_fraction=session_fraction, offset=offset)
    rest = guard_dc(aligned, guard)
    aligned = aligned - rest
    phase = 0.0 if gain is None else capture_phase(aligned, ref, gain, guard)
    if phase:
        aligned = aligned * np.exp(-1j * phase)
    return Cleaned(aligned, a, om, phase, rest)
