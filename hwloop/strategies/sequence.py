"""Devices with memory: a tapped-delay inverse trained by ILA on sequences.

Reset the device, send long random in-range input sequences (rows
consecutive in time), build the tapped features from the device's OUTPUT
sequence and regress onto the input sequence (see `hwloop.tapped`).
Iterative rounds re-query at the current inverse's proposals for reachable
target sequences and refit on everything. Every sequence starts with a
reset, which the metered device records in the query log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hwloop.errors import UsageError
from hwloop.metered import MeteredDevice
from hwloop.models import FitConfig, fit_regression
from hwloop.strategies import Context, Outcome
from hwloop.tapped import SequenceInverse, build_tapped_inverse, tapped

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
    inverse: SequenceInverse
    curve: list[float]
    queries: int
    x: list[np.ndarray]  # the input sequences sent, one per reset
    y: list[np.ndarray]  # the device's answers


def _pairs(
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
) -> SequenceILAResult:
    """Spend ``queries`` device rows on (iterative) ILA over sequences, each sent after a reset."""
    cfg = cfg or SequenceILAConfig()
    info = dev.info
    if queries < 64:
        raise UsageError(f"sequence ILA needs at least 64 queries, got {queries}")
    if not info.stateful:
        log.info(
            "%s is not stateful: a tapped-delay inverse still works, with taps it does not need", info.name
        )
    rng = np.random.default_rng(seed)
    lo, hi = info.low_array, info.high_array
    n_first = queries if cfg.rounds <= 1 else max(64, int(queries * cfg.first_fraction))
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    used = 0
    for n in _segments(n_first, cfg.seq_len):
        x = info.uniform(rng, n)
        dev.reset()
        ys.append(dev.query(x, "train"))
        xs.append(x)
        used += n
    feats, targets = _pairs(xs, ys, cfg.depth, cfg.lookahead)
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
    span = hi - lo
    first_ys = list(ys)
    longest = max(len(y) for y in first_ys)
    for r in range(1, cfg.rounds):
        left = queries - used
        n_round = left // (cfg.rounds - r)
        for n in _segments(n_round, min(cfg.seq_len, longest)):
            # A reachable target sequence: (a stretch of) a device answer from the first round.
            pool = [y for y in first_ys if len(y) >= n]
            t = pool[int(rng.integers(len(pool)))]
            start = int(rng.integers(0, len(t) - n + 1))
            t = t[start : start + n]
            x = (
                inv.apply(t)
                + rng.normal(0.0, cfg.jitter, size=(len(t), info.in_dim)).astype(np.float32) * span
            )
            x = np.clip(x, lo, hi).astype(np.float32)
            dev.reset()
            ys.append(dev.query(x, "train"))
            xs.append(x)
            used += len(x)
        feats, targets = _pairs(xs, ys, cfg.depth, cfg.lookahead)
        log.info("iterative sequence ILA round %d: refitting on %d pairs", r, len(feats))
        refit = FitConfig(cfg.refit_steps, cfg.fit.batch, cfg.fit.lr * 0.25, cfg.fit.lr_final)
        curve += fit_regression(inv.model, feats, targets, refit, seed=seed + r, on_step=on_step)
    return SequenceILAResult(inv, curve, used, xs, ys)


def train(ctx: Context) -> Outcome:
    """Sequence ILA: plain for ``ila``; one iterative refinement for the others."""
    cfg = SequenceILAConfig(
        depth=ctx.memory_depth,
        rounds=1 if ctx.requested == "ila" else 2,
        fit=FitConfig(steps=2 * ctx.fit_steps),
        refit_steps=max(1, ctx.fit_steps // 2),
    )
    res = train_sequence_ila(ctx.dev, ctx.dev.remaining, cfg, seed=ctx.seed, on_step=ctx.on_step)
    return Outcome(
        res.inverse.model,
        res.curve,
        details={"memory_depth": cfg.depth, "sequence_rounds": cfg.rounds},
        memory={"depth": cfg.depth, "lookahead": cfg.lookahead},
    )
