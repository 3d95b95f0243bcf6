"""Digital predistortion of a signal: a GMP predistorter, by indirect or direct learning.

The targets are the signal's samples (times ``--gain``), in the device's
output units. Each round sends one stretch of them after a reset: four
windows spread evenly over the signal (one centred on its largest sample),
back to back, so a fit sees the signal's statistics and its whole amplitude
range (`training_stretch`); the first `GUARD` samples after each joint are
left out of every fit and score.

- ``ila`` / ``iila``: indirect learning (`hwloop.dpd.ila.indirect_learning`),
  three rounds on stretches of a third of the budget (at most the whole
  signal): drive the current predistorter (first a scaled identity), fit the
  GMP post-inverse from the answer back to the drive, copy it in front. Each
  fit is a conditioned least squares with its ridge chosen on a fifth of the
  rows held out (`hwloop.dpd.fitting.ridge_fit`). After the first round the
  amplifier's delay is estimated and the predistorter's leading taps chosen
  (`hwloop.dpd.align`): 0 where its inverse is causal, more where its linear
  response has a fractional delay or a zero outside the unit circle, at a
  latency of that many samples (``dpd_latency_samples``).
- ``surrogate`` / ``auto``: the amplifier in the loop. `WARM_SHARE` of the
  budget goes to the indirect warm start in `ILA_ITERATIONS` rounds (from
  `WARM_FULL` queries on, `WARM_SHARE_FULL`) in the textbook 92-term GMP;
  the rest to
  `rounds_for` rounds of direct learning (`hwloop.dpd.direct.direct_learning`)
  in the richer `DIRECT_CFG` GMP (256 terms, when the stretch has 16 samples
  a term) that the warm start is lifted into: a Levenberg-Marquardt step on
  the measured output error through a GMP surrogate, its damping chosen on
  held-out rows, each round judged on a window no step was fitted on by the
  field's figures (`hwloop.dpd.judge`: ACPR, ACLR, EVM, with their standard
  errors). ``surrogate`` keeps the last round; ``auto`` the round
  `keep_round` keeps: ACPR first, then EVM, each up to its uncertainty, the
  latest of the rounds tied with the best.

Rounds are numbered from 1 across both: indirect learning's in
``dpd_rounds``, then direct learning's in ``dpd_direct_rounds`` (the first of
them measures the warm start); ``dpd_kept_round`` is the number of the round
whose predistorter was kept (None for ``ila``: its last fit is kept, never
measured in training). `keep_round` and `judge` are the round-keeping rule
for any strategy that measures predistorters in rounds.

The predistorter takes a whole target sequence and returns its drive from a
reset, state carried across chunks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from hwloop import progress
from hwloop.dpd.direct import SURROGATE_CFG, direct_learning
from hwloop.dpd.fitting import spread_windows
from hwloop.dpd.gmp import GMPConfig, GMPInverse, Stretch
from hwloop.dpd.ila import indirect_learning
from hwloop.dpd.judge import Judgement, judge, keep_round
from hwloop.dpd.scoring import bare_signal_figures
from hwloop.dpd.signals import cplx
from hwloop.errors import UsageError
from hwloop.strategies.base import Context, Outcome

log = logging.getLogger(__name__)
__all__ = ["Judgement", "fit_predistorter", "judge", "keep_round", "rounds_for", "train", "training_stretch"]

ILA_ITERATIONS = 3
MIN_STRETCH = 256
DIRECT_STRETCH = 8192  # direct learning uses rounds of at least this many samples...
MAX_ROUNDS = 9  # ...and at most this many direct rounds
WARM_SHARE = 0.6  # the indirect-learning warm start's share of the budget, in ILA_ITERATIONS rounds...
WARM_FULL = 40_000  # ...or from this budget on...
WARM_SHARE_FULL = 0.8  # ...with this share (on the held-out APA model ILA gained 0.5 dB ACPR from 10k to 16k)
# Direct learning targets the pre-inverse itself, so a richer GMP pays there (orders to 7, 16 taps,
# 256 terms: 0.8 and 1.4 dB ACPR over the textbook 92 on pa_wh and pa_gmp, BENCHMARKS f); it needs
# 16 samples a term.
DIRECT_CFG = GMPConfig(order=7, memory=16, cross_order=5, cross_memory=6, lag=6)
SAMPLES_PER_TERM = 16
WINDOWS = 4  # a round's stretch is this many windows of the signal...
MIN_WINDOW = 512  # ...of at least this many samples
GUARD = 16  # samples after each joint left out of fits and scores (the amplifier's memory of the last)
KEEP_RULE = (
    "judged on a held-out window: ACPR first, then EVM, each tied within twice the standard error of "
    "the rounds' paired difference; the latest of the rounds tied with the best kept"
)


def rounds_for(budget: int, signal_len: int, rounds: int | None = None) -> tuple[int, int]:
    """(rounds, stretch length) for direct learning's ``budget``: as many rounds as the budget
    allows up to MAX_ROUNDS with stretches of DIRECT_STRETCH samples or more, at least two (or
    ``rounds``); a signal shorter than the stretch that would give shortens the stretch, not the
    rounds."""
    if rounds is None:
        rounds = int(np.clip(budget // DIRECT_STRETCH, 2, MAX_ROUNDS))
    if rounds < 2:
        raise UsageError(f"direct learning needs at least 2 rounds, got {rounds}")
    return rounds, min(signal_len, budget // rounds)


def training_stretch(t: np.ndarray, n: int, windows: int = WINDOWS) -> Stretch:
    """The n targets a round sends: ``windows`` windows spread evenly over the signal, so a fit sees
    its statistics rather than one stretch of it, one of them centred on the signal's largest
    sample, so it also sees the whole amplitude range (a polynomial extrapolates badly above the
    envelopes it was fitted on). Windows shorter than `MIN_WINDOW` are merged into fewer. Direct
    learning asks for one window more: the one its rounds are judged on, which no step sees."""
    z = cplx(np.asarray(t, np.float64))
    count = int(np.clip(n // MIN_WINDOW, 1, windows))
    windows = spread_windows(len(z), n // count, count, must=int(np.argmax(np.abs(z))))
    return Stretch(z, windows, guard=GUARD if count > 1 else 0)


def latency(lookahead: int, fs: float) -> dict:
    """The predistorter's leading taps and the latency they cost when it streams."""
    return {
        "dpd_lookahead": int(lookahead),
        "dpd_latency_samples": int(lookahead),
        "dpd_latency_s": float(f"{lookahead / fs:.4g}"),
    }


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
    lookahead: int | str = "auto",
) -> tuple[GMPInverse, dict]:
    """A GMP predistorter for the target signal t (n, 2) from at most ``budget`` queries.

    ``query_sequence(x)`` resets the amplifier and returns its answer to the
    whole drive x. ``direct=False``: the textbook indirect learning, three
    rounds of a third of the budget. ``direct=True``: `rounds_for` rounds, an
    indirect warm start, then direct learning keeping the ``keep`` round.
    ``gain`` is the target gain G (1.0: t is already in output units; "peak"
    etc. as in `hwloop.dpd.gmp.resolve_gain`). ``cfg`` None: `GMPConfig` defaults,
    or `DIRECT_CFG` for direct learning when the stretch has 16 samples a
    term. ``rounds`` overrides `rounds_for`'s choice (benchmarks).
    ``lookahead``: the predistorter's leading taps, ``"auto"`` chosen after
    the first round (`hwloop.dpd.align`). Returns the predistorter and its
    figures for metrics.json.
    """
    ila_cfg = cfg or GMPConfig()
    if direct:
        full = budget >= WARM_FULL
        warm = ILA_ITERATIONS
        n_warm = min(len(t), int((WARM_SHARE_FULL if full else WARM_SHARE) * budget) // warm)
        rounds, n = rounds_for(budget - warm * n_warm, len(t), rounds)
        direct_cfg = cfg
        if cfg is None:
            direct_cfg = DIRECT_CFG if n >= SAMPLES_PER_TERM * len(DIRECT_CFG.terms()) else ila_cfg
    else:
        warm, n_warm = ILA_ITERATIONS, min(len(t), budget // ILA_ITERATIONS)
        n = n_warm
    if min(n, n_warm) < MIN_STRETCH:
        raise UsageError(
            f"--queries {budget} leaves {min(n, n_warm)} samples a round; predistortion needs at least "
            f"{MIN_STRETCH}"
        )
    stretch = training_stretch(t, n_warm)
    start_gain = max(float(np.max(np.abs(stretch.u))) / peak, 1e-6)
    res = indirect_learning(
        query_sequence,
        stretch,
        ila_cfg,
        gain=gain,
        start_gain=start_gain,
        iterations=warm,
        peak=peak,
        fs=fs,
        bw=bw,
        lookahead=lookahead,
    )
    ila_cfg = res.inverse.model.cfg  # with the leading taps chosen
    details: dict = {
        "dpd_method": "indirect",
        "dpd_rounds": res.rounds,
        "dpd_stretch": stretch.spans(),
        "dpd_stretch_guard": stretch.guard,
        "gmp": ila_cfg.to_dict(),
        "inverse_kind": "gmp",
        **latency(ila_cfg.lookahead, fs),
    }
    if res.alignment is not None:
        details["dpd_alignment"] = res.alignment.info(fs)
    main = stretch.longest()  # round 1 drove the bare signal scaled to the peak: named as such
    x0 = cplx(res.pairs[0][0])
    bare = bare_signal_figures(cplx(res.pairs[0][1])[main], stretch.u[main], fs, bw, skip=0)
    details["dpd_no_dpd_peak"] = {
        **{k: bare[k] for k in ("acpr_dbc", "aclr_db", "evm_db", "nmse_db", "delay_samples")},
        "samples": main.stop - main.start,
        "drive": "the bare signal scaled to the peak (training round 1), not at the predistorter's power",
        "drive_rms": round(float(np.sqrt(np.mean(np.abs(x0) ** 2))), 4),
    }
    if not direct:
        details["dpd_kept_round"] = None  # the last fit is the predistorter; no round measured it
        return res.inverse, details
    assert direct_cfg is not None
    direct_cfg = direct_cfg.with_lookahead(ila_cfg.lookahead)
    start = GMPInverse(res.inverse.model.lift(direct_cfg), peak=peak, gain=res.inverse.gain)
    stretch = training_stretch(t, n, WINDOWS + 1)  # four to fit the steps on, one to judge them
    out = direct_learning(
        query_sequence,
        stretch,
        start,
        measurements=rounds,
        pairs=res.pairs,
        keep=keep,
        fs=fs,
        bw=bw,
        surrogate_cfg=SURROGATE_CFG if res.alignment is None else res.alignment.surrogate_cfg,
        first_round=len(res.rounds) + 1,
    )
    number = [r["round"] for r in out.rounds]
    details["gmp"] = direct_cfg.to_dict()
    details["dpd_warm_gmp"] = ila_cfg.to_dict()
    details["dpd_direct_stretch"] = stretch.spans()
    details.update(
        dpd_method="indirect warm start, then direct learning through a GMP surrogate",
        dpd_direct_rounds=out.rounds,
        dpd_kept_round=number[out.kept_round],
        dpd_keep=keep,
        dpd_keep_rule=KEEP_RULE if keep == "best" else "the last round",
        dpd_surrogate_nmse_db=out.surrogate_nmse_db,
        dpd_surrogate_ridge=out.surrogate_ridge,
        dpd_damping=[float(f"{v:.3g}") for v in out.damping],
        dpd_gain_bound=out.gain_bound,
        dpd_steps_shrunk=out.shrunk,
        dpd_tied_with_best=[number[i] for i in out.tied_with_best],
        dpd_surrogate_gmp=(SURROGATE_CFG if res.alignment is None else res.alignment.surrogate_cfg).to_dict(),
        device_weight=1.0,
    )
    return out.inverse, details


def train(ctx: Context) -> Outcome:
    _check(ctx)
    dev, t = ctx.dev, ctx.signal
    assert dev is not None and t is not None
    peak = float(np.min(np.abs(np.concatenate([dev.info.low_array, dev.info.high_array]))))

    fitting: list[progress.Task] = []  # progress: between two measured rounds the fits run

    def query_sequence(x: np.ndarray) -> np.ndarray:
        while fitting:
            fitting.pop().close()
        dev.reset()
        y = dev.query(np.asarray(x, np.float32), "train")
        progress.count("rounds", 1, unit="measured")
        fitting.append(progress.task("fit", label="least-squares fits"))
        return y

    inverse, details = fit_predistorter(
        query_sequence,
        t,
        dev.remaining,
        direct=ctx.settings.requested in ("auto", "surrogate"),
        keep="best" if ctx.settings.requested == "auto" else "last",
        peak=peak,
        cfg=None if dev.info.stateful else GMPConfig(memory=1, cross_memory=1, lag=0),
        lookahead="auto" if dev.info.stateful else 0,
        fs=ctx.settings.fs,
        bw=ctx.settings.bw,
    )
    while fitting:
        fitting.pop().close()
    inverse.info = dev.info.to_dict()
    return Outcome(inverse, [], details=details, memory={"kind": "gmp"})
