"""Figures read on short stretches: their uncertainty, ACPR without the window's leakage, paired comparisons.

A DPD run scores its predistorter on a tenth of its budget, and judges its
rounds on one window of a training stretch: a few hundred to a few thousand
samples. Read there,

- every figure has a standard error (`acpr_se_db`, `evm_se_db`,
  `nmse_se_db`): the spread another stretch of the same length would give,
  by batch means (`block_terms`: the two powers of the ratio, e.g. adjacent
  and main channel, each through a channel filter, in up to `BLOCKS`
  contiguous blocks; the blocks' spread of their normalised difference over
  the square root of their count, in dB by the delta method). The test
  `test_stated_uncertainty_matches_the_spread_over_stretches` checks it
  against the spread over 40 stretches;
- ACPR is read through the output's error against its target
  (`acpr_reading`, ACLR `aclr_by_error_db`), plus the target signal's own
  adjacent power read on a long stretch of it (`OwnACPR`): the ratio a Welch
  estimate of the output reads on a long stretch, without the window's
  leakage of the main channel that floors it on a short one (about -34 dBc
  on 350 samples of a generated 200 MHz OFDM signal at 800 MS/s, against
  -55 dBc read the long way or through the error);
- two figures read on the same samples (two rounds judged on one window)
  are compared paired (`Reading.paired_se_db`): their difference varies far
  less than either figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

from hwloop.dpd.metrics import (
    BW,
    FS,
    NPERSEG,
    NR_OCCUPIED,
    _aclr_powers,
    _as_complex,
    _check_band,
    _pair,
    aclr_db,
    acpr_sides_db,
    channel_powers,
    evm_db,
)
from hwloop.dpd.signals import cplx
from hwloop.errors import ShapeError

_DB = 10.0 / np.log(10.0)  # dB per unit of relative power error (delta method)
MIN_BLOCK = 32  # samples a block of the batch-means uncertainty holds at least
BLOCKS = 8  # ... in this many blocks (fewer on a short stretch)
EDGE_TAPER = 0.05  # acpr_se_db's band filters fall off over this fraction of the channel...
EDGE_TRIM = 2.0  # ... and this many of their impulse responses' widths are cut at each end


def _band(z: np.ndarray, fs: float, lo: float, hi: float) -> np.ndarray:
    """z through an ideal filter passing lo <= f <= hi (one FFT, circular)."""
    f = np.fft.fftfreq(len(z), d=1.0 / fs)
    return np.fft.ifft(np.fft.fft(z) * ((f >= lo) & (f <= hi)))


def block_terms(num: np.ndarray, den: np.ndarray | None = None, blocks: int | None = None) -> np.ndarray:
    """Batch means of the ratio sum |num|^2 / sum |den|^2: in each of up to `BLOCKS` contiguous
    blocks, num's power over its mean minus den's over its mean (empty when too short)."""
    n = len(num)
    b = blocks or int(np.clip(n // MIN_BLOCK, 2, BLOCKS))
    if n < 2 * 2 or b < 2:
        return np.zeros(0)
    cut = n - n % b
    pn = np.mean(np.abs(num[:cut].reshape(b, -1)) ** 2, axis=1)
    d = pn / max(float(np.mean(pn)), 1e-300)
    if den is not None:
        pd = np.mean(np.abs(den[:cut].reshape(b, -1)) ** 2, axis=1)
        d = d - pd / max(float(np.mean(pd)), 1e-300)
    return d


def ratio_se_db(num: np.ndarray, den: np.ndarray | None = None, blocks: int | None = None) -> float:
    """Standard error, in dB, of 10 log10(sum |num|^2 / sum |den|^2) from the signals' powers in
    contiguous blocks (batch means, `block_terms`: the blocks' spread says how much another stretch
    of the same length would differ, heavy tails and the two powers' correlation included);
    ``den`` None: a fixed reference."""
    d = block_terms(num, den, blocks)
    return float(_DB * np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) >= 2 else float("inf")


@dataclass(frozen=True)
class Reading:
    """A figure in dB with what its uncertainty is made of (`block_terms`, times ``weight``), so two
    figures read on the same samples can be compared paired (`paired_se_db`): their difference
    varies far less from stretch to stretch than either figure does."""

    db: float
    terms: np.ndarray
    weight: float = 1.0

    @property
    def se_db(self) -> float:
        n = len(self.terms)
        return float(_DB * self.weight * np.std(self.terms, ddof=1) / np.sqrt(n)) if n >= 2 else float("inf")

    def paired_se_db(self, other: Reading) -> float:
        """Standard error of self.db - other.db when both were read on the same samples."""
        if len(self.terms) != len(other.terms) or len(self.terms) < 2:
            return float(np.hypot(self.se_db, other.se_db))
        d = self.weight * self.terms - other.weight * other.terms
        return float(_DB * np.std(d, ddof=1) / np.sqrt(len(d)))


def welch_inflation(n: int, nperseg: int = NPERSEG, window: str = "hann") -> float:
    """How much more a Welch (Hann, half overlap) band power of n samples varies than the plain
    mean power of the same samples, as a factor on the standard error: the samples' Welch weights
    W_t (each segment's squared window, summed), sqrt(n sum W^2 / (sum W)^2); 1.39 for one
    segment, near 1 for many."""
    seg = min(nperseg, n)
    w = sps.get_window(window, seg) ** 2
    weight = np.zeros(n)
    for start in range(0, n - seg + 1, seg // 2 or 1):
        weight[start : start + seg] += w
    return float(np.sqrt(n * np.sum(weight**2) / np.sum(weight) ** 2))


def _smooth_band(z: np.ndarray, fs: float, lo: float, hi: float, taper: float) -> np.ndarray:
    """z through a filter passing lo..hi, its response falling to 0 at the band's edges over
    ``taper`` Hz inside it (raised cosine): an impulse response a few fs / taper samples long."""
    f = np.fft.fftfreq(len(z), d=1.0 / fs)
    edge = np.clip(np.minimum(f - lo, hi - f) / taper, 0.0, 1.0)
    return np.fft.ifft(np.fft.fft(z) * np.sin(0.5 * np.pi * edge) ** 2)


def acpr_se_db(
    x: np.ndarray, fs: float = FS, bw: float = BW, nperseg: int = NPERSEG, spacing: float | None = None
) -> float:
    """Standard error of `acpr_db` (dB), by batch means (`ratio_se_db`) on the worse adjacent
    channel and the main channel, each the stretch through a band filter with raised-cosine edges
    (`EDGE_TAPER` of the channel), the first and last `EDGE_TRIM` x fs / taper samples, where the
    circular filter wraps the stretch's ends onto each other, left out; scaled to the Welch
    estimate's efficiency (`welch_inflation`)."""
    z = _as_complex(x)
    spacing = bw if spacing is None else spacing
    _check_band(fs, bw, spacing)
    half = bw / 2
    lower, upper = acpr_sides_db(z, fs, bw, nperseg, spacing)
    centre = spacing if upper >= lower else -spacing
    taper = EDGE_TAPER * bw
    trim = int(np.ceil(EDGE_TRIM * fs / taper))
    if len(z) < 2 * trim + 2 * MIN_BLOCK:
        return float("inf")
    adj = _smooth_band(z, fs, centre - half, centre + half, taper)[trim:-trim]
    main = _smooth_band(z, fs, -half, half, taper)[trim:-trim]
    return ratio_se_db(adj, main) * welch_inflation(len(z), nperseg)


def evm_reading(
    y: np.ndarray, u: np.ndarray, gain: complex | float | None = None, fs: float = FS, bw: float = BW
) -> Reading:
    """`evm_db` with its batch-means uncertainty (in-band error against in-band reference)."""
    yc, ref = _pair(y, u, gain)
    err, r = _band(yc - ref, fs, -bw / 2, bw / 2), _band(ref, fs, -bw / 2, bw / 2)
    return Reading(evm_db(y, u, gain, fs, bw), block_terms(err, r))


def evm_se_db(
    y: np.ndarray, u: np.ndarray, gain: complex | float | None = None, fs: float = FS, bw: float = BW
) -> float:
    """Standard error of `evm_db` (dB), by `ratio_se_db` on the in-band error and reference."""
    return evm_reading(y, u, gain, fs, bw).se_db


def nmse_se_db(y: np.ndarray, u: np.ndarray, gain: complex | float | None = None) -> float:
    """Standard error of `nmse_db` (dB), by `ratio_se_db` on the error and reference."""
    yc, ref = _pair(y, u, gain)
    return ratio_se_db(yc - ref, ref)


def acpr_reading(
    y: np.ndarray,
    ref: np.ndarray,
    fs: float = FS,
    bw: float = BW,
    own: tuple[float, float] | None = None,
    nperseg: int = NPERSEG,
) -> Reading:
    """ACPR of the output y (dBc, worse side), read through its error against the reference ref
    (the ideal output, e.g. the targets): each adjacent channel's power of y - ref, plus the
    reference signal's own adjacent power (``own``: its (lower, upper) ACPR in dBc, measured on a
    long stretch of it; None: none), over the main channel's power of y. The same ratio
    `acpr_db` reads, when ref carries no adjacent power but its own share, without the window's
    leakage of y's main channel, which dominates a short stretch's Welch estimate. Its
    uncertainty: batch means on the error's adjacent channel and y's main channel (each through
    a band filter with raised-cosine edges, the ends the circular filter wraps left out), scaled
    by the error's share of the total and the Welch estimate's efficiency."""
    yc, rc = _as_complex(y), _as_complex(ref)
    if yc.shape != rc.shape:
        raise ShapeError(f"output and reference differ in length: {yc.shape} vs {rc.shape}")
    e = yc - rc
    lo_e, _, up_e = channel_powers(e, fs, bw, nperseg)
    _, main, _ = channel_powers(yc, fs, bw, nperseg)
    if main <= 0:
        raise ShapeError("the signal has no power in the main channel: ACPR is undefined")
    shares = (0.0, 0.0) if own is None else tuple(10 ** (v / 10) for v in own)
    sides = [(p / main, s) for p, s in zip((lo_e, up_e), shares, strict=True)]
    worse = int(np.argmax([a + b for a, b in sides]))
    value = max(sum(sides[worse]), 1e-30)
    half = bw / 2
    centre = bw if worse == 1 else -bw
    taper = EDGE_TAPER * bw
    trim = min(int(np.ceil(EDGE_TRIM * fs / taper)), len(yc) // 8)  # the error's ends barely differ
    terms = np.zeros(0)
    if len(yc) - 2 * trim >= 2 * MIN_BLOCK:
        adj = _smooth_band(e, fs, centre - half, centre + half, taper)[trim : len(yc) - trim]
        mainb = _smooth_band(yc, fs, -half, half, taper)[trim : len(yc) - trim]
        terms = block_terms(adj, mainb)
    weight = welch_inflation(len(yc), nperseg) * sides[worse][0] / value
    return Reading(float(10 * np.log10(value)), terms, weight)


def acpr_by_error(
    y: np.ndarray,
    ref: np.ndarray,
    fs: float = FS,
    bw: float = BW,
    own: tuple[float, float] | None = None,
    nperseg: int = NPERSEG,
) -> tuple[float, float]:
    """(ACPR dBc, its standard error dB) of `acpr_reading`."""
    r = acpr_reading(y, ref, fs, bw, own, nperseg)
    return r.db, r.se_db


def aclr_by_error_db(
    y: np.ndarray,
    ref: np.ndarray,
    fs: float = FS,
    bw: float = BW,
    own: float | None = None,
    occupied: float = NR_OCCUPIED,
    nperseg: int = 4096,
) -> float:
    """`aclr_db` of the output y read through its error against ref, as `acpr_by_error`: the
    error's adjacent powers plus the reference signal's own share (``own``: its ACLR in dB on a
    long stretch; None: none), under y's assigned-channel power."""
    yc, rc = _as_complex(y), _as_complex(ref)
    main, _ = _aclr_powers(yc, fs, bw, occupied, nperseg)
    _, sides = _aclr_powers(yc - rc, fs, bw, occupied, nperseg)
    if main <= 0:
        raise ShapeError("the signal has no power in the assigned channel: ACLR is undefined")
    share = 0.0 if own is None else 10 ** (-own / 10)
    return float(-10 * np.log10(max(max(sides) / main + share, 1e-30)))


@dataclass(frozen=True)
class OwnACPR:
    """The target signal's own adjacent-channel power, read on a long stretch of it: what no
    output can read below, and what `acpr_by_error` adds to an output's error."""

    sides: tuple[float, float]  # (lower, upper) ACPR, dBc
    aclr_db: float

    @classmethod
    def of(cls, signal: np.ndarray, fs: float, bw: float) -> OwnACPR:
        z = np.asarray(signal)
        z = z if np.iscomplexobj(z) and z.ndim == 1 else cplx(z)
        return cls(tuple(acpr_sides_db(z, fs, bw)), aclr_db(z, fs, bw))  # type: ignore[arg-type]

    @property
    def acpr_dbc(self) -> float:
        return max(self.sides)
