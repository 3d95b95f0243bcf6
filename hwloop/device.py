"""The device contract: what hwloop needs from anything it can query.

A device is a black box F: (n, in_dim) inputs -> (n, out_dim) outputs, with a
declared safe input range. `BaseDevice` owns what every device needs once -
shape and finiteness checks, bounds enforcement, chunking by ``max_batch``,
counting and timing - so a concrete device implements only ``_query_batch``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from hwloop.errors import DeviceError, NonFiniteAnswer, OutOfRangeError, ShapeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceInfo:
    """Static description of a device; ``low``/``high`` bound every input."""

    name: str
    in_dim: int
    out_dim: int
    max_batch: int
    low: tuple[float, ...]
    high: tuple[float, ...]
    stateful: bool = False
    firmware: str = ""

    def __post_init__(self) -> None:
        if self.in_dim < 1 or self.out_dim < 1:
            raise ShapeError(f"device {self.name!r}: in_dim and out_dim must be >= 1")
        if self.max_batch < 1:
            raise ShapeError(f"device {self.name!r}: max_batch must be >= 1")
        object.__setattr__(self, "low", tuple(float(v) for v in self.low))
        object.__setattr__(self, "high", tuple(float(v) for v in self.high))
        if len(self.low) != self.in_dim or len(self.high) != self.in_dim:
            raise ShapeError(
                f"device {self.name!r}: low/high need {self.in_dim} values each, "
                f"got {len(self.low)} and {len(self.high)}"
            )
        lo, hi = np.array(self.low), np.array(self.high)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
            raise ShapeError(f"device {self.name!r}: need finite low < high per input")

    @property
    def low_array(self) -> np.ndarray:
        return np.asarray(self.low, dtype=np.float32)

    @property
    def high_array(self) -> np.ndarray:
        return np.asarray(self.high, dtype=np.float32)

    def uniform(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n inputs drawn uniformly over the safe range, as float32 (n, in_dim)."""
        return rng.uniform(self.low_array, self.high_array, size=(n, self.in_dim)).astype(np.float32)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            "max_batch": self.max_batch,
            "low": list(self.low),
            "high": list(self.high),
            "stateful": self.stateful,
            "firmware": self.firmware,
        }


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


def check_inputs(info: DeviceInfo, x: np.ndarray) -> np.ndarray:
    """Return ``x`` as C-contiguous float32 (n, in_dim), or raise.

    Bounds are checked on the float32 values, the ones that reach the device.
    """
    arr = np.asarray(x)
    if arr.ndim == 1 and info.in_dim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != info.in_dim:
        raise ShapeError(f"{info.name}: inputs must have shape (n, {info.in_dim}), got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise OutOfRangeError(f"{info.name}: {bad} non-finite input value(s); nothing sent")
    below = arr < info.low_array
    above = arr > info.high_array
    if below.any() or above.any():
        n_bad = int(np.count_nonzero(below | above))
        raise OutOfRangeError(
            f"{info.name}: {n_bad} input value(s) outside the safe range "
            f"[{list(info.low)}, {list(info.high)}]; nothing sent"
        )
    return arr


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

    def _reset(self) -> None:
        """Override for devices with memory."""

    def _close(self) -> None:
        """Override to release a transport."""

    def query(self, x: np.ndarray) -> np.ndarray:
        if self._closed:
            raise DeviceError(f"{self.info.name}: device is closed")
        arr = check_inputs(self.info, x)
        n = arr.shape[0]
        out = np.empty((n, self.info.out_dim), dtype=np.float32)
        t0 = time.perf_counter()
        step = self.info.max_batch
        for start in range(0, n, step):
            chunk = arr[start : start + step]
            y = np.asarray(self._query_batch(chunk), dtype=np.float32)
            if y.shape != (chunk.shape[0], self.info.out_dim):
                raise DeviceError(
                    f"{self.info.name}: answered shape {y.shape} for "
                    f"{chunk.shape[0]} row(s), expected ({chunk.shape[0]}, {self.info.out_dim})"
                )
            if not np.all(np.isfinite(y)):
                raise NonFiniteAnswer(f"{self.info.name}: answered non-finite values")
            out[start : start + chunk.shape[0]] = y
            self.stats.calls += 1
            self.stats.queries += chunk.shape[0]
        self.stats.busy_s += time.perf_counter() - t0
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
