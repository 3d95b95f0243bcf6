"""`Device`, the protocol, and `BaseDevice`, which owns what every device needs once."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from hwloop.device.info import DeviceInfo, check_inputs
from hwloop.errors import DeviceError, NonFiniteAnswer

log = logging.getLogger(__name__)


@runtime_checkable
class Device(Protocol):
    """Anything hwloop can train against."""

    info: DeviceInfo

    def query(self, x: np.ndarray) -> np.ndarray:
        """(n, in_dim) inputs -> (n, out_dim) float32 outputs."""
        ...

    def reset(self) -> None:
        """Clear internal state (memory); a no-op for memoryless devices."""
        ...

    def close(self) -> None:
        """Release the transport; the device is unusable afterwards."""
        ...


@dataclass
class DeviceStats:
    """Counters every device keeps; ``queries`` counts rows sent."""

    queries: int = 0
    calls: int = 0
    busy_s: float = 0.0
    resets: int = 0


class BaseDevice:
    """Validates, chunks and counts; subclasses implement `_query_batch`.

    ``_query_batch`` receives at most ``info.max_batch`` rows that are already
    float32, finite and within bounds, and must return (n, out_dim) values.
    """

    info: DeviceInfo

    def __init__(self, info: DeviceInfo) -> None:
        self.info = info
        self.stats = DeviceStats()
        self._closed = False

    def _query_batch(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _query_chunks(self, chunks: list[np.ndarray]) -> Iterator[np.ndarray]:
        """The one hook for chunked I/O: answer each chunk, in order, as it arrives.

        Every chunk holds at most ``max_batch`` rows that are already float32,
        finite and within bounds. The default asks `_query_batch` one chunk at
        a time; a driver that can keep several requests in flight overrides
        this to do so, yielding each answer as soon as it and all before it
        have arrived, so the caller can commit one answer while later chunks
        are still on the wire.
        """
        for chunk in chunks:
            yield self._query_batch(chunk)

    def _reset(self) -> None:
        """Override for devices with memory."""

    def _close(self) -> None:
        """Override to release a transport."""

    def iter_query(self, x: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Measure ``x`` chunk by chunk: yields (first row, checked answer) as answers arrive.

        An answer of the wrong shape or with non-finite values raises before
        it is yielded, so whatever a caller receives is a usable measurement.
        """
        if self._closed:
            raise DeviceError(f"{self.info.name}: device is closed")
        arr = check_inputs(self.info, x)
        step = self.info.max_batch
        starts = range(0, arr.shape[0], step)
        t0 = time.perf_counter()
        try:
            answers = self._query_chunks([arr[s : s + step] for s in starts])
            for start, y in zip(starts, answers, strict=False):
                rows = min(step, arr.shape[0] - start)
                y = np.asarray(y, dtype=np.float32)
                if y.shape != (rows, self.info.out_dim):
                    raise DeviceError(
                        f"{self.info.name}: answered shape {y.shape} for "
                        f"{rows} row(s), expected ({rows}, {self.info.out_dim})"
                    )
                if not np.all(np.isfinite(y)):
                    raise NonFiniteAnswer(f"{self.info.name}: answered non-finite values")
                self.stats.calls += 1
                self.stats.queries += rows
                yield start, y
        finally:
            self.stats.busy_s += time.perf_counter() - t0

    def query(self, x: np.ndarray) -> np.ndarray:
        arr = check_inputs(self.info, x)
        out = np.empty((arr.shape[0], self.info.out_dim), dtype=np.float32)
        for start, y in self.iter_query(arr):
            out[start : start + len(y)] = y
        return out

    def reset(self) -> None:
        self._reset()
        self.stats.resets += 1

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> BaseDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return f"<{type(self).__name__} {i.name} {i.in_dim}->{i.out_dim}>"
