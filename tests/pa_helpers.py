"""Shared by the GMP tests: a simulated Wiener-Hammerstein amplifier behind a sequence query."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hwloop.device import BaseDevice
from hwloop.simulators.catalog import make_sim


def wh_query(
    noise: float = 1e-3, seed: int = 5, **params: float
) -> tuple[BaseDevice, Callable[[np.ndarray], np.ndarray], list[int]]:
    """``sim:pa_wh`` (with ``params``), a ``query_sequence(x)`` that resets it and sends x whole,
    and the lengths sent."""
    dev = make_sim("pa_wh", noise=noise, seed=seed, **params)
    calls: list[int] = []

    def query_sequence(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        dev.reset()
        return dev.query(x.astype(np.float32))

    return dev, query_sequence, calls
