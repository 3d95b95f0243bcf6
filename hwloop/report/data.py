"""A run directory read once for the report: `RunData` and `load_run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwloop.config import read_toml
from hwloop.errors import RunDirError, UsageError
from hwloop.querylog import read_rows
from hwloop.rundir import RunDir, read_json_object


@dataclass
class RunData:
    """Everything the report draws, read once from the run directory."""

    run_dir: Path
    in_dim: int
    out_dim: int
    low: list[float] | None
    high: list[float] | None
    metrics: dict[str, Any]
    config: dict[str, Any]
    train_x: np.ndarray
    train_y: np.ndarray
    train_call_ends: list[int]  # cumulative training rows after each training call
    eval_t: np.ndarray | None
    eval_y: np.ndarray | None
    notes: list[str] = field(default_factory=list)
    evaluation: dict[str, np.ndarray] | None = None


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory; anything missing or unreadable is a `RunDirError`."""
    rd = RunDir(run_dir)
    run = rd.path
    if not run.is_dir():
        raise RunDirError(f"run directory {run} does not exist")
    if not rd.log_path.is_file():
        raise RunDirError(f"{run} holds no query log (queries.sqlite): not a run directory")
    metrics = rd.read_metrics()
    device = read_json_object(run / "device.json")
    config = _read_config(run / "config.toml")
    notes = []
    if metrics is None:
        notes.append("metrics.json missing: the run did not finish")
    in_dim, out_dim, rows = read_rows(rd.log_path, "train")
    info = device or config.get("device_info") or {}
    low, high = info.get("low"), info.get("high")
    if not (isinstance(low, list) and isinstance(high, list) and len(low) == len(high) == in_dim):
        low = high = None
    train_x = np.concatenate([x for _, x, _ in rows]) if rows else np.zeros((0, in_dim))
    train_y = np.concatenate([y for _, _, y in rows]) if rows else np.zeros((0, out_dim))
    ends = list(np.cumsum([len(x) for _, x, _ in rows]).tolist())
    ev = rd.load_evaluation()
    eval_t = None if ev is None else ev["targets"]
    eval_y = None if ev is None else ev["outputs"]
    return RunData(
        run,
        in_dim,
        out_dim,
        low,
        high,
        metrics or {},
        config,
        train_x,
        train_y,
        ends,
        eval_t,
        eval_y,
        notes,
        ev,
    )


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return read_toml(path)
    except UsageError as exc:
        raise RunDirError(str(exc)) from None


# ---------------------------------------------------------------- drawing
