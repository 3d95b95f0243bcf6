"""Crest factor reduction (CFR) as a step of the signal path, before the predistorter.

A predistorter must drive the amplifier harder where the amplifier
compresses, so the signal's rare peaks decide how far the drive goes; an
engineer lowers the peak-to-average power ratio (PAPR) first and tunes CFR
and DPD together, trading the CFR's in-band error (EVM) for drive headroom.
Two classical methods, on complex baseband:

- ``clip``: iterative clipping and filtering (Armstrong 2002): clip the
  envelope at the target PAPR, remove what the clipping spread outside the
  channel with an FFT mask, repeat; the result stays band-limited.
- ``window``: peak windowing (van Nee and de Wild 1998): every sample above
  the threshold asks for the attenuation that brings it down; a Hann
  window spreads each request over its neighbours and the smallest factor
  wins, so the envelope is scaled smoothly instead of cut.

`apply_cfr` returns the new signal and what it cost: PAPR before and after,
the EVM of the CFR'd signal against the original (in band), its ACPR.
"""

from __future__ import annotations

import logging

import numpy as np

from hwloop.dpd.metrics import acpr_db, evm_db
from hwloop.dpd.signals import cplx, iq, papr_db
from hwloop.errors import UsageError

log = logging.getLogger(__name__)

METHODS = ("none", "clip", "window")
CLIP_ITERS = 8
WINDOW = 33  # peak window length, samples (about 8 samples a side per channel symbol at 4x oversampling)


def _limit(z: np.ndarray, papr: float) -> float:
    return float(np.sqrt(np.mean(np.abs(z) ** 2) * 10 ** (papr / 10.0)))


def clip_filter(z: np.ndarray, papr: float, fs: float, bw: float, iters: int = CLIP_ITERS) -> np.ndarray:
    """Iterative clipping and filtering to ``papr`` dB, the spectrum kept inside |f| <= bw / 2."""
    band = np.abs(np.fft.fftfreq(len(z), 1.0 / fs)) <= bw / 2
    out = np.asarray(z, complex)
    for _ in range(iters):
        limit = _limit(out, papr)
        mag = np.abs(out)
        out = np.where(mag > limit, out * limit / np.maximum(mag, 1e-300), out)
        out = np.fft.ifft(np.fft.fft(out) * band)
    return out


def peak_window(z: np.ndarray, papr: float, window: int = WINDOW, iters: int = 3) -> np.ndarray:
    """Peak windowing to ``papr`` dB: a smooth gain under 1 around every peak above the threshold."""
    if window < 3 or window % 2 == 0:
        raise UsageError(f"the peak window must be an odd length >= 3, got {window}")
    out = np.asarray(z, complex)
    w = np.hanning(window + 2)[1:-1]
    for _ in range(iters):  # the mean power drops as peaks fall: aim again at the new threshold
        limit = _limit(out, papr)
        mag = np.abs(out)
        need = np.where(mag > limit, 1.0 - limit / np.maximum(mag, 1e-300), 0.0)  # attenuation asked
        # Each request shaped by the window around its sample (circularly); the largest one wins.
        spread = np.max([np.roll(need, k - window // 2) * w[k] for k in range(window)], axis=0)
        out = out * (1.0 - spread)
    return out


def apply_cfr(t: np.ndarray, method: str, papr: float, fs: float, bw: float) -> tuple[np.ndarray, dict]:
    """The signal t (n, 2) after CFR, and the figures of what it cost (for metrics.json)."""
    if method not in METHODS:
        raise UsageError(f"--cfr must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "none":
        return t, {"cfr": "none"}
    if not papr > 0:
        raise UsageError(f"--cfr-papr must be positive, got {papr}")
    z = cplx(t)
    out = clip_filter(z, papr, fs, bw) if method == "clip" else peak_window(z, papr)
    info = {
        "cfr": method,
        "cfr_papr_target_db": papr,
        "cfr_papr_before_db": round(papr_db(t), 3),
        "cfr_papr_after_db": round(papr_db(iq(out)), 3),
        "cfr_evm_db": round(evm_db(out, z, 1.0, fs, bw), 3),
        "cfr_acpr_dbc": round(acpr_db(out, fs, bw), 3),
    }
    log.info("CFR: %s", info)
    return iq(out).astype(np.float32), info
