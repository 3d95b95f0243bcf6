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


def nmse_uncertainty_db(y: np.ndarray, t: np.ndarray) -> float:
    """Standard error, in dB, of an NMSE estimated from n targets (delta method)."""
    err = np.sum((np.asarray(y, np.float64) - t) ** 2, axis=1)
    mean = float(np.mean(err))
    if len(err) < 2 or mean <= 0:
        return 0.0
    return float(10.0 / np.log(10.0) * np.std(err) / (mean * np.sqrt(len(err))))


def paired_difference_se_db(err_a: np.ndarray, err_b: np.ndarray) -> float:
    """Standard error, in dB, of the difference of two NMSEs read on the same targets (per-target
    squared errors ``err_a`` and ``err_b``; delta method on the log of their means). The targets'
    own difficulty, common to both, cancels: far tighter than the two errors combined."""
    a, b = np.asarray(err_a, np.float64), np.asarray(err_b, np.float64)
    ma, mb = float(np.mean(a)), float(np.mean(b))
    if len(a) < 2 or ma <= 0 or mb <= 0:
        return 0.0
    return float(10.0 / np.log(10.0) * np.std(a / ma - b / mb) / np.sqrt(len(a)))


TIE_Z = 2.0  # scores within this many standard errors of their difference are tied


def tied(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Two noisy scores (dB, standard error in dB) cannot be told apart:
    |a - b| <= TIE_Z * sqrt(u_a^2 + u_b^2)."""
    return abs(a[0] - b[0]) <= TIE_Z * float(np.hypot(a[1], b[1]))


def keep_index(scores: list[tuple[float, float]], prefer: list[int] | None = None) -> int:
    """The one selection rule for checkpoints judged by noisy scores (lower is better).

    ``scores`` are (score in dB, its standard error in dB). The candidates
    tied with the best (`tied`) are equally good as far as the measurements
    can tell; among them the one that comes first in ``prefer`` is kept.
    ``prefer`` defaults to the latest first (the most trained); a strategy
    that must not give up an incumbent without evidence (a warm start, the
    final inverse) puts it first, so a challenger replaces it only when it is
    better by more than the scores' uncertainty.
    """
    if not scores:
        raise ValueError("nothing to choose from")
    best = min(range(len(scores)), key=lambda i: scores[i][0])
    order = prefer if prefer is not None else list(range(len(scores) - 1, -1, -1))
    order = order + [i for i in range(len(scores) - 1, -1, -1) if i not in order]
    for i in order:
        if scores[i][0] <= scores[best][0] or tied(scores[i], scores[best]):
            return i
    return best  # pragma: no cover - best itself is always eligible
