"""The default: iterative-ILA warm start, then device-forward rounds while they measurably help.

0. A quick surrogate on the warm start's uniform stage says where the noise
   enters (`hwloop.strategies.noise`, from its residuals; no query spent).
   Where it is mostly input-referred, nothing can beat the noise but more
   uniform pairs: the rest of the budget goes to uniform inputs and M is
   fitted by ILA on every pair, exactly as `ila` draws and fits them
   (``auto_path`` "ila" in metrics.json, with the ``noise_split`` that
   decided it).
1. Iterative ILA on most of the budget: cheap, and near the noise floor on
   one-to-one devices with output noise.
2. A surrogate fitted on those pairs; rounds of device queries at M(t) whose
   answers enter every training step through `hwloop.device_op` (the device
   forward, the surrogate's VJP backward; see `hwloop.strategies.joint`).
3. Refinement is not trained at all when the first measurement shows that
   no round can improve on the measured closed-loop error by more than that
   measurement's own uncertainty (`rounds.cannot_improve`): where ILA is
   already at the level of the device's noise and of the surrogate's
   mismatch. Otherwise the rounds run.
4. If refinement was not trained, or never beat the warm start, the
   queries left go to uniform inputs and the inverse is fitted by ILA on
   every pair measured (a full fit, starting from the warm start's
   weights): at small budgets that is what plain ILA does best. The
   checkpoint kept otherwise is chosen by re-measuring the finalists on the
   same fresh targets (no winner's curse).
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from hwloop.inverses.models import FitConfig, build_regressor, fit_regression
from hwloop.strategies import surrogate
from hwloop.strategies.base import Context, Outcome
from hwloop.strategies.fold import FoldCheck, check_fold
from hwloop.strategies.ila import config_for as ila_config
from hwloop.strategies.ila import inverse_mask, train_ila
from hwloop.strategies.joint import fit_surrogate, make_trainer
from hwloop.strategies.noise import NoiseSplit, split_noise
from hwloop.strategies.rounds import reselect, round_details, run_rounds
from hwloop.strategies.surrogate import config_for, reserve_for_selection

log = logging.getLogger(__name__)

WARM_FRACTION = 0.4  # of the budget, for the iterative-ILA warm start
SPLIT_STEPS = 2000  # the quick surrogate that splits the noise: fitted well enough that noise dominates


def train(ctx: Context) -> Outcome:
    dev = ctx.dev
    cfg = config_for(ctx)
    reserve = reserve_for_selection(dev.remaining)
    spend = int(dev.remaining * WARM_FRACTION)
    ila_cfg = ila_config(ctx, 3)
    rng = np.random.default_rng(ctx.settings.seed)  # the draws `ila` makes, in the same order
    n_first = max(16, int(spend * ila_cfg.first_fraction))
    batch = dev.info.max_batch  # whole chunks: the device is asked in the chunks `ila`'s one call makes
    n_first = (
        max(batch, round(n_first / batch) * batch) if n_first >= batch and spend >= 2 * batch else n_first
    )
    first, split, fold, first_sur = _uniform_stage(ctx, n_first, rng)
    found = {"noise_split": split.to_dict(), "one_to_one": fold.to_dict()}
    if fold.one_to_one is False:
        return _as_surrogate(ctx, first, found, rng, reserve)
    if split.input_referred:
        return _as_ila(ctx, first, found, first_sur, rng)
    warm = train_ila(
        dev,
        ila_cfg,
        seed=ctx.settings.seed,
        spend=spend,
        prior=ctx.prior,
        mask=ctx.mask,
        on_step=ctx.on_step,
        first=first,
        rng=rng,
    )
    sur, sur_curve = fit_surrogate(
        warm.x, warm.y, cfg.surrogate_fit, seed=ctx.settings.seed, mask=ctx.mask, on_step=ctx.on_step
    )
    trainer = make_trainer(warm.model, sur, dev, cfg, ctx.settings.seed)
    scores, curve, stopped, (x_all, y_all) = run_rounds(
        dev,
        trainer,
        cfg,
        (warm.x, warm.y),
        seed=ctx.settings.seed,
        stop_early=True,
        reserve=reserve,
        on_step=ctx.on_step,
    )
    best = reselect(dev, trainer, scores, reserve)
    details = {**round_details(scores, best, stopped), "auto_path": "refine", **found}
    details["ila_refit_queries"] = 0
    if best is not None and best.round == 0 and dev.remaining >= 16:
        details["ila_refit_queries"] = int(dev.remaining)
        curve += _ila_refit(ctx, trainer, x_all, y_all)
    details["unspent"] = int(dev.remaining)  # the reserve, when nothing was left to re-select
    return Outcome(warm.model, warm.curve + sur_curve + curve, sur, details)


def _ila_refit(ctx: Context, trainer, x: np.ndarray, y: np.ndarray) -> list[float]:
    """Spend what is left as ILA would: uniform queries, then a full fit on every pair measured."""
    dev = ctx.dev
    rng = np.random.default_rng(ctx.settings.seed + 77)
    x_new = dev.info.uniform(rng, dev.remaining)
    y_new = dev.query(x_new, "train")
    xs, ys = np.concatenate([x, x_new]), np.concatenate([y, y_new])
    log.info("auto: no room for refinement; fitting the inverse by ILA on all %d pairs", len(xs))
    return fit_regression(
        trainer.inverse,
        ys,
        xs,
        FitConfig(steps=ctx.settings.fit_steps),
        seed=ctx.settings.seed + 5,
        on_step=ctx.on_step,
    )


def _uniform_stage(
    ctx: Context, n: int, rng: np.random.Generator
) -> tuple[tuple[np.ndarray, np.ndarray], NoiseSplit, FoldCheck, keras.Model]:
    """The warm start's uniform pairs (the first of the draws `ila` makes); where the noise
    enters, split by a quick surrogate's residuals against its slope; and whether the device is
    one-to-one, from the sign of that surrogate's Jacobian determinant."""
    dev = ctx.dev
    x = dev.info.uniform(rng, n)
    y = dev.query(x, "train")
    sur, _ = fit_surrogate(x, y, FitConfig(steps=SPLIT_STEPS), seed=ctx.settings.seed + 3, mask=ctx.mask)
    split, fold = split_noise(x, y, sur), check_fold(x, sur)
    log.info("auto: on %d uniform pairs, noise split %s; fold %s", n, split.to_dict(), fold.to_dict())
    return (x, y), split, fold, sur


