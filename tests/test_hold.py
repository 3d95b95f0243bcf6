"""Holding outputs constant while training the others: per-output heads, and a masked loss."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from hwloop.errors import UsageError
from hwloop.inverses.held import build_headed_regressor, retrain_with_hold, trainable_for_hold
from hwloop.inverses.models import FitConfig, build_regressor, fit_regression

FIT = FitConfig(steps=300)


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs, old calibration targets, and new targets where EVERY output differs."""
    x = np.random.default_rng(0).uniform(-1, 1, (2000, 2)).astype(np.float32)
    old = np.stack([np.tanh(x[:, 0] + 0.3 * x[:, 1]), x[:, 1] ** 2, np.sin(x[:, 0])], axis=1)
    new = np.stack([np.tanh(1.5 * x[:, 0]) - 0.2, x[:, 1] ** 3 + 0.5, np.cos(2 * x[:, 0]) + x[:, 1]], axis=1)
    return x, old.astype(np.float32), new.astype(np.float32)


def _far_probe() -> np.ndarray:
    """Random inputs well inside and far outside the training range [-1, 1]."""
    rng = np.random.default_rng(9)
    return np.concatenate([rng.uniform(-1, 1, (200, 2)), rng.uniform(-50, 50, (200, 2))]).astype(np.float32)


def _mse(model: keras.Model, x: np.ndarray, y: np.ndarray, cols: list[int]) -> float:
    return float(np.mean((np.asarray(model(x))[:, cols] - y[:, cols]) ** 2))


CASES = [
    ("heads", build_headed_regressor, {}),
    ("heads", build_headed_regressor, {"trunk": (32,)}),
    ("masked_loss", build_headed_regressor, {"trunk": (32,)}),
    ("masked_loss", build_regressor, {}),
]


@pytest.mark.parametrize(("mechanism", "builder", "kwargs"), CASES)
def test_held_outputs_do_not_move_while_the_others_learn(mechanism, builder, kwargs, tmp_path: Path) -> None:
    x, old, new = _data()
    model = builder(x, old, seed=0, **kwargs)
    fit_regression(model, x, old, FIT, seed=0)
    probe = _far_probe()
    before = np.asarray(model(probe))
    free = [1, 2]
    loss_before = _mse(model, x, new, free)
    result = retrain_with_hold(model, x, new, hold=[0], mechanism=mechanism, cfg=FIT, seed=1)
    after = np.asarray(model(probe))
    assert np.max(np.abs(after[:, 0] - before[:, 0])) <= 1e-6
    assert result.max_held_change <= 1e-6
    assert np.max(np.abs(after[:, free] - before[:, free])) > 0.1  # the free outputs did move
    loss_after = _mse(model, x, new, free)
    assert loss_after < loss_before / 20, (loss_before, loss_after)
    # The same after a .keras round trip.
    model.save(tmp_path / "held.keras")
    loaded = keras.models.load_model(tmp_path / "held.keras", compile=False)
    assert np.max(np.abs(np.asarray(loaded(probe))[:, 0] - before[:, 0])) <= 1e-6
    np.testing.assert_array_equal(np.asarray(loaded(probe)), after)


def test_without_hold_every_output_moves() -> None:
    """Control: the data does pull output 0, so the hold tests above are not vacuous."""
    x, old, new = _data()
    model = build_headed_regressor(x, old, seed=0, trunk=(32,))
    fit_regression(model, x, old, FIT, seed=0)
    probe = _far_probe()
    before = np.asarray(model(probe))
    retrain_with_hold(model, x, new, hold=[], mechanism="heads", cfg=FIT, seed=1)
    assert np.max(np.abs(np.asarray(model(probe))[:, 0] - before[:, 0])) > 0.1


def test_var_lists_leave_out_held_heads_and_the_trunk() -> None:
    x, old, _ = _data()
    model = build_headed_regressor(x, old, seed=0, trunk=(16,))
    heads = {v.path.split("/")[0] for v in trainable_for_hold(model, [0], "heads")}
    assert heads and all(p.startswith(("head1_", "head2_")) for p in heads)
    masked = {v.path.split("/")[0] for v in trainable_for_hold(model, [0], "masked_loss")}
    assert any(p.startswith("head0_") for p in masked) and not any(p.startswith("trunk_") for p in masked)
    everything = trainable_for_hold(model, [], "heads")
    assert len(everything) == len(model.trainable_variables)
    plain = build_regressor(x, old, seed=0)
    layers = {v.path.split("/")[0] for v in trainable_for_hold(plain, [2], "masked_loss")}
    assert layers == {"linear_skip", "mlp_out"}


def test_masked_loss_gives_held_head_exactly_zero_gradient_like_finite_differences() -> None:
    x, old, new = _data()
    model = build_headed_regressor(x[:64], old[:64], seed=0, hidden=(8,))
    weights = tf.constant([0.0, 1.0, 1.0])
    xb, yb = tf.constant(x[:64]), tf.constant(new[:64])

    def loss() -> tf.Tensor:
        return tf.reduce_sum(tf.reduce_mean(tf.square(model(xb) - yb), axis=0) * weights)

    held_kernel = model.get_layer("head0_mlp_out").kernel
    free_kernel = model.get_layer("head1_mlp_out").kernel
    with tf.GradientTape() as tape:
        value = loss()
    g_held, g_free = tape.gradient(value, [held_kernel, free_kernel])
    assert np.all(g_held.numpy() == 0.0)
    eps = 1e-3
    for var, grad in ((held_kernel, g_held.numpy()), (free_kernel, g_free.numpy())):
        base = var.numpy().copy()
        w = base.copy()
        w[0, 0] += eps
        var.assign(w)
        up = float(loss())
        w[0, 0] -= 2 * eps
        var.assign(w)
        down = float(loss())
        var.assign(base)
        fd = (up - down) / (2 * eps)
        if var is held_kernel:
            assert fd == 0.0
        else:
            assert fd == pytest.approx(float(grad[0, 0]), rel=2e-2, abs=1e-4)


def test_bad_hold_requests_are_usage_errors() -> None:
    x, old, new = _data()
    headed = build_headed_regressor(x, old, seed=0)
    with pytest.raises(UsageError, match=r"outputs 0\.\.2"):
        retrain_with_hold(headed, x, new, hold=[3])
    with pytest.raises(UsageError, match="every output is held"):
        retrain_with_hold(headed, x, new, hold=[0, 1, 2])
    with pytest.raises(UsageError, match="unknown hold mechanism"):
        retrain_with_hold(headed, x, new, hold=[0], mechanism="freeze")
    with pytest.raises(UsageError, match="build_headed_regressor"):
        retrain_with_hold(build_regressor(x, old), x, new, hold=[0], mechanism="heads")
