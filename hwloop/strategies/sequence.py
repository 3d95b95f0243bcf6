"""Devices with memory: a tapped-delay or recurrent inverse trained by ILA on sequences.

Reset the device, send long random in-range input sequences (rows
consecutive in time, `collect_uniform`), build the tapped features from the
device's OUTPUT sequence and regress onto the input sequence (see
`hwloop.inverses.tapped`). Iterative rounds re-query at the current inverse's
proposals for reachable target sequences (`collect_at_inverse`) and refit on
everything. Every sequence starts with a reset, which the metered device
records in the query log. With ``--inverse gru`` the same queries train a
GRU on (output sequence -> input sequence) instead (`hwloop.inverses.gru`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hwloop.errors import UsageError
from hwloop.inverses.gru import GRUInverse, WindowConfig, build_gru_model, fit_gru
from hwloop.inverses.models import FitConfig, fit_regression
from hwloop.inverses.tapped import SequenceInverse, build_tapped_inverse, tapped
from hwloop.metered import MeteredDevice
from hwloop.strategies.base import Context, Outcome

log = logging.getLogger(__name__)


def _segments(total: int, seq_len: int) -> list[int]:
    n_full, rest = divmod(total, seq_len)
    return [seq_len] * n_full + ([rest] if rest >= 16 else [])


@dataclass(frozen=True)
class SequenceILAConfig:
    """Sequence ILA settings; ``rounds`` > 1 adds iterative refinements."""

    depth: int = 5
    lookahead: int = 0
    seq_len: int = 4000  # rows per sequence sent after a reset
    rounds: int = 1
    first_fraction: float = 0.5
    jitter: float = 0.02  # exploration noise around M(t), in units of the range
    hidden: tuple[int, ...] = (64, 64)
    # Taps widen the regression; it needs more steps than the static recipe's 3000.
    fit: FitConfig = field(default_factory=lambda: FitConfig(steps=16000))
    refit_steps: int = 4000


@dataclass
class SequenceILAResult:
    inverse: SequenceInverse | GRUInverse
    curve: list[float]
    queries: int
    x: list[np.ndarray]  # the input sequences sent, one per reset
    y: list[np.ndarray]  # the device's answers


def send_each_after_reset(
    dev: MeteredDevice, xs: list[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Send every input sequence from a reset device; returns the inputs and the answers."""
    ys = []
    for x in xs:
        dev.reset()
        ys.append(dev.query(x, "train"))
    return xs, ys


