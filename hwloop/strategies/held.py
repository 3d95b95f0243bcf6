"""Held outputs: recalibrate an earlier run's inverse while some of its outputs stay exactly put.

The inverse of ``--init-from RUN`` is refitted by inverse modelling on fresh
uniform queries; the outputs listed in ``--hold`` (device inputs, e.g. a
channel already calibrated) are kept bit for bit by the masked-loss
mechanism of `hwloop.inverses.held`.
"""

from __future__ import annotations

import numpy as np

from hwloop.inverses.held import retrain_with_hold
from hwloop.inverses.models import FitConfig
from hwloop.strategies.base import Context, Outcome
from hwloop.strategies.parent import load_parent


def train(ctx: Context) -> Outcome:
    parent = load_parent(ctx.settings.init_from, ctx.dev.info, need_surrogate=False)
    rng = np.random.default_rng(ctx.settings.seed)
    x = ctx.dev.info.uniform(rng, ctx.dev.remaining)
    y = ctx.dev.query(x, "train")
    res = retrain_with_hold(
        parent.inverse,
        y,
        x,
        ctx.settings.hold,
        mechanism="masked_loss",
        cfg=FitConfig(steps=ctx.settings.fit_steps),
        seed=ctx.settings.seed,
    )
    return Outcome(
        parent.inverse,
        res.curve,
        details={"held_outputs": list(res.held), "max_held_change": res.max_held_change},
    )
