"""The only path from training code to a device: safety, budget, log, replay.

Training code never calls a device directly. It calls `MeteredDevice`, itself
a `Device`, which

1. refuses non-finite proposals and clips the rest to the safe range, and
   complex pairs of a device with an I/Q envelope onto its peak circle (or
   refuses them under ``strict_bounds``); a query above the envelope's RMS
   limit is refused: nothing unsafe reaches a driver;
2. enforces the hard cap on training queries, over the whole log: a resumed
   run never measures a training row that would put more than ``budget``
   training rows into its log, however many times it is resumed;
3. hands the driver the whole batch and commits each chunk's answers to the
   query log as they arrive, before anyone uses them; the driver keeps its
   request window full meanwhile, so a kill loses at most the chunks in flight;
4. on a resumed run, answers from the log instead of the device while the
   proposals match what was logged (strategies are deterministic for a seed),
   so no logged measurement is paid for twice;
5. never uses an answer that is not a measurement (`UnusableAnswer`): a
   stateless device is asked again; a stateful one is reset and re-warmed
   with the inputs of its current sequence (answers not logged) and then
   asked again, so its state never steps twice on one input; a stateful
   device that rebooted mid-sequence is re-warmed the same way;
6. paces queries to ``max_rate`` rows per second for fragile hardware
   (chunk by chunk, without pipelining).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np

from hwloop import progress
from hwloop.device import Device, DeviceInfo, DeviceRebooted, UnusableAnswer, check_inputs
from hwloop.errors import BudgetExhausted, NonFiniteAnswer, OutOfRangeError
from hwloop.querylog import KINDS, QueryLog

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]


class MeteredDevice:
    """A device seen through the harness: clipped, budgeted, logged and replayable."""

    info: DeviceInfo

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
        self.warmup_rows = 0  # inputs re-sent, unlogged, to rebuild a stateful device's memory
        self.recoveries = 0  # unusable answers or reboots recovered from
        self._rate_t0: float | None = None
        self._rate_rows = 0
        self._replay: deque[tuple[str, np.ndarray, np.ndarray]] = deque()
        self._sequence: list[np.ndarray] = []  # a stateful device's inputs since its last reset
        self._in_sync = True  # the physical device has seen all of _sequence
        self.logged_train = querylog.count("train") if querylog is not None else 0
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
            if self.info.envelope is not None:  # complex pairs: onto the circle |x| = peak, phase kept
                arr, moved = self.info.envelope.clip(arr)
                self.clipped_values += moved
        return check_inputs(self.info, arr)

    def reset(self) -> None:
        """Clear a stateful device's memory; the log records where (once: not again on replay)."""
        self.device.reset()
        self._sequence.clear()
        self._in_sync = True
        if self.log is not None and not self._replay:
            self.log.mark_reset()

    def close(self) -> None:
        self.device.close()

    def query(self, x: np.ndarray, kind: str = "train") -> np.ndarray:
        """Measure ``x``; training queries count against the budget."""
        arr = self.safe(x)
        n = arr.shape[0]
        if kind == "train" and n > self.remaining:
            raise BudgetExhausted(
                f"{n} training queries asked, {self.remaining} left of the budget of {self.budget}"
            )
        out = np.empty((n, self.info.out_dim), np.float32)
        start = 0
        while start < n:  # leading rows the log already holds
            replayed = self._from_log(arr[start:], kind)
            if replayed is None:
                break
            out[start : start + len(replayed)] = replayed
            start += len(replayed)
        if start < n:
            self._measure(arr[start:], kind, out[start:])
        self.used[kind] += n
        if self.progress is not None:
            self.progress(kind, n, self.used[kind])
        if kind == "train":
            progress.count("collect", n, total=self.budget, unit="queries")
        else:
            progress.count("evaluate", n, unit="queries")
        return out

    # ------------------------------------------------------------ replay
    def _from_log(self, rest: np.ndarray, kind: str) -> np.ndarray | None:
        """The logged answers to the leading rows of ``rest``, as many as the next logged call
        holds (or ``rest`` has): replay goes by rows, so a device reopened with another
        ``max_batch`` (chunked differently) still replays its log."""
        if not self._replay:
            return None
        k, x_logged, y_logged = self._replay[0]
        m = min(len(x_logged), len(rest))
        chunk = rest[:m]
        if k == kind and m and np.array_equal(x_logged[:m], chunk):
            if m == len(x_logged):
                self._replay.popleft()
            else:
                self._replay[0] = (k, x_logged[m:], y_logged[m:])
            y_logged = y_logged[:m]
            self.replayed_rows += len(chunk)
            if self.info.stateful:
                self._sequence.append(chunk)
                self._in_sync = False
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

    # ------------------------------------------------------------ the device
    def _measure(self, arr: np.ndarray, kind: str, out: np.ndarray) -> None:
        """Ask the device for ``arr``, committing each chunk's answer as it lands."""
        if kind == "train" and self.logged_train + len(arr) > self.budget:
            raise BudgetExhausted(
                f"the query log already holds {self.logged_train} training rows of the budget of "
                f"{self.budget}; {len(arr)} more asked: the cap holds across resumes"
            )
        done = 0
        failures = 0
        while done < len(arr):
            base = done
            try:
                if not self._in_sync:
                    self._rewarm()
                for offset, y in self._answers(arr[base:]):
                    start, stop = base + offset, base + offset + len(y)
                    if self.log is not None:
                        self.log.append(arr[start:stop], y, kind)  # committed before anyone sees y
                    self.logged_train += len(y) if kind == "train" else 0
                    out[start:stop] = y
                    if self.info.stateful:
                        self._sequence.append(arr[start:stop])
                    done = stop
            except (UnusableAnswer, DeviceRebooted) as exc:
                failures += 1
                if failures > self.answer_retries:
                    raise type(exc)(f"{exc}; {failures} attempts, nothing logged") from None
                self.recoveries += 1
                if self.info.stateful:
                    self._in_sync = False  # its memory may have stepped: rebuild it, then ask again
                    log.warning("%s; resetting and re-warming the device, then asking again", exc)
                else:
                    log.warning("%s (attempt %d); asking again", exc, failures)

    def _answers(self, arr: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(offset, answer) per chunk as answers land: pipelined when the device can."""
        iter_query = getattr(self.device, "iter_query", None)
        if self.max_rate or not callable(iter_query):
            stream: Iterator[tuple[int, np.ndarray]] = self._one_chunk_at_a_time(arr)
        else:
            stream = iter_query(arr)
        t0 = time.perf_counter()
        try:
            for offset, y in stream:
                self.device_s += time.perf_counter() - t0
                y = np.asarray(y, np.float32)
                if not np.all(np.isfinite(y)):
                    raise NonFiniteAnswer(f"{self.info.name}: answered non-finite values")
                self.device_rows += len(y)
                yield offset, y
                t0 = time.perf_counter()
        finally:
            self.device_s += time.perf_counter() - t0

    def _one_chunk_at_a_time(self, arr: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        step = self.info.max_batch
        for start in range(0, len(arr), step):
            chunk = arr[start : start + step]
            self._pace(len(chunk))
            yield start, np.asarray(self.device.query(chunk), np.float32)

    def _rewarm(self) -> None:
        """Reset a stateful device and drive it through its current sequence again
        (answers not logged), so its memory matches the log."""
        self.device.reset()
        self._in_sync = True
        if not self._sequence:
            return
        warm = np.concatenate(self._sequence)
        log.info("re-warming %s with %d inputs of the current sequence", self.info.name, len(warm))
        for _ in self._answers(warm):
            pass
        self.warmup_rows += len(warm)

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
