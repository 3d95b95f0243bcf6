"""An earlier run to start from (``--init-from RUN``): its inverse, surrogate and logged pairs."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from hwloop.device import DeviceInfo
from hwloop.errors import RunDirError, UsageError
from hwloop.inverses.models import FitConfig

log = logging.getLogger(__name__)

SURROGATE_FILE = "surrogate.keras"


@dataclass
class Parent:
    """What a new run takes over from its parent run."""

    run: Path
    inverse: keras.Model  # unclipped: targets -> inputs
    surrogate: keras.Model | None
    x: np.ndarray  # the parent's logged training pairs
    y: np.ndarray
    surrogate_refitted: bool = False


def check_parent(run_dir: str | None, info: DeviceInfo, *, predistorter: bool = False) -> Path:
    """RUN's recorded device must match this one (dimensions, safe range, memoryless; with
    ``predistorter``, a GMP predistorter's run instead): checked from its device.json before
    anything is sent or written."""
    if not run_dir:
        raise UsageError("this needs --init-from RUN")
    run = Path(run_dir)
    path = run / "device.json"
    if not path.is_file():
        raise UsageError(f"--init-from {run}: no trained run there (device.json missing)")
    try:
        rec = json.loads(path.read_text())
        dims, low, high = (int(rec["in_dim"]), int(rec["out_dim"])), rec["low"], rec["high"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--init-from {run}: unreadable device.json ({exc})") from None
    kind = (rec.get("inverse_memory") or {}).get("kind")
    if predistorter and kind != "gmp":
        raise UsageError(
            f"--init-from {run} with --signal recalibrates a GMP predistorter; {run} holds "
            f"{'a ' + str(kind) + ' inverse' if kind else 'an inverse of a memoryless device'}"
        )
    if not predistorter and rec.get("inverse_memory"):
        raise UsageError(f"--init-from {run}: its inverse is for a device with memory")
    if dims != (info.in_dim, info.out_dim):
        raise UsageError(
            f"--init-from {run} inverts a {dims[0]}->{dims[1]} device, "
            f"this one is {info.in_dim}->{info.out_dim}"
        )
    if not (np.allclose(low, info.low) and np.allclose(high, info.high)):
        raise UsageError(
            f"--init-from {run} was trained for the safe range {list(low)}..{list(high)}, "
            f"this device's is {list(info.low)}..{list(info.high)}"
        )
    return run


def load_parent(
    run_dir: str | None, info: DeviceInfo, *, need_surrogate: bool, fit_steps: int = 3000, seed: int = 0
) -> Parent:
    """Load RUN for a device described by ``info``; a parent for another device is a usage error.

    With ``need_surrogate`` and no ``surrogate.keras`` in RUN, one is fitted
    anew on RUN's logged training pairs.
    """
    from hwloop.data import load_run_pairs
    from hwloop.inverses.store import load_inverse

    run = check_parent(run_dir, info)
    try:
        inv = load_inverse(run)
    except RunDirError as exc:
        raise UsageError(f"--init-from: {exc}") from None
    pairs = load_run_pairs(run)
    inner = next(layer for layer in inv.model.layers if isinstance(layer, keras.Model))
    surrogate, refitted = None, False
    if (run / SURROGATE_FILE).is_file():
        import hwloop.inverses.layers  # noqa: F401 - registers hwloop's layers

        surrogate = keras.models.load_model(run / SURROGATE_FILE, compile=False)
    elif need_surrogate:
        from hwloop.strategies.joint import fit_surrogate

        log.info("%s has no surrogate: fitting one on its %d logged pairs", run, len(pairs.x))
        surrogate, _ = fit_surrogate(pairs.x, pairs.y, FitConfig(steps=fit_steps), seed=seed)
        refitted = True
    return Parent(run, inner, surrogate, pairs.x, pairs.y, refitted)
