"""A new unit of a known design, calibrated from an earlier run (``--init-from RUN``).

The parent run's inverse is the starting point and its surrogate (fitted
anew from its log when it kept none) supplies the backward pass. Every query
goes to the new unit at x = M(t): its answers enter each training step in
the forward pass through `hwloop.device_op` with the full mixing weight
(the parent's surrogate is known to be wrong for this unit, so nothing is
shrunk), and the surrogate keeps learning from them. The best measured
round is kept after the finalists are re-measured.
"""

from __future__ import annotations

import numpy as np

from hwloop.strategies import Context, Outcome
from hwloop.strategies.joint import SurrogateConfig, make_trainer
from hwloop.strategies.parent import load_parent
from hwloop.strategies.rounds import reselect, round_details, run_rounds
from hwloop.strategies.surrogate import reserve_for_selection


def train(ctx: Context) -> Outcome:
    dev = ctx.dev
    parent = load_parent(ctx.init_from, dev.info, need_surrogate=True, fit_steps=ctx.fit_steps, seed=ctx.seed)
    cfg = SurrogateConfig(
        rounds=4, pretrain_steps=0, round_steps=max(1, ctx.fit_steps // 10), device_weight=1.0
    )
    reserve = reserve_for_selection(dev.remaining)
    trainer = make_trainer(parent.inverse, parent.surrogate, dev, cfg, ctx.seed)
    empty = (np.zeros((0, dev.info.in_dim), np.float32), np.zeros((0, dev.info.out_dim), np.float32))
    scores, curve, _, _ = run_rounds(
        dev, trainer, cfg, empty, seed=ctx.seed, train_last=True, reserve=reserve, on_step=ctx.on_step
    )
    best = reselect(dev, trainer, scores, reserve)
    details = {**round_details(scores, best), "surrogate_refitted_from_log": parent.surrogate_refitted}
    return Outcome(parent.inverse, curve, parent.surrogate, details)
