"""The device is in the forward pass: its answer changes the update, by the mixing weight."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from hwloop.device_op import straight_through
from hwloop.inverses.models import build_regressor
from hwloop.strategies.joint import JointTrainer


def _trainer() -> JointTrainer:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (512, 1)).astype(np.float32)
    y = np.tanh(1.5 * x)
    keras.utils.set_random_seed(0)
    inverse = build_regressor(y, x, seed=1, name="inverse")
    surrogate = build_regressor(x, y, seed=2, name="surrogate")
    return JointTrainer(inverse, surrogate, -np.ones(1), np.ones(1), inverse_lr=1e-2, seed=3)


def _step_delta(y_dev_shift: float, weight: float) -> np.ndarray:
    """Inverse weights after one joint step minus before, for a device answer shifted by y_dev_shift."""
    tr = _trainer()
    t = tf.constant(np.linspace(-0.8, 0.8, 64, dtype=np.float32)[:, None])
    x_q = tr.inverse(t)
    y_dev = tr.surrogate(x_q) + y_dev_shift
    before = np.concatenate([w.ravel() for w in tr.inverse.get_weights()])
    tr.step(t, x_q, y_dev, x_q, y_dev, 8, False, tf.constant(weight, tf.float32))
    return np.concatenate([w.ravel() for w in tr.inverse.get_weights()]) - before


def test_the_device_answer_changes_the_update_and_the_weight_scales_it() -> None:
    same = _step_delta(0.0, 1.0)
    shifted = _step_delta(0.2, 1.0)
    assert np.linalg.norm(shifted - same) > 1e-3 * np.linalg.norm(same)
    # With weight 0 the device's answer cannot matter: M trains through the surrogate alone.
    np.testing.assert_allclose(_step_delta(0.2, 0.0), _step_delta(0.0, 0.0), rtol=1e-5, atol=1e-7)


def test_straight_through_carries_the_answer_forward_and_the_surrogate_vjp_backward() -> None:
    surrogate = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="tanh")])
    x_q = tf.constant([[0.3, -0.2], [0.1, 0.5]])
    x = tf.Variable([[0.35, -0.1], [0.0, 0.45]])
    y_dev = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    anchor = surrogate(x_q)
    u = tf.constant([[0.7, -1.1], [0.4, 0.9]])
    with tf.GradientTape() as tape:
        y = straight_through(y_dev, surrogate(x), anchor)
    np.testing.assert_allclose(y, y_dev + surrogate(x) - anchor, rtol=1e-6)
    grad = tape.gradient(y, x, output_gradients=u).numpy()
    # Central differences of u . F_hat(x): the surrogate's vector-Jacobian product.
    eps, fd = 1e-3, np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            e = np.zeros((2, 2), np.float32)
            e[i, j] = eps
            up = np.sum(u.numpy() * surrogate(x.numpy() + e).numpy())
            down = np.sum(u.numpy() * surrogate(x.numpy() - e).numpy())
            fd[i, j] = (up - down) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=2e-2, atol=2e-3)


def test_a_fixed_mixing_weight_replaces_the_per_round_shrinkage() -> None:
    """SurrogateConfig.device_weight (an ablation's knob) is what the trained rounds record."""
    from hwloop.metered import MeteredDevice
    from hwloop.simulators.catalog import make_sim
    from hwloop.strategies.joint import SurrogateConfig, make_trainer
    from hwloop.strategies.rounds import round_details, run_rounds

    tr = _trainer()
    for weight in (0.0, 0.5):
        dev = MeteredDevice(make_sim("tanh"), None, budget=400)
        x = dev.info.uniform(np.random.default_rng(0), 100)
        y = dev.query(x)
        cfg = SurrogateConfig(rounds=3, round_steps=5, pretrain_steps=5, device_weight=weight)
        trainer = make_trainer(tr.inverse, tr.surrogate, dev, cfg, 0)
        scores, _, _, _ = run_rounds(dev, trainer, cfg, (x, y), seed=0, train_last=True)
        weights = round_details(scores, None)["device_weight"]
        assert weights == [weight] * len(scores) and len(scores) >= 2
