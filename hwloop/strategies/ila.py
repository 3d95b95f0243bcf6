"""Inverse modelling: the indirect learning architecture (ILA), plain and iterative.

Plain ILA spends the budget on inputs spread uniformly over the safe range
and fits M on the pairs (F(x) -> x). Iterative ILA spends half that way,
then re-queries the device at the current proposals M(t) for reachable
targets t and refits on everything: the new pairs sit where the inverse
actually operates, which closes most of the remaining gap on mild
non-linearities. Both are biased when F is not one-to-one or its outputs
are very noisy; the surrogate method is for those.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np

from hwloop.inverses.models import FitConfig, build_regressor, fit_regression
from hwloop.metered import MeteredDevice
from hwloop.strategies.base import Context, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ILAConfig:
    """Budget split and fit settings for (iterative) ILA."""

    rounds: int = 1  # 1: plain ILA; >1: iterative ILA with rounds-1 refinements
    first_fraction: float = 0.5  # share of the budget spent uniformly when iterative
    jitter: float = 0.02  # relative exploration noise around M(t), in units of the range
    fit: FitConfig = field(default_factory=FitConfig)
    refit_steps: int = 1500


@dataclass
class ILAResult:
    model: keras.Model
    curve: list[float]
    x: np.ndarray  # every pair the fit used, for a surrogate to reuse
    y: np.ndarray


def inverse_mask(mask: np.ndarray | None) -> np.ndarray | None:
    """A device connection mask (in_dim, out_dim) read backwards, for the inverse.

    Exact when the mask splits the device into independent channel groups
    (block structure): then input i of the device is recovered from outputs
    of its own group only.
    """
    return None if mask is None else np.asarray(mask).T


def train_ila(
    dev: MeteredDevice,
    cfg: ILAConfig,
    *,
    seed: int,
    spend: int | None = None,
    prior: tuple[np.ndarray, np.ndarray] | None = None,
    mask: np.ndarray | None = None,
    on_step: Callable[[int, float], None] | None = None,
    first: tuple[np.ndarray, np.ndarray] | None = None,
    rng: np.random.Generator | None = None,
) -> ILAResult:
    """Spend ``spend`` training queries (default: all that remain) on (iterative) ILA.

    ``prior`` pairs, measured before this run, are fitted along with the new ones.
    ``first``: the uniform stage's pairs, already measured by the caller (they
    count within ``spend``); otherwise it is drawn and measured here. ``rng``:
    the generator that drew them, to go on with (default: a new one from ``seed``).
    """
    rng = rng if rng is not None else np.random.default_rng(seed)
    budget = dev.remaining if spend is None else min(spend, dev.remaining)
    start_remaining = dev.remaining
    if budget < 16:
        raise ValueError(f"ILA needs at least 16 training queries, {budget} left")
    n_first = budget if cfg.rounds <= 1 else max(16, int(budget * cfg.first_fraction))
    if first is not None:  # spent already: what is left of ``spend`` goes to the refinements
        x, y = first
        budget = dev.remaining if spend is None else max(0, min(spend - len(x), dev.remaining))
    else:
        x = dev.info.uniform(rng, n_first)
        y = dev.query(x, "train")
    if prior is not None:  # pairs measured earlier (another run, a data file) join the fit
        x, y = np.concatenate([prior[0], x]), np.concatenate([prior[1], y])
    model = build_regressor(y, x, seed=seed, name="inverse", mask=inverse_mask(mask))
    log.info("ILA: fitting on %d uniform pairs", len(x))
    curve = fit_regression(model, y, x, cfg.fit, seed=seed, on_step=on_step)
    left = budget - (start_remaining - dev.remaining)
    x, y, more = refine(dev, model, (x, y), cfg, rng, spend=left, seed=seed, on_step=on_step)
    return ILAResult(model, curve + more, x, y)


def refine(
    dev: MeteredDevice,
    model: keras.Model,
    pairs: tuple[np.ndarray, np.ndarray],
    cfg: ILAConfig,
    rng: np.random.Generator,
    *,
    spend: int,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
    first_round: int = 1,
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Iterative ILA's refinements: ``cfg.rounds - first_round`` rounds sharing ``spend`` queries,
    each asking the device at M(t) (jittered) for targets t drawn from the answers so far and
    refitting M on every pair, at a quarter of the learning rate. Returns all pairs and the curve."""
    x, y = pairs
    start = dev.remaining
    span = dev.info.high_array - dev.info.low_array
    curve: list[float] = []
    for r in range(first_round, cfg.rounds):
        n = (spend - (start - dev.remaining)) // (cfg.rounds - r)
        if n < 1:
            break
        targets = y[rng.choice(len(y), size=n, replace=True)]
        proposal = np.array(model(targets), dtype=np.float32)
        proposal += rng.normal(0.0, cfg.jitter, size=proposal.shape).astype(np.float32) * span
        x_new = dev.safe(proposal)
        y_new = dev.query(x_new, "train")
        x, y = np.concatenate([x, x_new]), np.concatenate([y, y_new])
        log.info("iterative ILA round %d: refitting on %d pairs", r, len(x))
        refit = FitConfig(cfg.refit_steps, cfg.fit.batch, cfg.fit.lr * 0.25, cfg.fit.lr_final)
        curve += fit_regression(model, y, x, refit, seed=seed + r, on_step=on_step)
    return x, y, curve


def config_for(ctx: Context, rounds: int) -> ILAConfig:
    """ILA settings scaled to the run's ``fit_steps`` (refits at half of them)."""
    return ILAConfig(
        rounds=rounds,
        fit=FitConfig(steps=ctx.settings.fit_steps),
        refit_steps=max(1, ctx.settings.fit_steps // 2),
    )


def train(ctx: Context) -> Outcome:
    """Plain ILA: the whole budget on uniform queries, one fit."""
    res = train_ila(
        ctx.dev,
        config_for(ctx, 1),
        seed=ctx.settings.seed,
        prior=ctx.prior,
        mask=ctx.mask,
        on_step=ctx.on_step,
    )
    return Outcome(res.model, res.curve)
