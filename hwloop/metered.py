"""The only path from training code to a device: safety, budget, log, replay.

Training methods never call a device directly. They call `MeteredDevice`,
which

1. refuses non-finite proposals and clips the rest to the safe range (or
   refuses them under ``strict_bounds``): nothing unsafe reaches a driver;
2. enforces the hard cap on training queries;
3. sends at most ``max_batch`` rows at a time and commits each chunk's
   answers to the query log before using them, so a kill loses at most one
   chunk in flight;
4. on a resumed run, answers from the log instead of the device while the
   proposals match what was logged (methods are deterministic for a seed),
   so no logged measurement is paid for twice;
5. retries an answer that is not finite, and never logs it;
6. paces queries to ``max_rate`` rows per second for fragile hardware.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from hwloop.device import Device, check_inputs
from hwloop.errors import BudgetExhausted, NonFiniteAnswer, OutOfRangeError
from hwloop.querylog import KINDS, QueryLog

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]


class MeteredDevice:
    """A device seen through the harness: clipped, budgeted, logged and replayable."""

    def __init__(
        self,
        device: Device,
        querylog: QueryLog | None,
        *,
        budget: int,
        strict_bounds: bool = False,
        progress: ProgressFn | None = None,
        max_rate: float | None = None,
        answer_retries: int = 3,
        replay: bool = False,
    ) -> None:
        self.device = device
        self.info = device.info
        self.log = querylog
        self.budget = int(budget)
        self.strict_bounds = strict_bounds
        self.progress = progress
        self.max_rate = max_rate
        self.answer_retries = answer_retries
        self.used = dict.fromkeys(KINDS, 0)
        self.clipped_values = 0
        self.device_s = 0.0
        self.device_rows = 0  # rows that really went to the device in this process
        self.replayed_rows = 0
        self.diverged_rows = 0
        self._rate_t0: float | None = None
        self._rate_rows = 0
        self._replay: deque[tuple[str, np.ndarray, np.ndarray]] = deque()
        self._since_reset: list[np.ndarray] = []  # replayed inputs of the current sequence
        self.warmup_rows = 0
        if replay and querylog is not None:
            self._replay.extend(querylog.calls())
            log.info("resuming: %d logged device calls to replay", len(self._replay))

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.used["train"])

    @property
    def replaying(self) -> bool:
        return bool(self._replay)

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
        """Clear a stateful device's memory; the log records where (once: not again on replay)."""
        self.device.reset()
        self._since_reset.clear()
        if self.log is not None and not self._replay:
            self.log.mark_reset()

    def query(self, x: np.ndarray, kind: str = "train") -> np.ndarray:
        """Measure ``x``; training queries count against the budget."""
        arr = self.safe(x)
        n = arr.shape[0]
        if kind == "train" and n > self.remaining:
            raise BudgetExhausted(
                f"{n} training queries asked, {self.remaining} left of the budget of {self.budget}"
            )
        out = np.empty((n, self.info.out_dim), np.float32)
        step = self.info.max_batch
        for start in range(0, n, step):
            chunk = arr[start : start + step]
            out[start : start + len(chunk)] = self._measure(chunk, kind)
        self.used[kind] += n
        if self.progress is not None:
            self.progress(kind, n, self.used[kind])
        return out

    def _measure(self, chunk: np.ndarray, kind: str) -> np.ndarray:
        replayed = self._from_log(chunk, kind)
        if replayed is not None:
            if self.info.stateful:
                self._since_reset.append(chunk)
            return replayed
        if self._since_reset:
            self._rewarm()
        y = self._ask_device(chunk)
        if self.log is not None:
            self.log.append(chunk, y, kind)  # committed before anyone sees y
        return y

    def _from_log(self, chunk: np.ndarray, kind: str) -> np.ndarray | None:
        if not self._replay:
            return None
        k, x_logged, y_logged = self._replay[0]
        if k == kind and x_logged.shape == chunk.shape and np.array_equal(x_logged, chunk):
            self._replay.popleft()
            self.replayed_rows += len(chunk)
            return y_logged
        # The run asks for something else than its log holds: stop replaying.
        # The rest of the log stays as it is; its training rows still count
        # against the budget, so the cap stays hard.
        self.diverged_rows = sum(len(x) for k2, x, _ in self._replay if k2 == "train")
        self.used["train"] += self.diverged_rows
        log.warning(
            "resumed run diverged from its log after %d replayed rows; %d logged training rows "
            "are kept in the log and counted against the budget",
            self.replayed_rows,
            self.diverged_rows,
        )
        self._replay.clear()
        return None

    def _rewarm(self) -> None:
        """After replaying part of a sequence, drive a stateful device through
        that part again so its memory matches the log (answers not logged)."""
        warm = np.concatenate(self._since_reset)
        self._since_reset.clear()
        log.info("re-warming %s with %d replayed inputs of the current sequence", self.info.name, len(warm))
        for start in range(0, len(warm), self.info.max_batch):
            self._ask_device(warm[start : start + self.info.max_batch])
        self.warmup_rows += len(warm)

    def _ask_device(self, chunk: np.ndarray) -> np.ndarray:
        self._pace(len(chunk))
        for attempt in range(self.answer_retries + 1):
            t0 = time.perf_counter()
            try:
                y = np.asarray(self.device.query(chunk), np.float32)
                if not np.all(np.isfinite(y)):
                    raise NonFiniteAnswer(f"{self.info.name}: answered non-finite values")
                return y
            except NonFiniteAnswer as exc:
                if attempt == self.answer_retries:
                    raise NonFiniteAnswer(
                        f"{exc}; {self.answer_retries + 1} attempts, nothing logged"
                    ) from None
                log.warning("%s (attempt %d); asking again", exc, attempt + 1)
            finally:
                self.device_s += time.perf_counter() - t0
                self.device_rows += len(chunk)
        raise AssertionError("unreachable")  # pragma: no cover

    def _pace(self, rows: int) -> None:
        """Sleep so that rows sent so far never exceed max_rate per second."""
        if not self.max_rate:
            return
        now = time.monotonic()
        if self._rate_t0 is None:
            self._rate_t0 = now
        due = self._rate_t0 + self._rate_rows / self.max_rate
        if due > now:
            time.sleep(due - now)
        self._rate_rows += rows
