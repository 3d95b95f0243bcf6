"""The real device in the forward pass, a surrogate's VJP in the backward pass.

A device has no gradient. `device_call` runs the device on the forward pass
(through ``tf.numpy_function``, with static shapes restored by
``ensure_shape``) and, on the backward pass, returns the surrogate's
vector-Jacobian product fed with the upstream gradient:
``tape.gradient(F_hat(x), x, output_gradients=upstream)`` - TF1's
``grad_ys``. `straight_through` is the equivalent one-liner
``stop_gradient(y_device - y_hat) + y_hat``. `DeviceLayer` wraps either for
Keras models (compile them with ``jit_compile=False``: a numpy_function
cannot be XLA-compiled, and a model holding one cannot be saved).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

QueryFn = Callable[[np.ndarray], np.ndarray]
Surrogate = Callable[[tf.Tensor], tf.Tensor]


def _query_tensor(query: QueryFn, x: tf.Tensor, out_dim: int) -> tf.Tensor:
    def run(xv: np.ndarray) -> np.ndarray:
        return np.asarray(query(np.asarray(xv, np.float32)), dtype=np.float32)

    y = tf.numpy_function(run, [x], tf.float32, stateful=True, name="device_query")
    return tf.ensure_shape(y, [x.shape[0], out_dim])


def device_call(query: QueryFn, surrogate: Surrogate, x: tf.Tensor, out_dim: int) -> tf.Tensor:
    """y = device(x); dL/dx = J_surrogate(x)^T dL/dy (a `tf.custom_gradient`)."""

    @tf.custom_gradient
    def op(xt: tf.Tensor) -> tuple[tf.Tensor, Callable]:
        y = _query_tensor(query, xt, out_dim)

        def grad(upstream: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                tape.watch(xt)
                y_hat = surrogate(xt)
            return tape.gradient(y_hat, xt, output_gradients=upstream)

        return y, grad

    return op(tf.convert_to_tensor(x, tf.float32))


def straight_through(
    y_device: tf.Tensor, y_hat: tf.Tensor, y_hat_at_query: tf.Tensor | None = None
) -> tf.Tensor:
    """Forward value of the device, gradient of the surrogate.

    ``stop_gradient(y_device - y_hat) + y_hat``. When the model has moved since
    the device was asked (several steps per batch of answers), give the
    surrogate's value where the device was asked as ``y_hat_at_query``: the
    forward value is then the device's answer carried along the surrogate,
    ``y_device + y_hat - y_hat_at_query``, which equals ``y_device`` at the
    queried input; the gradient is still the surrogate's.
    """
    anchor = y_hat if y_hat_at_query is None else y_hat_at_query
    return tf.stop_gradient(y_device - anchor) + y_hat


def device_call_straight_through(
    query: QueryFn, surrogate: Surrogate, x: tf.Tensor, out_dim: int
) -> tf.Tensor:
    """The same op as `device_call`, written as ``stop_gradient(y_dev - y_hat) + y_hat``."""
    x = tf.convert_to_tensor(x, tf.float32)
    y_dev = _query_tensor(query, tf.stop_gradient(x), out_dim)
    return straight_through(y_dev, surrogate(x))


class DeviceLayer(keras.layers.Layer):
    """A Keras layer whose forward pass is the device and backward pass the surrogate.

    Not serialisable on purpose: a device is a live connection, not a weight.
    The surrogate's variables are not trained by this layer (its VJP only
    reads them); train the surrogate with its own loss and var_list.
    """

    def __init__(
        self,
        query: QueryFn,
        surrogate: keras.Model | Surrogate,
        out_dim: int,
        *,
        form: str = "custom_gradient",
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        if form not in ("custom_gradient", "straight_through"):
            raise ValueError("form must be 'custom_gradient' or 'straight_through'")
        self.query = query
        # Held in a closure, not as an attribute: Keras would otherwise adopt
        # the surrogate as a sub-layer and its variables as this layer's.
        self._surrogate = lambda x: surrogate(x)
        self.out_dim = int(out_dim)
        self.form = form

    def call(self, x):  # type: ignore[override]
        fn = device_call if self.form == "custom_gradient" else device_call_straight_through
        return fn(self.query, self._surrogate, x, self.out_dim)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.out_dim)

    def get_config(self) -> dict:
        raise TypeError("DeviceLayer wraps a live device and cannot be serialised")
