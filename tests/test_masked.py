"""MaskedDense and masked build_regressor: fixed-zero connections stay zero and get zero gradient."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from hwloop.errors import ShapeError
from hwloop.inverses.layers import MaskedDense
from hwloop.inverses.models import FitConfig, build_regressor, fit_regression

MASK = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], np.float32)  # (in 4, units 3)


def _loss(layer: MaskedDense, x: np.ndarray, y: np.ndarray):
    return tf.reduce_sum(tf.square(layer(x) - y))


def test_mask_shape_and_values_are_validated() -> None:
    with pytest.raises(ShapeError, match="columns"):
        MaskedDense(2, MASK)
    with pytest.raises(ShapeError, match="only 0 and 1"):
        MaskedDense(3, MASK * 0.5)
    with pytest.raises(ShapeError, match="2-D"):
        MaskedDense(3, np.ones(3))
    layer = MaskedDense(3, MASK)
    with pytest.raises(ShapeError, match=r"does not fit \(in_dim, units\) = \(5, 3\)"):
        layer(np.zeros((2, 5), np.float32))


def test_raw_kernel_starts_masked_and_call_uses_the_mask() -> None:
    layer = MaskedDense(3, MASK, kernel_initializer="ones")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    out = np.asarray(layer(x))
    k = layer.kernel.numpy()
    np.testing.assert_array_equal(k * MASK, k)
    np.testing.assert_array_equal(k[MASK == 0], 0.0)
    # Even if someone writes into a masked raw weight, the effective kernel ignores it.
    layer.kernel.assign(np.where(MASK == 0, 7.0, k))
    np.testing.assert_array_equal(np.asarray(layer(x)), out)
    np.testing.assert_allclose(out, x @ MASK, rtol=1e-6)


def test_gradient_is_exactly_zero_on_masked_weights_and_matches_finite_differences() -> None:
    rng = np.random.default_rng(1)
    layer = MaskedDense(3, MASK, activation="tanh", dtype="float64")
    x = rng.normal(size=(16, 4))
    y = rng.normal(size=(16, 3))
    layer(x)
    with tf.GradientTape() as tape:
        loss = _loss(layer, x, y)
    grad = tape.gradient(loss, layer.kernel).numpy()
    assert np.all(grad[MASK == 0] == 0.0)
    assert np.all(grad[MASK == 1] != 0.0)
    base = layer.kernel.numpy().copy()
    eps = 1e-6
    fd = np.zeros_like(base)
    for i, j in np.ndindex(*base.shape):
        for sign in (1, -1):
            w = base.copy()
            w[i, j] += sign * eps
            layer.kernel.assign(w)
            fd[i, j] += sign * float(_loss(layer, x, y)) / (2 * eps)
    layer.kernel.assign(base)
    np.testing.assert_array_equal(fd[MASK == 0], 0.0)  # the loss does not even see those weights
    np.testing.assert_allclose(fd, grad, rtol=1e-5, atol=1e-7)


def test_masked_weights_stay_exactly_zero_under_adam() -> None:
    rng = np.random.default_rng(2)
    inp = keras.Input((4,))
    model = keras.Model(inp, MaskedDense(3, MASK, name="md")(inp))
    model.compile(keras.optimizers.Adam(0.05), "mse")
    model.fit(rng.normal(size=(256, 4)), rng.normal(size=(256, 3)), epochs=5, batch_size=32, verbose=0)
    k = model.get_layer("md").kernel.numpy()
    np.testing.assert_array_equal(k[MASK == 0], 0.0)
    assert np.all(k[MASK == 1] != 0.0)


def test_masked_dense_survives_keras_save_and_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    inp = keras.Input((4,))
    model = keras.Model(inp, MaskedDense(3, MASK, activation="tanh", name="md")(inp))
    x = rng.normal(size=(8, 4)).astype(np.float32)
    expected = np.asarray(model(x))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False)
    layer = loaded.get_layer("md")
    assert isinstance(layer, MaskedDense)
    np.testing.assert_array_equal(layer.mask, MASK)
    np.testing.assert_array_equal(np.asarray(loaded(x)), expected)
    np.testing.assert_array_equal(layer.kernel.numpy()[MASK == 0], 0.0)
    layer.kernel.assign(layer.kernel.numpy() + 3.0 * (1 - MASK))  # masking still applies after loading
    np.testing.assert_array_equal(np.asarray(loaded(x)), expected)


# Output j of the regressor may depend on input i only where DEP[i, j] == 1.
DEP = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1]], np.float32)


def _data(n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(4).uniform(-1, 1, (n, 3)).astype(np.float32)
    y = np.stack([np.tanh(x[:, 0] + x[:, 1]), np.sin(2 * x[:, 1]), x[:, 0] * x[:, 2]], axis=1)
    return x, y.astype(np.float32)


def test_masked_regressor_outputs_depend_only_on_allowed_inputs() -> None:
    x, y = _data()
    model = build_regressor(x, y, mask=DEP, seed=1)
    curve = fit_regression(model, x, y, FitConfig(steps=600), seed=0)
    assert curve[-1] < curve[0] / 50
    probe = tf.constant(np.random.default_rng(5).normal(0, 5, (64, 3)), tf.float32)  # far outside the data
    with tf.GradientTape() as tape:
        tape.watch(probe)
        out = model(probe)
    jac = tape.batch_jacobian(out, probe).numpy()  # (n, out, in)
    for i, j in np.ndindex(*DEP.shape):
        if DEP[i, j] == 0:
            assert np.all(jac[:, j, i] == 0.0), (i, j)
        else:
            assert np.max(np.abs(jac[:, j, i])) > 1e-3, (i, j)
    # Finite differences agree: moving a disallowed input leaves the output bit-for-bit equal.
    base = np.asarray(model(probe))
    for i in range(3):
        moved = probe.numpy().copy()
        moved[:, i] += 0.5
        diff = np.abs(np.asarray(model(moved)) - base).max(axis=0)
        for j in range(3):
            assert (diff[j] == 0.0) == (DEP[i, j] == 0), (i, j, diff[j])


def test_masked_regressor_keeps_names_and_survives_save_load(tmp_path: Path) -> None:
    x, y = _data(500)
    model = build_regressor(x, y, mask=DEP, seed=2)
    names = {layer.name for layer in model.layers}
    assert {"standardize", "linear_skip", "hidden_0", "hidden_1", "mlp_out", "destandardize"} <= names
    model.save(tmp_path / "r.keras")
    loaded = keras.models.load_model(tmp_path / "r.keras", compile=False)
    np.testing.assert_array_equal(np.asarray(loaded(x[:32])), np.asarray(model(x[:32])))


def test_regressor_without_mask_is_the_plain_recipe() -> None:
    x, y = _data(200)
    plain = build_regressor(x, y, seed=3)
    assert all(not isinstance(layer, MaskedDense) for layer in plain.layers)
    assert type(plain.get_layer("hidden_0")) is keras.layers.Dense
    assert plain.get_layer("hidden_0").units == 64


def test_masked_regressor_rejects_a_bad_mask() -> None:
    x, y = _data(100)
    with pytest.raises(ShapeError, match=r"\(in_dim, out_dim\) = \(3, 3\)"):
        build_regressor(x, y, mask=np.ones((2, 3)))
    with pytest.raises(ShapeError, match="only 0 and 1"):
        build_regressor(x, y, mask=np.full((3, 3), 2.0))
