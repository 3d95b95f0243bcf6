"""Training strategies: each spends a MeteredDevice's budget and returns an inverse.

| name | what |
|---|---|
| ila | inverse modelling on uniform queries |
| iila | iterative ILA: re-query at M(t) and refit |
| surrogate | ILA init, M trained through a learned surrogate, refined through the device |
| auto | iterative-ILA warm start, surrogate-VJP refinement, best measured checkpoint |
| spsa | zeroth-order baseline (benchmarks only) |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # keep `import hwloop.methods` free of TensorFlow
    import keras

    from hwloop.metered import MeteredDevice

STRATEGIES = ("auto", "ila", "iila", "surrogate", "spsa")
StepFn = Callable[[int, float], None]


@dataclass
class Outcome:
    """What a strategy hands back to the run."""

    inverse: keras.Model
    curve: list[float]
    surrogate: keras.Model | None = None
    details: dict = field(default_factory=dict)


def run_strategy(
    name: str,
    dev: MeteredDevice,
    *,
    fit_steps: int,
    seed: int,
    prior: tuple | None = None,
    mask: object = None,
    on_step: StepFn | None = None,
) -> Outcome:
    """Spend ``dev``'s budget on strategy ``name``; ``prior`` pairs (measured
    before) join the first fit of every strategy but spsa."""
    from hwloop.methods import ila, spsa, surrogate
    from hwloop.models import FitConfig

    fit = FitConfig(steps=fit_steps)
    refit = max(1, fit_steps // 2)
    if name in ("ila", "iila"):
        cfg = ila.ILAConfig(rounds=1 if name == "ila" else 3, fit=fit, refit_steps=refit)
        res = ila.train_ila(dev, cfg, seed=seed, prior=prior, mask=mask, on_step=on_step)
        return Outcome(res.model, res.curve)
    if name == "spsa":
        model, curve = spsa.train_spsa(dev, spsa.SPSAConfig(), seed=seed, on_step=on_step)
        return Outcome(model, curve)
    # Surrogate-path step counts scale with --fit-steps (defaults: 3000 and 800 at 8000).
    scfg = surrogate.SurrogateConfig(
        surrogate_fit=fit, pretrain_steps=max(1, 3 * fit_steps // 8), round_steps=max(1, fit_steps // 10)
    )
    if name == "surrogate":
        res = surrogate.train_surrogate(
            dev, scfg, seed=seed, ila_fit=fit, prior=prior, mask=mask, on_step=on_step
        )
        return Outcome(res.inverse, res.curve, res.surrogate, _round_details(res.scores, None))
    if name == "auto":
        return _auto(dev, scfg, fit, refit, seed, prior, mask, on_step)
    raise ValueError(f"unknown strategy {name!r}")


def _auto(
    dev: MeteredDevice,
    scfg: object,
    fit: object,
    refit: int,
    seed: int,
    prior: tuple | None,
    mask: object,
    on_step: StepFn | None,
) -> Outcome:
    """Iterative-ILA warm start on part of the budget, then surrogate-VJP
    refinement through the device; keeps the best measured checkpoint."""
    from hwloop.methods import ila, surrogate

    assert isinstance(scfg, surrogate.SurrogateConfig)
    warm = ila.train_ila(
        dev,
        ila.ILAConfig(rounds=3, fit=fit, refit_steps=refit),
        seed=seed,
        spend=int(dev.remaining * scfg.explore_fraction),
        prior=prior,
        mask=mask,
        on_step=on_step,
    )
    sur, sur_curve = surrogate.fit_surrogate(
        warm.x, warm.y, scfg.surrogate_fit, seed=seed, mask=mask, on_step=on_step
    )
    trainer = surrogate.make_trainer(warm.model, sur, dev, scfg, seed)
    scores, curve = surrogate.run_rounds(dev, trainer, scfg, (warm.x, warm.y), seed=seed, on_step=on_step)
    best = surrogate.best_checkpoint(warm.model, scores)
    return Outcome(warm.model, warm.curve + sur_curve + curve, sur, _round_details(scores, best))


def _round_details(scores: list, best: object) -> dict:
    return {
        "round_nmse_db": [round(s.nmse_db, 3) for s in scores],
        "best_round": None if best is None else best.round,
    }
