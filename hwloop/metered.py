"""The only path from training code to a device: safety, budget, log.

Training methods never call a device directly. They call `MeteredDevice`,
which (1) refuses non-finite proposals and clips the rest to the safe range
(or refuses them under ``strict_bounds``), (2) enforces the hard cap on
training queries, and (3) commits every answer to the query log before
handing it back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from hwloop.device import Device, check_inputs
from hwloop.errors import BudgetExhausted, OutOfRangeError
from hwloop.querylog import QueryLog

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]


class MeteredDevice:
    """A device seen through the harness: clipped, budgeted and logged."""

    def __init__(
        self,
        device: Device,
        querylog: QueryLog | None,
        *,
        budget: int,
        strict_bounds: bool = False,
        progress: ProgressFn | None = None,
    ) -> None:
        self.device = device
        self.info = device.info
        self.log = querylog
        self.budget = int(budget)
        self.strict_bounds = strict_bounds
        self.progress = progress
        self.used = {"train": 0, "eval": 0, "noise": 0}
        self.clipped_values = 0
        self.device_s = 0.0

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.used["train"])

    def safe(self, x: np.ndarray) -> np.ndarray:
        """Proposals made safe to send: clipped to range, or refused."""
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim == 1 and self.info.in_dim == 1:
            arr = arr[:, None]
        if not np.all(np.isfinite(arr)):
            raise OutOfRangeError(f"{self.info.name}: model proposed non-finite inputs; nothing sent")
        if not self.strict_bounds:
            lo, hi = self.info.low_array, self.info.high_array
            outside = (arr < lo) | (arr > hi)
            if outside.any():
                self.clipped_values += int(outside.sum())
                arr = np.clip(arr, lo, hi)
        return check_inputs(self.info, arr)

    def reset(self) -> None:
        """Clear a stateful device's memory; the log records where."""
        self.device.reset()
        if self.log is not None:
            self.log.mark_reset()

    def query(self, x: np.ndarray, kind: str = "train") -> np.ndarray:
        """Measure ``x``; training queries count against the budget."""
        arr = self.safe(x)
        n = arr.shape[0]
        if kind == "train" and n > self.remaining:
            raise BudgetExhausted(
                f"{n} training queries asked, {self.remaining} left of the budget of {self.budget}"
            )
        t0 = time.perf_counter()
        y = self.device.query(arr)
        self.device_s += time.perf_counter() - t0
        if self.log is not None:
            self.log.append(arr, y, kind)
        self.used[kind] += n
        if self.progress is not None:
            self.progress(kind, n, self.used[kind])
        return y
