"""Is the borrowed gradient any good? `grad_cosine` measures it on the device.

The surrogate's vector-Jacobian product u^T J_hat(x) is what the inverse is
trained with; the device's own u^T J(x) can only be estimated by central
finite differences of real queries. Their cosine over a few probe points
says whether the surrogate points the inverse in the device's direction
(1: the same direction, 0: unrelated).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from hwloop.metered import MeteredDevice


def surrogate_vjp(surrogate: Callable, x: np.ndarray, upstream: np.ndarray) -> np.ndarray:
    """u^T dF_hat/dx at each row of x, via ``output_gradients``."""
    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = surrogate(xt)
    return np.asarray(tape.gradient(y, xt, output_gradients=tf.constant(upstream, tf.float32)))


def device_vjp_fd(
    dev: MeteredDevice, x: np.ndarray, upstream: np.ndarray, *, step: float, repeats: int = 4
) -> np.ndarray:
    """u^T dF/dx by central differences on the device (2 * in_dim * repeats queries a point)."""
    n, d = x.shape
    rows = []
    for i in range(d):
        e = np.zeros(d, np.float32)
        e[i] = step
        rows += [x + e, x - e]
    probe = np.tile(np.concatenate(rows), (repeats, 1))
    y = dev.query(probe, "eval").reshape(repeats, 2 * d, n, -1).mean(axis=0)
    out = np.empty((n, d), np.float64)
    for i in range(d):
        diff = (y[2 * i].astype(np.float64) - y[2 * i + 1]) / (2 * step)
        out[:, i] = np.sum(diff * upstream, axis=1)
    return out


def grad_cosine(
    dev: MeteredDevice,
    surrogate: Callable,
    *,
    points: int = 32,
    rel_step: float = 0.02,
    repeats: int = 4,
    seed: int = 0,
) -> float:
    """Cosine between surrogate and finite-difference device VJPs at random points.

    Probe points keep one step away from the range edges so every finite
    difference stays inside the safe range. The queries count as evaluation.
    """
    rng = np.random.default_rng(seed + 4242)
    lo, hi = dev.info.low_array, dev.info.high_array
    step = float(rel_step * np.min(hi - lo))
    x = rng.uniform(lo + step, hi - step, size=(points, dev.info.in_dim)).astype(np.float32)
    u = rng.normal(size=(points, dev.info.out_dim)).astype(np.float32)
    g_hat = surrogate_vjp(surrogate, x, u).ravel().astype(np.float64)
    g_dev = device_vjp_fd(dev, x, u, step=step, repeats=repeats).ravel()
    denom = np.linalg.norm(g_hat) * np.linalg.norm(g_dev)
    return float(np.dot(g_hat, g_dev) / denom) if denom > 0 else 0.0