def _as_surrogate(
    ctx: Context, first: tuple[np.ndarray, np.ndarray], found: dict, rng: np.random.Generator, reserve: int
) -> Outcome:
    """Not one-to-one: ILA and the iterative-ILA warm start are biased, so the budget is spent as
    `surrogate` spends it (its uniform draws, continued from the ones made; the same fit and rounds)."""
    dev = ctx.dev
    more = surrogate.explore_count(dev.remaining + len(first[0]), config_for(ctx)) - len(first[0])
    x_new = dev.info.uniform(rng, max(0, more))
    x, y = np.concatenate([first[0], x_new]), np.concatenate([first[1], dev.query(x_new, "train")])
    log.info("auto: the device is not one-to-one (fold share %s); surrogate path", found["one_to_one"])
    out = surrogate.from_exploration(ctx, (x, y), reserve)
    out.details.update(auto_path="surrogate", **found)
    return out


def _as_ila(
    ctx: Context,
    first: tuple[np.ndarray, np.ndarray],
    found: dict,
    sur: keras.Model,
    rng: np.random.Generator,
) -> Outcome:
    """Input-referred noise on a one-to-one device: the whole budget on uniform pairs and one ILA
    fit, as `ila` does (the same draws, the same fit)."""
    dev = ctx.dev
    x_new = dev.info.uniform(rng, dev.remaining)
    x, y = np.concatenate([first[0], x_new]), np.concatenate([first[1], dev.query(x_new, "train")])
    if ctx.prior is not None:
        x, y = np.concatenate([ctx.prior[0], x]), np.concatenate([ctx.prior[1], y])
    model = build_regressor(y, x, seed=ctx.settings.seed, name="inverse", mask=inverse_mask(ctx.mask))
    log.info(
        "auto: the noise is input-referred (share %.2f); ILA on %d uniform pairs",
        found["noise_split"]["input_share"],
        len(x),
    )
    curve = fit_regression(model, y, x, FitConfig(steps=ctx.settings.fit_steps), seed=ctx.settings.seed)
    details = {"auto_path": "ila", **found, "refinement_stopped": "input-referred noise"}
    return Outcome(model, curve, sur, details)
