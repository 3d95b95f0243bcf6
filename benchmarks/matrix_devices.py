"""Held-out devices for the robustness matrix: not one-to-one, outside the simulator catalogue.

`hwloop.strategies.auto` decides its path from what it measures on a
device; these curves were never used to tune that, and no catalogue entry
has their shapes. Each is a `hwloop.simulators.base.SimDevice` (seeded
output noise, input-referred noise, the noise-free `clean` for scoring)
built from a transfer written here:

| name | in->out | curve |
|---|---|---|
| `sine_fold` | 1->1 | y = sin(x) over [0, 2.4]: past the peak at pi/2, [0.68, 1] is covered again |
| `bump_fold` | 1->1 | y = x exp((1 - x^2)/2) over [0, 2.2]: a Gaussian-derivative bump, peak 1 at x = 1 |
| `bump_iq` | 2->2 | I/Q: amplitude r exp((1 - r^2)/2), phase + 0.3 r^2, |x| <= 1.6 (a fold in r) |
| `sine_mix` | 2->2 | y1 = sin(1.3 (x1 + 0.2 x2)), y2 = tanh(x2 - 0.2 x1) over [-1.8, 1.8]^2: folds in y1 |
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hwloop.device import DeviceInfo, IQEnvelope
from hwloop.simulators.base import SimDevice


def _sine(x: np.ndarray) -> np.ndarray:
    return np.sin(x)


def _bump(x: np.ndarray) -> np.ndarray:
    return x * np.exp((1.0 - x * x) / 2.0)


def _bump_iq(x: np.ndarray) -> np.ndarray:
    z = x[:, 0] + 1j * x[:, 1]
    r2 = np.abs(z) ** 2
    out = z * np.exp((1.0 - r2) / 2.0) * np.exp(0.3j * r2)
    return np.stack([out.real, out.imag], axis=1)


def _sine_mix(x: np.ndarray) -> np.ndarray:
    return np.stack([np.sin(1.3 * (x[:, 0] + 0.2 * x[:, 1])), np.tanh(x[:, 1] - 0.2 * x[:, 0])], axis=1)


# name -> (transfer, low, high, I/Q envelope peak or None)
SHAPES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], tuple, tuple, float | None]] = {
    "sine_fold": (_sine, (0.0,), (2.4,), None),
    "bump_fold": (_bump, (0.0,), (2.2,), None),
    "bump_iq": (_bump_iq, (-1.6, -1.6), (1.6, 1.6), 1.6),
    "sine_mix": (_sine_mix, (-1.8, -1.8), (1.8, 1.8), None),
}


def heldout_device(name: str, *, noise: float, input_noise: float, seed: int) -> SimDevice:
    """One of `SHAPES` as a device, with the given output and input-referred noise."""
    transfer, low, high, peak = SHAPES[name]
    info = DeviceInfo(
        name=name,
        in_dim=len(low),
        out_dim=int(np.shape(transfer(np.zeros((1, len(low)))))[1]),
        max_batch=1024,
        low=low,
        high=high,
        firmware=f"matrix-heldout/{name}?noise={noise}&input_noise={input_noise}&seed={seed}",
        envelope=None if peak is None else IQEnvelope(((0, 1),), peak),
    )
    return SimDevice(info, transfer, noise=noise, input_noise=input_noise, seed=seed, one_to_one=False)