def collect_uniform(
    dev: MeteredDevice, total: int, seq_len: int, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Random in-range input sequences of ``seq_len`` rows (``total`` in all), each sent after a
    reset; returns the inputs and the device's answers, one array per reset."""
    return send_each_after_reset(dev, [dev.info.uniform(rng, n) for n in _segments(total, seq_len)])


def collect_at_inverse(
    dev: MeteredDevice,
    apply: Callable[[np.ndarray], np.ndarray],
    pool_ys: list[np.ndarray],
    total: int,
    seq_len: int,
    jitter: float,
    rng: np.random.Generator,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Iterative ILA's queries: the inverse's drive (jittered) for reachable target sequences,
    stretches of the answers in ``pool_ys``, each sent after a reset."""
    info = dev.info
    lo, hi = info.low_array, info.high_array
    longest = max(len(y) for y in pool_ys)
    xs: list[np.ndarray] = []
    for n in _segments(total, min(seq_len, longest)):
        pool = [y for y in pool_ys if len(y) >= n]
        t = pool[int(rng.integers(len(pool)))]
        start = int(rng.integers(0, len(t) - n + 1))
        t = t[start : start + n]
        noise = rng.normal(0.0, jitter, size=(len(t), info.in_dim)).astype(np.float32)
        xs.append(np.clip(apply(t) + noise * (hi - lo), lo, hi).astype(np.float32))
    return send_each_after_reset(dev, xs)


def collect_signal(
    dev: MeteredDevice, signal: np.ndarray, total: int, seq_len: int, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Stretches of the signal scaled so its largest sample sits on the safe range's inscribed
    circle (an identity predistorter), each sent after a reset: indirect learning's first round."""
    info = dev.info
    peak = float(np.min(np.abs(np.concatenate([info.low_array, info.high_array]))))
    scale = peak / max(float(np.max(np.hypot(signal[:, 0], signal[:, 1]))), 1e-12)
    xs = []
    for n in _segments(total, min(seq_len, len(signal))):
        start = int(rng.integers(0, len(signal) - n + 1))
        xs.append((signal[start : start + n] * scale).astype(np.float32))
    return send_each_after_reset(dev, xs)


def first_round(
    dev: MeteredDevice,
    queries: int,
    rounds: int,
    first_fraction: float,
    seq_len: int,
    rng: np.random.Generator,
    signal: np.ndarray | None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Sequence ILA's first queries: uniform random sequences, or with a signal its scaled
    stretches. Returns the inputs, the answers and the pool of target sequences later rounds
    draw from (the answers themselves, reachable by construction, or the signal)."""
    if queries < 64:
        raise UsageError(f"sequence ILA needs at least 64 queries, got {queries}")
    n_first = queries if rounds <= 1 else max(64, int(queries * first_fraction))
    if signal is None:
        xs, ys = collect_uniform(dev, n_first, seq_len, rng)
        return xs, ys, list(ys)
    xs, ys = collect_signal(dev, signal, n_first, seq_len, rng)
    return xs, ys, [np.asarray(signal, np.float32)]


def refine_rounds(
    dev: MeteredDevice,
    apply: Callable[[np.ndarray], np.ndarray],
    pool: list[np.ndarray],
    xs: list[np.ndarray],
    ys: list[np.ndarray],
    queries: int,
    rounds: int,
    seq_len: int,
    jitter: float,
    rng: np.random.Generator,
    refit: Callable[[int], list[float]],
) -> list[float]:
    """Iterative sequence ILA's rounds 1..rounds-1: each spends its share of what ``queries`` leaves
    at the inverse's proposals (`collect_at_inverse`), appends them to ``xs``/``ys`` and calls
    ``refit(round)``, which refits the inverse on everything; returns the refits' curves."""
    curve: list[float] = []
    for r in range(1, rounds):
        used = sum(len(x) for x in xs)
        new_x, new_y = collect_at_inverse(
            dev, apply, pool, (queries - used) // (rounds - r), seq_len, jitter, rng
        )
        xs += new_x
        ys += new_y
        curve += refit(r)
    return curve


def tapped_pairs(
    xs: list[np.ndarray], ys: list[np.ndarray], depth: int, lookahead: int
) -> tuple[np.ndarray, np.ndarray]:
    """Tapped features of each output sequence (taps never cross a reset) and the inputs."""
    feats = np.concatenate([tapped(y, depth, lookahead) for y in ys])
    return feats, np.concatenate(xs)


def train_sequence_ila(
    dev: MeteredDevice,
    queries: int,
    cfg: SequenceILAConfig | None = None,
    *,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
    signal: np.ndarray | None = None,
) -> SequenceILAResult:
    """Spend ``queries`` device rows on (iterative) ILA over sequences, each sent after a reset;
    with a ``signal`` (targets, output units) its stretches are the sequences (`first_round`)."""
    cfg = cfg or SequenceILAConfig()
    info = dev.info
    if not info.stateful:
        log.info(
            "%s is not stateful: a tapped-delay inverse still works, with taps it does not need", info.name
        )
    rng = np.random.default_rng(seed)
    lo, hi = info.low_array, info.high_array
    xs, ys, pool = first_round(dev, queries, cfg.rounds, cfg.first_fraction, cfg.seq_len, rng, signal)
    feats, targets = tapped_pairs(xs, ys, cfg.depth, cfg.lookahead)
    inv = build_tapped_inverse(
        np.concatenate(ys),
        targets,
        lo,
        hi,
        depth=cfg.depth,
        lookahead=cfg.lookahead,
        hidden=cfg.hidden,
        seed=seed,
    )
    log.info("sequence ILA: fitting depth %d on %d pairs", cfg.depth, len(feats))
    curve = fit_regression(inv.model, feats, targets, cfg.fit, seed=seed, on_step=on_step)

    def refit(r: int) -> list[float]:
        feats, targets = tapped_pairs(xs, ys, cfg.depth, cfg.lookahead)
        log.info("iterative sequence ILA round %d: refitting on %d pairs", r, len(feats))
        fit = FitConfig(cfg.refit_steps, cfg.fit.batch, cfg.fit.lr * 0.25, cfg.fit.lr_final)
        return fit_regression(inv.model, feats, targets, fit, seed=seed + r, on_step=on_step)

    curve += refine_rounds(
        dev, inv.apply, pool, xs, ys, queries, cfg.rounds, cfg.seq_len, cfg.jitter, rng, refit
    )
    return SequenceILAResult(inv, curve, sum(len(x) for x in xs), xs, ys)


@dataclass(frozen=True)
class SequenceGRUConfig:
    """Sequence ILA for the recurrent inverse; ``rounds`` > 1 adds iterative refinements."""

    units: int = 32
    # Shorter than the tapped recipe's sequences: every reset adds a start-up transient to learn from
    # (a tapped inverse gets it from its zero taps; a GRU only from examples).
    seq_len: int = 500
    rounds: int = 1
    first_fraction: float = 0.5
    jitter: float = 0.02
    steps: int = 4000
    refit_steps: int = 1000
    lr: float = 5e-3
    lr_final: float = 5e-5
    window: WindowConfig = field(default_factory=WindowConfig)


def train_sequence_gru(
    dev: MeteredDevice,
    queries: int,
    cfg: SequenceGRUConfig | None = None,
    *,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
    signal: np.ndarray | None = None,
) -> SequenceILAResult:
    """Sequence ILA with a GRU inverse: the same queries as `train_sequence_ila`, the inputs
    regressed on the whole output sequence by truncated backpropagation through time."""
    cfg = cfg or SequenceGRUConfig()
    info = dev.info
    rng = np.random.default_rng(seed)
    xs, ys, pool = first_round(dev, queries, cfg.rounds, cfg.first_fraction, cfg.seq_len, rng, signal)
    used = sum(len(x) for x in xs)
    model = build_gru_model(ys, xs, units=cfg.units, seed=seed)
    inv = GRUInverse(model, info.low_array, info.high_array, info.to_dict())
    log.info("sequence ILA (GRU %d): fitting on %d sequences, %d rows", cfg.units, len(xs), used)
    curve = fit_gru(model, ys, xs, cfg.steps, cfg.lr, cfg.lr_final, cfg.window, seed=seed, on_step=on_step)

    def refit(r: int) -> list[float]:
        log.info("iterative sequence ILA (GRU) round %d: refitting on %d sequences", r, len(xs))
        return fit_gru(
            model,
            ys,
            xs,
            cfg.refit_steps,
            cfg.lr * 0.25,
            cfg.lr_final,
            cfg.window,
            seed=seed + r,
            on_step=on_step,
        )

    curve += refine_rounds(
        dev, inv.apply, pool, xs, ys, queries, cfg.rounds, cfg.seq_len, cfg.jitter, rng, refit
    )
    return SequenceILAResult(inv, curve, sum(len(x) for x in xs), xs, ys)


SIGNAL_ROUNDS = 3  # with a signal, indirect learning's three rounds, a third of the budget each


def train(ctx: Context) -> Outcome:
    """Sequence ILA: plain for ``ila``; one iterative refinement for the others; with a signal,
    three rounds on its stretches for every strategy (indirect learning, as the GMP's).

    The inverse is the tapped-delay MLP, or with ``ctx.settings.inverse == "gru"`` the recurrent one."""
    signal = ctx.signal
    rounds = SIGNAL_ROUNDS if signal is not None else 1 if ctx.settings.requested == "ila" else 2
    first = 1.0 / rounds if signal is not None else 0.5
    extra = {} if signal is None else {"sequence_signal": True}
    if ctx.settings.inverse == "gru":
        gcfg = SequenceGRUConfig(
            rounds=rounds,
            first_fraction=first,
            steps=ctx.settings.fit_steps,
            refit_steps=max(1, ctx.settings.fit_steps // 4),
        )
        res = train_sequence_gru(
            ctx.dev, ctx.dev.remaining, gcfg, seed=ctx.settings.seed, on_step=ctx.on_step, signal=signal
        )
        return Outcome(
            res.inverse,
            res.curve,
            details={"inverse_kind": "gru", "gru_units": gcfg.units, "sequence_rounds": rounds, **extra},
            memory={"kind": "gru", "units": gcfg.units},
        )
    cfg = SequenceILAConfig(
        depth=ctx.settings.memory_depth,
        rounds=rounds,
        first_fraction=first,
        fit=FitConfig(steps=2 * ctx.settings.fit_steps),
        refit_steps=max(1, ctx.settings.fit_steps // 2),
    )
    res = train_sequence_ila(
        ctx.dev, ctx.dev.remaining, cfg, seed=ctx.settings.seed, on_step=ctx.on_step, signal=signal
    )
    return Outcome(
        res.inverse.model,
        res.curve,
        details={"inverse_kind": "tapped", "memory_depth": cfg.depth, "sequence_rounds": cfg.rounds, **extra},
        memory={"depth": cfg.depth, "lookahead": cfg.lookahead},
    )
