"""Time alignment of a predistorter: the amplifier's delay, and how many leading taps its inverse needs.

An amplifier between real converters delays the signal by a fraction of a
sample, and its linear response may not be minimum phase (a zero outside
the unit circle). Then no causal predistorter inverts it: the drive of
sample n needs the targets after n. Indirect learning shows it the worst
way: the post-inverse, fitted from the answer back to the drive, still
predicts held-out rows well (the oversampled signal lets a causal filter
guess the next samples), but copied in front of the amplifier it leaves the
output error tens of dB above that fit.

What a DPD system does, done from the first round's answer y to the bare
signal x, with no query spent:

1. `estimate_delay`: the amplifier's delay, integer and fractional, as the
   lag that best aligns y with x in the channel (the peak of their
   band-limited cross-correlation, on a grid of 0.01 sample).
2. `choose_lookahead`: leading taps L (`hwloop.dpd.gmp.GMPConfig.lookahead`)
   from 0 up to the delay rounded up plus `EXTRA`. For each L the
   post-inverse is fitted on the round, copied in front, and its output
   predicted through a forward GMP of the amplifier fitted on the same round
   (`hwloop.dpd.direct.fit_gmp_surrogate`; an amplifier is causal, so its
   forward model needs no leading taps). The smallest L whose predicted
   error is within `TOLERANCE_DB` of the best is kept: leading taps cost a
   latency of L samples, and where the inverse is causal they only hurt (a
   post-inverse that reads the answer's next samples is not the
   pre-inverse). On the held-out APA_200MHz model the prediction matched the
   next round's measured NMSE within 0.9 dB for every L from 0 to 5.
   Where the delay is within `ALIGNED` of zero there is no search: L = 0.
   There the prediction is the weak part: on the minimum-phase `pa_wh` at
   6 dB back-off it favoured spare leading taps by up to 3 dB, and the
   predistorters with them lost up to 9 dB ACPR (benchmarks/matrix.py). A
   response that is not minimum phase yet reads a delay of about zero is
   not told apart by this rule (``dpd_alignment`` shows the delay).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hwloop.dpd.direct import SURROGATE_CFG, fit_gmp_surrogate
from hwloop.dpd.gmp import GMP, GMPConfig, Stretch, features, peak_limit
from hwloop.dpd.metrics import acpr_db, nmse_db
from hwloop.errors import ShapeError

log = logging.getLogger(__name__)

EXTRA = 3  # leading taps tried beyond the estimated delay (a zero outside the unit circle needs more)
TOLERANCE_DB = 0.5  # a larger lookahead must be predicted better than this to be chosen
MIN_LAGGING = 4  # taps of the predistorter's memory that stay at or behind sample n
ALIGNED = 0.1  # a delay this close to zero (samples): L = 0, no search
DELAY_SPAN = (-8.0, 32.0)  # lags searched by `estimate_delay`, samples


def estimate_delay(
    x: np.ndarray, y: np.ndarray, fs: float, bw: float, span: tuple[float, float] = DELAY_SPAN
) -> float:
    """Delay of the answer y behind the drive x (complex, same length), in samples: the lag that
    maximises |sum_f Y(f) X*(f) e^{j 2 pi f lag}| over the channel |f| <= bw / 2, on a 0.01-sample
    grid within ``span`` (a band-limited cross-correlation, read between its samples)."""
    x, y = np.asarray(x, complex), np.asarray(y, complex)
    if x.shape != y.shape or x.ndim != 1:
        raise ShapeError(
            f"estimate_delay: drive and answer must be equal 1-D sequences, got {x.shape}, {y.shape}"
        )
    f = np.fft.fftfreq(len(x))
    band = np.abs(f) <= 0.5 * bw / fs
    cross = (np.fft.fft(y) * np.conj(np.fft.fft(x)))[band]
    coarse = np.arange(span[0], span[1] + 0.5, 0.5)
    best = coarse[np.argmax(np.abs(np.exp(2j * np.pi * np.outer(coarse, f[band])) @ cross))]
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.01)
    return round(float(fine[np.argmax(np.abs(np.exp(2j * np.pi * np.outer(fine, f[band])) @ cross))]), 2)


def delayed(z: np.ndarray, delay: float) -> np.ndarray:
    """z (complex) delayed by ``delay`` samples (negative: advanced), band-limited and circular:
    the samples within ``|delay|`` of the ends take their values from the other end."""
    f = np.fft.fftfreq(len(z))
    return np.fft.ifft(np.fft.fft(np.asarray(z, complex)) * np.exp(-2j * np.pi * f * delay))


@dataclass
class Alignment:
    """The estimated delay, the leading taps chosen, and what each candidate was predicted to do."""

    delay: float
    lookahead: int
    candidates: list[dict] = field(default_factory=list)
    surrogate_nmse_db: float | None = None
    surrogate_cfg: GMPConfig = SURROGATE_CFG

    def info(self, fs: float) -> dict:
        return {
            "delay_samples": self.delay,
            "lookahead": self.lookahead,
            "latency_samples": self.lookahead,
            "latency_s": float(f"{self.lookahead / fs:.4g}"),
            "surrogate_nmse_db": self.surrogate_nmse_db,
            "candidates": self.candidates,
        }


def surrogate_config(delay: float) -> GMPConfig:
    """The forward model's GMP: `SURROGATE_CFG` with its memory stretched over the delay."""
    extra = max(0, math.ceil(delay))
    return GMPConfig(**{**SURROGATE_CFG.to_dict(), "memory": SURROGATE_CFG.memory + extra})


