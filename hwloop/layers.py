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
