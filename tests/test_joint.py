"""The joint step: each loss moves only its own variables (separate var_lists)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from hwloop.inverses.models import build_regressor
from hwloop.strategies.joint import JointTrainer


def make_trainer(seed: int = 0) -> JointTrainer:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (512, 2)).astype(np.float32)
    y = np.tanh(x @ np.array([[1.0, 0.3], [0.2, 0.9]], np.float32))
    keras.utils.set_random_seed(seed)
    inverse = build_regressor(y, x, seed=1, name="inverse")
    surrogate = build_regressor(x, y, seed=2, name="surrogate")
    return JointTrainer(
        inverse, surrogate, -np.ones(2), np.ones(2), inverse_lr=1e-2, surrogate_lr=1e-2, seed=seed
    )


def batch(seed: int) -> list[tf.Tensor]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (64, 2)).astype(np.float32)
    y = np.tanh(x) + rng.normal(0, 0.05, x.shape).astype(np.float32)
    return [tf.constant(a) for a in (y, x, y + 0.1, x, y)]


def weights(model: keras.Model) -> list[np.ndarray]:
    return [w.copy() for w in model.get_weights()]


def test_each_loss_leaves_the_other_models_variables_untouched() -> None:
    t_a, x_a, y_a, xl_a, yl_a = batch(1)
    t_b, x_b, y_b, xl_b, yl_b = batch(2)
    # Same inverse-loss data, different surrogate-loss data: the inverse must end identical.
    tr1, tr2 = make_trainer(), make_trainer()
    tr1.step(t_a, x_a, y_a, xl_a, yl_a, 32)
    tr2.step(t_a, x_a, y_a, xl_b, yl_b, 32)
    for a, b in zip(weights(tr1.inverse), weights(tr2.inverse), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b) for a, b in zip(weights(tr1.surrogate), weights(tr2.surrogate), strict=True)
    )
    # Same surrogate-loss data, different inverse-loss data: the surrogate must end identical.
    tr3, tr4 = make_trainer(), make_trainer()
    tr3.step(t_a, x_a, y_a, xl_a, yl_a, 32)
    tr4.step(t_b, x_b, y_b, xl_a, yl_a, 32)
    for a, b in zip(weights(tr3.surrogate), weights(tr4.surrogate), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b) for a, b in zip(weights(tr3.inverse), weights(tr4.inverse), strict=True)
    )


def test_both_models_move_in_one_step_and_surrogate_off_freezes_it() -> None:
    tr = make_trainer()
    inv0, sur0 = weights(tr.inverse), weights(tr.surrogate)
    tr.step(*batch(1), 32)
    assert all(not np.array_equal(a, b) for a, b in zip(inv0, weights(tr.inverse), strict=True))
    assert all(not np.array_equal(a, b) for a, b in zip(sur0, weights(tr.surrogate), strict=True))
    sur1 = weights(tr.surrogate)
    tr.step(*batch(3), 32, False)
    for a, b in zip(sur1, weights(tr.surrogate), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("damping", [1e-6, 1e-2])
def test_gauss_newton_scaling_solves_the_damped_normal_equations(damping: float) -> None:
    tr = make_trainer()
    tr.damping = damping
    x = tf.constant(np.random.default_rng(5).uniform(-1, 1, (8, 2)).astype(np.float32))
    err = tf.constant(np.random.default_rng(6).normal(size=(8, 2)).astype(np.float32))
    g = tr.gauss_newton(x, err).numpy()
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tr.surrogate(x)
    jac = tape.batch_jacobian(y, x).numpy().astype(np.float64)
    for k in range(8):
        jjt = jac[k] @ jac[k].T
        lam = damping * np.trace(jjt) / 2 + 1e-12
        np.testing.assert_allclose((jjt + lam * np.eye(2)) @ g[k], err.numpy()[k], rtol=2e-3, atol=2e-4)
