"""Iterative ILA: half the budget uniform, then re-query at M(t) and refit (see `ila`)."""

from __future__ import annotations

from hwloop.strategies.base import Context, Outcome
from hwloop.strategies.ila import config_for, train_ila

ROUNDS = 3  # one uniform round, two refinements at the inverse's own proposals


def train(ctx: Context) -> Outcome:
    res = train_ila(
        ctx.dev,
        config_for(ctx, ROUNDS),
        seed=ctx.settings.seed,
        prior=ctx.prior,
        mask=ctx.mask,
        on_step=ctx.on_step,
    )
    return Outcome(res.model, res.curve)