def choose_lookahead(
    stretch: Stretch,
    x: np.ndarray,
    y: np.ndarray,
    cfg: GMPConfig,
    fit_post: Callable[[GMPConfig], np.ndarray],
    *,
    peak: float,
    gain: complex,
    fs: float,
    bw: float,
) -> Alignment:
    """Leading taps for the predistorter ``cfg`` from the drive x and answer y (complex) of a round
    on ``stretch``. ``fit_post(cfg_L)`` returns the post-inverse's coefficients in the basis with L
    leading taps, fitted on that round; each is predicted as a pre-inverse through a forward GMP
    fitted on the round, and scored by NMSE against G u on the stretch's steady rows."""
    delay = estimate_delay(x, y, fs, bw)
    top = max(0, min(math.ceil(max(delay, 0.0)) + EXTRA, cfg.memory - MIN_LAGGING))
    sur_cfg = surrogate_config(delay)
    surrogate, rf = fit_gmp_surrogate([features(x, sur_cfg)], [y], sur_cfg)
    u, main = stretch.u, stretch.longest()
    out = Alignment(delay, 0, surrogate_nmse_db=round(rf.holdout_nmse_db, 2), surrogate_cfg=sur_cfg)
    scores = []
    looks = [0] if abs(delay) <= ALIGNED else list(range(top + 1))
    for look in looks:
        c = cfg.with_lookahead(look)
        rows = stretch.valid & stretch.tails(c.future)
        drive = peak_limit(stretch.basis(c) @ fit_post(c), peak)
        pred = GMP(sur_cfg, surrogate.coeffs)(drive)
        score = nmse_db(pred[rows], gain * u[rows], 1.0)
        scores.append(score)
        out.candidates.append(
            {
                "lookahead": look,
                "predicted_nmse_db": round(score, 2),
                "predicted_acpr_dbc": round(acpr_db(pred[main], fs, bw), 2),
            }
        )
    best = min(scores)
    out.lookahead = next(look for look, s in zip(looks, scores, strict=True) if s <= best + TOLERANCE_DB)
    log.info("alignment: delay %.2f samples, %d leading taps (%s)", delay, out.lookahead, out.candidates)
    return out
