"""What every inverse family shares: the memoryless `Inverse`, the run files, the family record.

A family (mlp, tapped, gru, gmp) is a module that builds and holds one kind of
inverse and says, in its `Family` record, how to write it into a run
directory and how to read it back. `hwloop.inverses.store` keeps the one
table of families; this module imports none of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwloop.device import IQEnvelope
from hwloop.errors import ShapeError

log = logging.getLogger(__name__)

INVERSE_FILE = "inverse.keras"
INFO_FILE = "device.json"


def within_device(x: np.ndarray, low: np.ndarray, high: np.ndarray, device_info: dict | None) -> np.ndarray:
    """Inputs clipped to the device's safe region: its box and, when it declares one, its I/Q
    envelope (pairs scaled onto the peak circle), so what ``apply`` returns may be sent as it is."""
    x = np.clip(np.asarray(x, np.float32), low, high)
    env = (device_info or {}).get("envelope")
    if env:
        x, _ = IQEnvelope(**env).clip(x)
    return x


class Inverse:
    """Targets (n, out_dim) -> inputs (n, in_dim), always within the safe range."""

    def __init__(self, model, device_info: dict) -> None:
        self.model = model
        self.device_info = device_info
        self.out_dim = int(device_info["out_dim"])
        self.in_dim = int(device_info["in_dim"])
        self.low = np.asarray(device_info["low"], np.float32)
        self.high = np.asarray(device_info["high"], np.float32)

    def apply(self, t: np.ndarray) -> np.ndarray:
        arr = np.asarray(t, dtype=np.float32)
        if arr.ndim == 1 and self.out_dim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != self.out_dim:
            raise ShapeError(f"targets must have shape (n, {self.out_dim}), got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ShapeError("targets contain non-finite values")
        if arr.shape[0] == 0:
            return np.zeros((0, self.in_dim), np.float32)
        x = np.asarray(self.model.predict_on_batch(arr), dtype=np.float32)
        # The model ends in a clip layer; clipping again guards against float drift.
        return within_device(x, self.low, self.high, self.device_info)

    __call__ = apply

    def save(self, run_dir: str | Path) -> Path:
        return save_model(run_dir, self.model, self.device_info)


def save_model(run_dir: str | Path, model, device_info: dict, memory: dict | None = None) -> Path:
    """Write inverse.keras and device.json; ``memory`` holds a tapped inverse's depth and lookahead."""
    run = Path(run_dir)
    path = run / INVERSE_FILE
    model.save(path)
    info = {**device_info, **({"inverse_memory": memory} if memory else {})}
    (run / INFO_FILE).write_text(json.dumps(info, indent=2))
    return path


def without_memory(info: dict) -> dict:
    """device.json as the device described it, without the inverse's own record."""
    return {k: v for k, v in info.items() if k != "inverse_memory"}


@dataclass(frozen=True)
class Family:
    """One inverse family: the objects it holds, how it saves them and how it loads them.

    ``save(inverse, run_dir)`` writes inverse.keras and device.json;
    ``load(model, info)`` rebuilds the inverse from the loaded Keras model and
    the whole device.json (``info["inverse_memory"]`` is the family's record).
    """

    kind: str
    types: tuple[type, ...]
    save: Callable[[Any, Path], Path]
    load: Callable[[Any, dict], Any]


def _save_mlp(inverse: Inverse, run_dir: Path) -> Path:
    return save_model(run_dir, inverse.model, inverse.device_info)


def _load_mlp(model: Any, info: dict) -> Inverse:
    return Inverse(model, without_memory(info))


MLP = Family("mlp", (Inverse,), _save_mlp, _load_mlp)
