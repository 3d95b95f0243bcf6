"""Serialisable Keras layers hwloop's models are made of.

Each layer keeps its constants in ``get_config`` so a saved ``.keras`` file
loads in a fresh interpreter after ``import hwloop`` with no custom_objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops


def _vec(values: Sequence[float] | np.ndarray) -> list[float]:
    return [float(v) for v in np.ravel(np.asarray(values, dtype=np.float64))]


@keras.saving.register_keras_serializable(package="hwloop")
class Standardize(keras.layers.Layer):
    """(x - mean) / std with constants fixed from the data (not trained)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.mean = _vec(mean)
        self.std = _vec(std)
        if any(s <= 0 for s in self.std):
            raise ValueError("std must be > 0")

    def call(self, x):  # type: ignore[override]
        return (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package="hwloop")
class Destandardize(keras.layers.Layer):
    """x * std + mean: the inverse of `Standardize`."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.mean = _vec(mean)
        self.std = _vec(std)

    def call(self, x):  # type: ignore[override]
        return x * np.asarray(self.std, np.float32) + np.asarray(self.mean, np.float32)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package="hwloop")
class ClipToRange(keras.layers.Layer):
    """Clip each output to the device's safe input range [low, high]."""

    def __init__(self, low: Sequence[float], high: Sequence[float], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.low = _vec(low)
        self.high = _vec(high)

    def call(self, x):  # type: ignore[override]
        return ops.clip(x, np.asarray(self.low, np.float32), np.asarray(self.high, np.float32))

    def get_config(self) -> dict:
        return {**super().get_config(), "low": self.low, "high": self.high}


def _mask_array(mask: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    from hwloop.errors import ShapeError

    arr = np.asarray(mask, dtype=np.float32)
    if arr.ndim != 2 or 0 in arr.shape:
        raise ShapeError(f"a connection mask must be a non-empty 2-D (in_dim, units) array, got {arr.shape}")
    if not np.all((arr == 0.0) | (arr == 1.0)):
        raise ShapeError("a connection mask may hold only 0 and 1")
    return arr


@keras.saving.register_keras_serializable(package="hwloop")
class MaskedDense(keras.layers.Layer):
    """A Dense layer whose connection i -> j exists only where ``mask[i, j] == 1``.

    The kernel is multiplied by the fixed mask inside ``call`` (a masked
    kernel, not a reset after each step), so a masked connection is exactly
    zero in the effective kernel and its raw weight gets exactly zero
    gradient: d(x @ (W * M))/dW_ij = x_i M_ij = 0. The raw kernel's masked
    entries are also zeroed when the layer is built, so ``kernel * mask ==
    kernel`` holds from the start and stays so under gradient descent.
    """

    def __init__(
        self,
        units: int,
        mask: Sequence[Sequence[float]] | np.ndarray,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: object = "glorot_uniform",
        bias_initializer: object = "zeros",
        **kwargs: object,
    ) -> None:
        from hwloop.errors import ShapeError

        super().__init__(**kwargs)
        self.units = int(units)
        self._mask = _mask_array(mask)
        if self._mask.shape[1] != self.units:
            raise ShapeError(f"mask has {self._mask.shape[1]} columns but the layer has {self.units} units")
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @property
    def mask(self) -> np.ndarray:
        """The fixed 0/1 connection mask, shape (in_dim, units)."""
        return self._mask.copy()

    def build(self, input_shape: tuple) -> None:
        from hwloop.errors import ShapeError

        in_dim = int(input_shape[-1])
        if self._mask.shape != (in_dim, self.units):
            raise ShapeError(
                f"{self.name}: mask shape {self._mask.shape} does not fit (in_dim, units) = "
                f"({in_dim}, {self.units})"
            )
        self.kernel = self.add_weight(
            name="kernel", shape=(in_dim, self.units), initializer=self.kernel_initializer
        )
        self.kernel.assign(self.kernel * self._mask)
        self.bias = (
            self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )

    def masked_kernel(self):
        """The effective kernel ``kernel * mask`` that ``call`` uses."""
        return self.kernel * ops.convert_to_tensor(self._mask, dtype=self.kernel.dtype)

    def call(self, x):  # type: ignore[override]
        y = ops.matmul(x, self.masked_kernel())
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "mask": self._mask.tolist(),
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
