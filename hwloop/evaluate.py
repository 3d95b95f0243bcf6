"""Closed-loop evaluation of an inverse on the device, and the noise floor.

Evaluation queries are counted apart from the training budget (kinds
``eval`` and ``noise`` in the query log).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hwloop.metered import MeteredDevice
from hwloop.metrics import nmse_db, noise_floor_db, noise_variance

InverseFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class EvalTargets:
    """Held-out reachable targets: F's answers to fresh in-range inputs."""

    x: np.ndarray
    t: np.ndarray


def reachable_targets(dev: MeteredDevice, n: int, rng: np.random.Generator) -> EvalTargets:
    x = dev.info.uniform(rng, n)
    return EvalTargets(x, dev.query(x, "eval"))


def closed_loop_nmse_db(dev: MeteredDevice, inverse: InverseFn, targets: np.ndarray) -> float:
    """10 log10(sum |F(M(t)) - t|^2 / sum |t|^2), measured on the device."""
    y = dev.query(inverse(targets), "eval")
    return nmse_db(y, targets)


def estimate_noise(dev: MeteredDevice, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-output noise variance from asking the same n inputs twice."""
    x = dev.info.uniform(rng, n)
    first = dev.query(x, "noise")
    second = dev.query(x, "noise")
    return noise_variance(first, second)


def evaluate(
    dev: MeteredDevice, inverse: InverseFn, *, n_targets: int, n_noise: int, seed: int
) -> dict[str, float]:
    rng = np.random.default_rng(seed + 7919)
    targets = reachable_targets(dev, n_targets, rng)
    variance = estimate_noise(dev, n_noise, rng)
    scores = {
        "closed_loop_nmse_db": closed_loop_nmse_db(dev, inverse, targets.t),
        "noise_floor_db": noise_floor_db(variance, targets.t),
        "noise_std": float(np.sqrt(np.mean(variance))),
    }
    clean = getattr(dev.device, "clean", None)
    if callable(clean):
        scores["closed_loop_nmse_clean_db"] = clean_closed_loop_nmse_db(clean, inverse, targets.x)
    return scores


def clean_closed_loop_nmse_db(clean: InverseFn, inverse: InverseFn, x: np.ndarray) -> float:
    """Closed-loop error scored against a simulator's noise-free answer.

    Targets are the noise-free outputs for fresh inputs, so every one is
    reachable; no query is spent (a simulator's ``clean`` is not a measurement).
    """
    t = clean(x)
    return nmse_db(clean(inverse(t)), t)
