"""A new unit of a known design, calibrated from an earlier run (``--init-from RUN``).

The parent run's inverse is the starting point and its surrogate (fitted
anew from its log when it kept none) is corrected to the new unit, not
refitted: identity-initialised affine maps before and after it and a small
residual, learned from the unit's own answers (`calibrate_unit`). The
inverse is then trained in rounds with the unit in the forward pass at full
weight (`hwloop.device_op.straight_through`) and the corrected surrogate's
VJP backward. Measured on `sim:iqpa` units: 200 queries take a unit from
-21..-27 dB (the parent's inverse as it is) to -55..-57 dB (docs/calibration.md).
"""

from __future__ import annotations

from hwloop.errors import UsageError
from hwloop.strategies.base import Context, Outcome
from hwloop.strategies.calibrate_unit import calibrate_unit
from hwloop.strategies.parent import load_parent

MIN_QUERIES = 30  # three rounds of at least 8 answers each


def train(ctx: Context) -> Outcome:
    dev = ctx.dev
    assert dev is not None
    if dev.remaining < MIN_QUERIES:
        raise UsageError(
            f"calibrating from --init-from needs --queries {MIN_QUERIES} or more, got {dev.remaining}"
        )
    parent = load_parent(
        ctx.settings.init_from,
        dev.info,
        need_surrogate=True,
        fit_steps=ctx.settings.fit_steps,
        seed=ctx.settings.seed,
    )
    res = calibrate_unit(
        dev,
        parent.inverse,
        parent.surrogate,
        seed=ctx.settings.seed,
        fit_steps=ctx.settings.fit_steps,
        on_step=ctx.on_step,
    )
    details = {**res.details, "surrogate_refitted_from_log": parent.surrogate_refitted}
    return Outcome(res.inverse, res.curve, res.surrogate, details)
