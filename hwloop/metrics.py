"""Closed-loop error and noise floor, in decibels.

``closed_loop_nmse_db = 10 log10(sum |F(M(t)) - t|^2 / sum |t|^2)`` over
held-out targets that F can reach; ``noise_floor_db`` is the same ratio for
the device's own measurement noise, estimated from repeated queries of the
same inputs: the best closed-loop figure a perfect inverse could show.
"""

from __future__ import annotations

import numpy as np


def nmse_db(y: np.ndarray, t: np.ndarray) -> float:
    """10 log10(sum |y - t|^2 / sum |t|^2); -inf for a perfect match."""
    y64, t64 = np.asarray(y, np.float64), np.asarray(t, np.float64)
    if y64.shape != t64.shape:
        raise ValueError(f"shapes differ: {y64.shape} vs {t64.shape}")
    num = float(np.sum((y64 - t64) ** 2))
    den = float(np.sum(t64**2))
    if den == 0.0:
        raise ValueError("targets are all zero: NMSE is undefined")
    return float("-inf") if num == 0.0 else 10.0 * np.log10(num / den)


def noise_variance(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per-output noise variance from two answers to the same inputs.

    For independent noise, Var(y1 - y2) = 2 sigma^2.
    """
    d = np.asarray(first, np.float64) - np.asarray(second, np.float64)
    return np.mean(d**2, axis=0) / 2.0


def noise_floor_db(variance: np.ndarray, targets: np.ndarray) -> float:
    """Noise power over target power, in dB; -inf for a noise-free device."""
    total = float(np.sum(variance))
    power = float(np.mean(np.sum(np.asarray(targets, np.float64) ** 2, axis=1)))
    if total <= 0.0:
        return float("-inf")
    return 10.0 * np.log10(total / power)


def db_or_none(value: float) -> float | None:
    """JSON has no -inf: report an exact match as null."""
    return None if not np.isfinite(value) else round(float(value), 3)
