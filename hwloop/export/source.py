"""What a run directory gives an export: the inverse, its family and device, representative data.

Representative data come from the run's own query log (`hwloop.querylog`):
the device's answers to training queries are what the inverse's targets
look like. They choose the fixed-point input formats, seed the golden
vectors and are TFLite's representative dataset for int8 calibration.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwloop.errors import RunDirError
from hwloop.inverses.store import family_of, load_inverse
from hwloop.inverses.tapped import tapped
from hwloop.querylog import read_rows

log = logging.getLogger(__name__)

LOG_FILE = "queries.sqlite"
METRICS_FILE = "metrics.json"


@dataclass
class RunSource:
    """A trained run, read once: the inverse, its family, the device record, the logged answers."""

    run: Path
    inverse: Any
    family: str
    info: dict
    metrics: dict
    calls: list[np.ndarray]  # the answers y of each logged training call, in order

    @property
    def depth(self) -> int:
        return int(getattr(self.inverse, "depth", 0) or 0)

    @property
    def lookahead(self) -> int:
        return int(getattr(self.inverse, "lookahead", 0) or 0)

    def targets(self, limit: int = 20_000) -> np.ndarray:
        """Logged answers as target rows (n, out_dim), evenly thinned to at most ``limit``."""
        y = np.concatenate(self.calls) if self.calls else np.zeros((0, int(self.info["out_dim"])))
        if len(y) == 0:
            raise RunDirError(f"{self.run}: the query log holds no training answers to calibrate from")
        step = max(1, len(y) // limit)
        return y[::step][:limit]

    def features(self, limit: int = 20_000) -> np.ndarray:
        """Rows the inverse's Keras model takes: targets, or tapped targets for a tapped inverse."""
        if self.family != "tapped":
            return self.targets(limit)
        rows = np.concatenate([tapped(c, self.depth, self.lookahead) for c in self.calls])
        step = max(1, len(rows) // limit)
        return rows[::step][:limit].astype(np.float64)

    def stretch(self, n: int) -> np.ndarray:
        """n consecutive logged answers from the longest training call (for a stateful golden stream)."""
        longest = max(self.calls, key=len)
        return longest[:n] if len(longest) >= n else np.concatenate([longest] * (n // len(longest) + 1))[:n]


def read_run(run_dir: str | Path) -> RunSource:
    """Load a run for export; a missing or incomplete run is a one-line `RunDirError`."""
    run = Path(run_dir)
    if not run.is_dir():
        raise RunDirError(f"run directory {run} does not exist")
    inverse = load_inverse(run)
    family = family_of(inverse).kind
    info = json.loads((run / "device.json").read_text())
    metrics_path = run / METRICS_FILE
    try:
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    except ValueError:
        metrics = {}
    if not (run / LOG_FILE).is_file():
        raise RunDirError(f"{run} holds no query log ({LOG_FILE}): an export calibrates from it")
    _, _, rows = read_rows(run / LOG_FILE, "train")
    calls = [y for _, _, y in rows]
    log.info("%s: a %s inverse, %d logged training calls", run, family, len(calls))
    return RunSource(run, inverse, family, info, metrics, calls)
