"""Zeroth-order baseline: SPSA on the inverse's weights, for comparison only.

Simultaneous-perturbation stochastic approximation (Spall, 1992) estimates
the gradient of the closed-loop loss from two device evaluations per step,
at weights theta +/- c_k Delta with a random +/-1 vector Delta. It needs no
model of the device at all - and so it is slow: the benchmarks show what the
surrogate's gradient buys.

A fair baseline starts where ILA would from the same pairs: M is first
fitted on the exploration pairs (F(x) -> x, the `ila` fit with
``--fit-steps``), and SPSA refines those weights with the rest of the budget.
Without that fit SPSA started from untrained weights, and the comparison
credited the surrogate with what any fit of the exploration pairs gives.
metrics.json reports the pairs fitted (``spsa_fit_pairs``), the iterations,
and the SPSA loss (mean squared closed-loop error in units of the output
spread) over the first and the last ten iterations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from hwloop.inverses.models import FitConfig, build_regressor, fit_regression
from hwloop.metered import MeteredDevice
from hwloop.strategies.base import Context, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SPSAConfig:
    explore_fraction: float = 0.1  # uniform queries for target samples and scaling
    batch: int = 32  # targets per loss evaluation
    a: float = 0.02  # step size scale
    c: float = 0.01  # perturbation scale
    alpha: float = 0.602  # Spall's recommended gain exponents
    gamma: float = 0.101


def _flat(model: keras.Model) -> np.ndarray:
    return np.concatenate([w.ravel() for w in model.get_weights()])


def _set_flat(model: keras.Model, theta: np.ndarray) -> None:
    out, i = [], 0
    for w in model.get_weights():
        out.append(theta[i : i + w.size].reshape(w.shape).astype(np.float32))
        i += w.size
    model.set_weights(out)


def train_spsa(
    dev: MeteredDevice,
    cfg: SPSAConfig,
    *,
    seed: int,
    fit: FitConfig | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[keras.Model, list[float], dict]:
    """SPSA from M fitted by ILA on the exploration pairs (``fit`` None: from untrained weights)."""
    rng = np.random.default_rng(seed)
    n0 = max(16, int(dev.remaining * cfg.explore_fraction))
    x0 = dev.info.uniform(rng, n0)
    y0 = dev.query(x0, "train")
    model = build_regressor(y0, x0, seed=seed, name="inverse")
    curve: list[float] = []
    if fit is not None:
        log.info("SPSA: fitting the start by ILA on %d exploration pairs", n0)
        curve += fit_regression(model, y0, x0, fit, seed=seed, on_step=on_step)
    y_scale = np.maximum(y0.std(axis=0), 1e-8)
    theta = _flat(model)

    def loss(th: np.ndarray, t: np.ndarray) -> float:
        _set_flat(model, th)
        y = dev.query(dev.safe(np.asarray(model(t), np.float32)), "train")
        return float(np.mean(((y - t) / y_scale) ** 2))

    losses: list[float] = []
    k = 0
    big_a = 10.0
    while dev.remaining >= 2 * cfg.batch:
        t = y0[rng.integers(0, len(y0), cfg.batch)]
        ak = cfg.a / (k + 1 + big_a) ** cfg.alpha
        ck = cfg.c / (k + 1) ** cfg.gamma
        delta = rng.choice([-1.0, 1.0], size=theta.shape)
        lp, lm = loss(theta + ck * delta, t), loss(theta - ck * delta, t)
        theta = theta - ak * (lp - lm) / (2 * ck) * delta
        losses.append((lp + lm) / 2)
        if k % 10 == 0:
            curve.append(losses[-1])
            if on_step is not None:
                on_step(k, curve[-1])
        k += 1
    _set_flat(model, theta)
    log.info("SPSA: %d iterations", k)
    details = {
        "spsa_fit_pairs": n0 if fit is not None else 0,
        "spsa_iterations": k,
        "spsa_first_loss": float(f"{np.mean(losses[:10]):.4g}") if losses else None,
        "spsa_last_loss": float(f"{np.mean(losses[-10:]):.4g}") if losses else None,
    }
    return model, curve, details


def train(ctx: Context) -> Outcome:
    """SPSA on the whole budget (a baseline sees only its own queries: `choose` refuses prior pairs)."""
    model, curve, details = train_spsa(
        ctx.dev,
        SPSAConfig(),
        seed=ctx.settings.seed,
        fit=FitConfig(steps=ctx.settings.fit_steps),
        on_step=ctx.on_step,
    )
    return Outcome(model, curve, details=details)
