"""The device op: device forward, surrogate VJP backward - checked against analytic
and finite-difference gradients, inside custom loops and Keras model.fit."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from hwloop.device_op import DeviceLayer, device_call, device_call_straight_through, straight_through
from hwloop.evaluate import grad_cosine
from hwloop.inverses.models import FitConfig
from hwloop.metered import MeteredDevice
from hwloop.simulators.catalog import make_sim
from hwloop.strategies.joint import fit_surrogate

FORMS = [device_call, device_call_straight_through]


def tf_saleh_iq(x: tf.Tensor) -> tf.Tensor:
    """The saleh_iq simulator's transfer, written in TensorFlow (an analytic surrogate)."""
    i, q = x[:, 0], x[:, 1]
    r2 = i * i + q * q
    gain = 2.1587 / (1.0 + 1.1517 * r2)
    phase = 4.0033 * r2 / (1.0 + 9.1040 * r2)
    c, s = tf.cos(phase), tf.sin(phase)
    return tf.stack([gain * (i * c - q * s), gain * (i * s + q * c)], axis=1)


@pytest.mark.parametrize("form", FORMS)
def test_gradient_equals_the_analytic_vjp(form) -> None:
    dev = make_sim("tanh", noise=0.0)
    x = tf.constant(np.linspace(-0.95, 0.95, 41, dtype=np.float32)[:, None])
    u = tf.constant(np.random.default_rng(0).normal(size=(41, 1)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = form(dev.query, lambda z: tf.tanh(1.5 * z), x, 1)
    g = tape.gradient(y, x, output_gradients=u)
    np.testing.assert_allclose(y.numpy(), dev.clean(x.numpy()), rtol=0, atol=0)
    expected = u.numpy() * 1.5 * (1 - np.tanh(1.5 * x.numpy()) ** 2)
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("form", FORMS)
def test_mimo_vjp_matches_finite_differences_of_the_device(form) -> None:
    dev = make_sim("saleh_iq", noise=0.0)
    rng = np.random.default_rng(1)
    x = (0.9 * dev.info.uniform(rng, 16)).astype(np.float32)  # well inside the envelope |x| <= 0.5
    u = rng.normal(size=(16, 2))
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = form(dev.query, tf_saleh_iq, xt, 2)
    g = tape.gradient(y, xt, output_gradients=tf.constant(u, tf.float32)).numpy()
    h = 1e-5
    fd = np.zeros_like(g, dtype=np.float64)
    for i in range(2):
        e = np.zeros(2)
        e[i] = h
        diff = (dev.transfer(x.astype(np.float64) + e) - dev.transfer(x.astype(np.float64) - e)) / (2 * h)
        fd[:, i] = np.sum(diff * u, axis=1)
    np.testing.assert_allclose(g, fd, rtol=2e-4, atol=2e-5)


def test_forward_value_is_the_device_answer_not_the_surrogate() -> None:
    dev = make_sim("tanh", noise=0.05, seed=3)
    answers: list[np.ndarray] = []

    def query(x: np.ndarray) -> np.ndarray:
        answers.append(dev.query(x))
        return answers[-1]

    x = tf.constant(np.zeros((8, 1), np.float32))
    y = device_call(query, lambda z: tf.tanh(1.5 * z), x, 1)
    np.testing.assert_array_equal(y.numpy(), answers[0])
    assert np.std(y.numpy()) > 0.01  # noisy device, not the noise-free surrogate


def test_gradient_reaches_model_weights_through_the_device() -> None:
    """Through a noise-free device with its analytic surrogate, weight gradients
    equal those of the all-TensorFlow path (the op is not a silent zero)."""
    dev = make_sim("tanh", noise=0.0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)]
    )
    t = tf.constant(np.linspace(-0.5, 0.5, 32, dtype=np.float32)[:, None])

    def loss_with(fn) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            x = tf.clip_by_value(model(t), -1.0, 1.0)
            loss = tf.reduce_mean((fn(x) - t) ** 2)
        return tape.gradient(loss, model.trainable_variables)

    via_device = loss_with(lambda x: device_call(dev.query, lambda z: tf.tanh(1.5 * z), x, 1))
    via_tf = loss_with(lambda x: tf.tanh(1.5 * x))
    for a, b in zip(via_device, via_tf, strict=True):
        assert np.abs(a.numpy()).max() > 0
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-7)


def test_static_shapes_survive_tf_function() -> None:
    dev = make_sim("saleh_iq")
    shapes = []

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)], jit_compile=False)
    def f(x: tf.Tensor) -> tf.Tensor:
        y = device_call(dev.query, tf_saleh_iq, x, 2)
        shapes.append(y.shape.as_list())
        return y

    assert f(tf.zeros((5, 2))).shape == (5, 2)
    assert shapes == [[None, 2]]


def test_straight_through_is_device_forward_surrogate_backward() -> None:
    y_dev = tf.constant([[3.0]])
    x = tf.constant([[0.5]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = straight_through(y_dev, 2.0 * x)
    assert float(y[0, 0]) == 3.0 and float(tape.gradient(y, x)[0, 0]) == 2.0


def test_keras_model_fit_trains_through_the_device() -> None:
    keras.utils.set_random_seed(0)
    dev = make_sim("rapp", noise=1e-3, seed=2)
    metered = MeteredDevice(dev, None, budget=0)
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1.2, 1.2, (3000, 1)).astype(np.float32)
    surrogate, _ = fit_surrogate(xs, dev.query(xs), FitConfig(steps=800), seed=0)

    def query(x: np.ndarray) -> np.ndarray:
        return metered.query(x, "eval")

    inverse = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(1)]
    )
    t_in = keras.Input((1,))
    x = keras.layers.Lambda(lambda z: tf.clip_by_value(z, -1.2, 1.2))(inverse(t_in))
    closed_loop = keras.Model(t_in, DeviceLayer(query, surrogate, 1)(x))
    closed_loop.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=False)
    t = dev.clean(rng.uniform(-1.1, 1.1, (2048, 1)).astype(np.float32))
    sur_before = [w.copy() for w in surrogate.get_weights()]
    before = closed_loop.evaluate(t, t, verbose=0, batch_size=256)
    hist = closed_loop.fit(t, t, epochs=15, batch_size=128, verbose=0)
    after = closed_loop.evaluate(t, t, verbose=0, batch_size=256)
    assert after < before / 30, (before, after, hist.history["loss"][-3:])
    assert metered.used["eval"] >= 15 * 2048  # every training batch went to the device
    for w0, w1 in zip(sur_before, surrogate.get_weights(), strict=True):
        np.testing.assert_array_equal(w0, w1)  # model.fit trains M only; the surrogate has its own loss


def test_grad_cosine_of_a_learned_surrogate_on_a_smooth_device() -> None:
    keras.utils.set_random_seed(0)
    dev = make_sim("rapp", seed=4)
    rng = np.random.default_rng(4)
    xs = rng.uniform(-1.2, 1.2, (4000, 1)).astype(np.float32)
    surrogate, _ = fit_surrogate(xs, dev.query(xs), FitConfig(steps=1500), seed=0)
    metered = MeteredDevice(dev, None, budget=0)
    assert grad_cosine(metered, surrogate, seed=0) > 0.95
    # A surrogate with the wrong slope sign points the other way.
    assert grad_cosine(metered, lambda z: -surrogate(z), seed=0) < -0.95
    assert metered.used["eval"] == 2 * (32 * 2 * 4)  # two calls, 2 steps x 4 repeats per point
