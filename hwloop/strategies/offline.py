"""No device: fit a surrogate and an inverse on measured pairs (``--from-log``/``--from-data``).

The inverse is fitted by ILA and then, unless the strategy asked for is
plain ``ila``, trained through the surrogate. With no device to ask, the
closed-loop error can only be predicted, by the surrogate, on held-out
pairs: reported as ``surrogate_closed_loop_nmse_db``.
"""

from __future__ import annotations

import numpy as np

from hwloop.errors import UsageError
from hwloop.inverses.models import FitConfig, build_regressor, fit_regression, with_clip
from hwloop.metrics import db_or_none, nmse_db
from hwloop.strategies.base import Context, Outcome
from hwloop.strategies.joint import JointTrainer, fit_surrogate, pretrain_through_surrogate


def train(ctx: Context) -> Outcome:
    if ctx.prior is None or ctx.info is None:
        raise UsageError("offline training needs --from-log or --from-data")
    x_all, y_all = ctx.prior
    rng = np.random.default_rng(ctx.settings.seed)
    order = rng.permutation(len(x_all))
    n_hold = max(8, len(order) // 10)
    hold, fit_idx = order[:n_hold], order[n_hold:]
    x, y = x_all[fit_idx], y_all[fit_idx]
    fit = FitConfig(steps=ctx.settings.fit_steps)
    model = build_regressor(y, x, seed=ctx.settings.seed, name="inverse")
    curve = fit_regression(model, y, x, fit, seed=ctx.settings.seed, on_step=ctx.on_step)
    surrogate, sur_curve = fit_surrogate(x, y, fit, seed=ctx.settings.seed, on_step=ctx.on_step)
    low, high = ctx.info.low_array, ctx.info.high_array
    if ctx.settings.requested != "ila":
        trainer = JointTrainer(model, surrogate, low, high, inverse_lr=3e-4, seed=ctx.settings.seed)
        curve += pretrain_through_surrogate(trainer, ctx.settings.fit_steps // 2, 256, ctx.on_step)
    t_hold = y_all[hold]
    predicted = np.asarray(surrogate(np.asarray(with_clip(model, low, high)(t_hold))))
    details = {
        "surrogate_closed_loop_nmse_db": db_or_none(nmse_db(predicted, t_hold)),
        "surrogate_holdout_nmse_db": db_or_none(nmse_db(np.asarray(surrogate(x_all[hold])), t_hold)),
        "holdout_pairs": int(n_hold),
    }
    return Outcome(model, curve + sur_curve, surrogate, details)
