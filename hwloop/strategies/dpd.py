"""Digital predistortion of a signal: a GMP predistorter, by indirect or direct learning.

The targets are the signal's samples (times ``--gain``), in the device's
output units. A stretch of them is sent once per round, each time after a
reset; each round is one whole sequence of device queries.

- ``ila`` / ``iila``: the textbook method. The stretch is a third of the
  budget; three rounds of indirect learning (`hwloop.dpd.gmp.indirect_learning`):
  drive the current predistorter (first a scaled identity), fit the
  least-squares GMP post-inverse from the answer back to the drive, copy it in
  front. The last fit is the predistorter.
- ``surrogate`` / ``auto``: the amplifier in the loop. The budget is split into
  `rounds_for` rounds of a shorter stretch (11 rounds of 4,545 samples at
  50,000 queries: more rounds did more than longer stretches, BENCHMARKS f).
  Indirect learning warms up (two rounds, one on small budgets); then direct
  learning (`hwloop.dpd.direct.direct_learning`) measures the amplifier's
  answer to the predistorter's drive and takes a Gauss-Newton step on the
  measured output error through a GMP surrogate fitted on every sequence
  measured so far. ``surrogate`` keeps the last step; ``auto`` keeps the
  round whose measured error on the stretch was lowest, which is the
  indirect-learning warm start when no step helped (``dpd_kept_round`` 0).
  With 16 samples a term in the stretch, the predistorter is the richer
  `DIRECT_CFG` GMP (256 terms against the textbook 92).

The stretch is centred on the signal's largest sample, so every fit sees the
whole amplitude range. The predistorter takes a whole target sequence and returns its drive from a
reset, state carried across chunks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from hwloop.dpd.direct import SURROGATE_CFG, direct_learning
from hwloop.dpd.gmp import GMPConfig, GMPInverse, indirect_learning
from hwloop.errors import UsageError
from hwloop.strategies.base import Context, Outcome

log = logging.getLogger(__name__)

ILA_ITERATIONS = 3
MIN_STRETCH = 256
DIRECT_STRETCH = 4096  # direct learning uses rounds of at least this many samples...
MAX_ROUNDS = 11  # ...and at most this many rounds (2 indirect + 9 direct)
# Direct learning targets the pre-inverse itself, so a richer GMP pays there (orders to 7, 16 taps,
# 256 terms: 0.8 and 1.4 dB ACPR over the textbook 92 on pa_wh and pa_gmp, BENCHMARKS f); it needs
# 16 samples a term.
DIRECT_CFG = GMPConfig(order=7, memory=16, cross_order=5, cross_memory=6, lag=6)
SAMPLES_PER_TERM = 16


def rounds_for(budget: int, signal_len: int, rounds: int | None = None) -> tuple[int, int]:
    """(rounds, stretch length) for direct learning: as many rounds as the budget allows up to
    MAX_ROUNDS with stretches of DIRECT_STRETCH samples or more, at least three (or ``rounds``);
    a signal shorter than the stretch that would give shortens the stretch, not the rounds."""
    if rounds is None:
        rounds = int(np.clip(budget // DIRECT_STRETCH, 3, MAX_ROUNDS))
    if rounds < 2:
        raise UsageError(f"direct learning needs at least 2 rounds, got {rounds}")
    return rounds, min(signal_len, budget // rounds)


def _stretch_start(t: np.ndarray, n: int) -> int:
    """Where the training stretch of n samples starts: centred on the signal's largest sample, so
    the fit sees the whole amplitude range the predistorter will be asked for (a polynomial
    extrapolates badly above the envelopes it was fitted on)."""
    peak_at = int(np.argmax(np.hypot(t[:, 0], t[:, 1])))
    return int(np.clip(peak_at - n // 2, 0, len(t) - n))


def _check(ctx: Context) -> None:
    dev = ctx.dev
    if ctx.signal is None or dev is None:
        raise UsageError("predistortion needs --signal and a device")
    if (dev.info.in_dim, dev.info.out_dim) != (2, 2):
        raise UsageError(
            f"--signal needs an I/Q device (2 -> 2); {dev.info.name} is "
            f"{dev.info.in_dim} -> {dev.info.out_dim}"
        )


def fit_predistorter(
    query_sequence: Callable[[np.ndarray], np.ndarray],
    t: np.ndarray,
    budget: int,
    *,
    direct: bool,
    keep: str = "best",
    peak: float = 1.0,
    cfg: GMPConfig | None = None,
    gain: str | float = 1.0,
    fs: float = 800e6,
    bw: float = 200e6,
    rounds: int | None = None,
) -> tuple[GMPInverse, dict]:
    """A GMP predistorter for the target signal t (n, 2) from at most ``budget`` queries.

    ``query_sequence(x)`` resets the amplifier and returns its answer to the
    whole drive x. ``direct=False``: the textbook indirect learning, three
    rounds of a third of the budget. ``direct=True``: `rounds_for` rounds, an
    indirect warm start, then direct learning keeping the ``keep`` round.
    ``gain`` is the target gain G (1.0: t is already in output units; "peak"
    etc. as in `hwloop.dpd.gmp.resolve_gain`). ``cfg`` None: `GMPConfig` defaults,
    or `DIRECT_CFG` for direct learning when the stretch has 16 samples a
    term. ``rounds`` overrides `rounds_for`'s choice (benchmarks). Returns
    the predistorter and its figures for metrics.json.
    """
    if direct:
        rounds, n = rounds_for(budget, len(t), rounds)
        warm = 2 if rounds >= 5 else 1
        if cfg is None and n >= SAMPLES_PER_TERM * len(DIRECT_CFG.terms()):
            cfg = DIRECT_CFG
    else:
        rounds, n = ILA_ITERATIONS, min(len(t), budget // ILA_ITERATIONS)
        warm = ILA_ITERATIONS
    if n < MIN_STRETCH:
        raise UsageError(
            f"--queries {budget} leaves {n} samples a round; predistortion needs at least {MIN_STRETCH}"
        )
    cfg = cfg or GMPConfig()
    start = _stretch_start(t, n)
    stretch = np.asarray(t[start : start + n], np.float64)
    start_gain = max(float(np.max(np.hypot(stretch[:, 0], stretch[:, 1]))) / peak, 1e-6)
    res = indirect_learning(
        query_sequence,
        stretch,
        cfg,
        gain=gain,
        start_gain=start_gain,
        iterations=warm,
        peak=peak,
        fs=fs,
        bw=bw,
    )
    details: dict = {
        "dpd_method": "indirect",
        "dpd_rounds": res.rounds,
        "dpd_stretch": [start, start + n],
        "gmp": cfg.to_dict(),
        "inverse_kind": "gmp",
    }
    if not direct:
        return res.inverse, details
    out = direct_learning(
        query_sequence,
        stretch,
        res.inverse,
        measurements=rounds - warm,
        pairs=res.pairs,
        keep=keep,
        fs=fs,
        bw=bw,
    )
    details.update(
        dpd_method="indirect warm start, then direct learning through a GMP surrogate",
        dpd_direct_rounds=out.rounds,
        dpd_kept_round=out.kept_round,
        dpd_keep=keep,
        dpd_surrogate_nmse_db=out.surrogate_nmse_db,
        dpd_surrogate_gmp=SURROGATE_CFG.to_dict(),
        device_weight=1.0,
    )
    return out.inverse, details


def train(ctx: Context) -> Outcome:
    _check(ctx)
    dev, t = ctx.dev, ctx.signal
    assert dev is not None and t is not None
    peak = float(np.min(np.abs(np.concatenate([dev.info.low_array, dev.info.high_array]))))

    def query_sequence(x: np.ndarray) -> np.ndarray:
        dev.reset()
        return dev.query(np.asarray(x, np.float32), "train")

    inverse, details = fit_predistorter(
        query_sequence,
        t,
        dev.remaining,
        direct=ctx.settings.requested in ("auto", "surrogate"),
        keep="best" if ctx.settings.requested == "auto" else "last",
        peak=peak,
        cfg=None if dev.info.stateful else GMPConfig(memory=1, cross_memory=1, lag=0),
        fs=ctx.settings.fs,
        bw=ctx.settings.bw,
    )
    inverse.info = dev.info.to_dict()
    return Outcome(inverse, [], details=details, memory={"kind": "gmp"})
