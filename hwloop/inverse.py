"""The trained inverse as users hold it: ``load_inverse(run).apply(t)``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from hwloop.errors import RunDirError, ShapeError

log = logging.getLogger(__name__)

INVERSE_FILE = "inverse.keras"
INFO_FILE = "device.json"


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
        return np.clip(x, self.low, self.high)

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


def load_inverse(run_dir: str | Path) -> Inverse:
    """Load the inverse a run saved; works in a fresh interpreter.

    For a device with memory this is a tapped-delay or recurrent (GRU) inverse
    whose ``apply`` takes a whole target sequence, to be sent to the device
    after a reset.
    """
    import keras

    import hwloop.gmp_keras
    import hwloop.layers  # noqa: F401 - registers hwloop's serialisable layers

    run = Path(run_dir)
    path, info_path = run / INVERSE_FILE, run / INFO_FILE
    if not run.is_dir():
        raise RunDirError(f"run directory {run} does not exist")
    if not path.is_file() or not info_path.is_file():
        raise RunDirError(f"{run} holds no trained inverse ({INVERSE_FILE} or {INFO_FILE} missing)")
    try:
        model = keras.models.load_model(path, compile=False)
        info = json.loads(info_path.read_text())
    except Exception as exc:
        raise RunDirError(f"{path}: cannot load the inverse ({type(exc).__name__}: {exc})") from exc
    memory = info.get("inverse_memory")
    if memory and memory.get("kind") == "gmp":
        from hwloop.gmp_keras import from_keras

        g = memory.get("gain", [1.0, 0.0])
        inv = from_keras(model, complex(g[0], g[1]))
        inv.info = {k: v for k, v in info.items() if k != "inverse_memory"}
        return inv  # type: ignore[return-value]
    if memory and memory.get("kind") == "gru":
        from hwloop.gru_inverse import from_saved

        return from_saved(model, info)  # type: ignore[return-value]
    if memory:
        from hwloop.tapped import SequenceInverse

        return SequenceInverse(  # type: ignore[return-value]
            model,
            int(memory["depth"]),
            int(memory["lookahead"]),
            np.asarray(info["low"], np.float32),
            np.asarray(info["high"], np.float32),
            {k: v for k, v in info.items() if k != "inverse_memory"},
        )
    return Inverse(model, info)
