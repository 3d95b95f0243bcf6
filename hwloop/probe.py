"""A first look at a device: its info, a sweep of each input, its noise."""

from __future__ import annotations

import numpy as np

from hwloop.device import Device
from hwloop.metrics import noise_variance


def probe_device(dev: Device, *, points: int = 11, repeats: int = 64, seed: int = 0) -> dict:
    """Sweep each input across its safe range (others at mid-range), then
    ask ``repeats`` random inputs twice to estimate the noise per output."""
    info = dev.info
    lo, hi = info.low_array, info.high_array
    mid = (lo + hi) / 2
    sweeps = []
    for i in range(info.in_dim):
        x = np.tile(mid, (points, 1)).astype(np.float32)
        x[:, i] = np.linspace(lo[i], hi[i], points, dtype=np.float32)
        x = np.clip(x, lo, hi)
        if info.stateful:
            dev.reset()
        y = dev.query(x)
        sweeps.append({"input": i, "x": x[:, i].tolist(), "y": y.tolist()})
    rng = np.random.default_rng(seed)
    xr = info.uniform(rng, repeats)
    var = noise_variance(dev.query(xr), dev.query(xr))
    return {"info": info.to_dict(), "sweeps": sweeps, "noise_std": np.sqrt(var).tolist()}
