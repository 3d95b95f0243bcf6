"""The device contract: what hwloop needs from anything it can query.

A device is a black box F: (n, in_dim) inputs -> (n, out_dim) outputs, with a
declared safe input range. `BaseDevice` owns what every device needs once -
shape and finiteness checks, bounds enforcement, chunking by ``max_batch``,
counting and timing - so a concrete device implements only ``_query_batch``.

This module is the whole contract a driver or simulator needs: `Device`,
`DeviceInfo`, `BaseDevice`, URI parameters (`Param`, `parse_params`) and the
device errors. Drivers and simulators import nothing else from hwloop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl

import numpy as np

from hwloop.errors import (
    BadDeviceParameterError,
    DeviceDisconnected,
    DeviceError,
    DeviceRebooted,
    DeviceTimeout,
    HwloopError,
    NonFiniteAnswer,
    OutOfRangeError,
    ShapeError,
    UnknownSchemeError,
    UnusableAnswer,
    UsageError,
)

log = logging.getLogger(__name__)

__all__ = [
    "BadDeviceParameterError",
    "BaseDevice",
    "Device",
    "DeviceDisconnected",
    "DeviceError",
    "DeviceInfo",
    "DeviceRebooted",
    "DeviceStats",
    "DeviceTimeout",
    "HwloopError",
    "NonFiniteAnswer",
    "OutOfRangeError",
    "Param",
    "ShapeError",
    "UnknownSchemeError",
    "UnusableAnswer",
    "UsageError",
    "check_inputs",
    "parse_params",
]


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


@dataclass(frozen=True)
class Param:
    """One URI parameter: its type, default and a line of help."""

    type: type
    default: Any
    help: str = ""


def parse_params(query: str, spec: Mapping[str, Param], *, where: str) -> dict[str, Any]:
    """Parse ``a=1&b=x`` against ``spec``; unknown names and bad values raise."""
    values = {name: p.default for name, p in spec.items()}
    for key, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in spec:
            allowed = ", ".join(sorted(spec)) or "none"
            raise BadDeviceParameterError(f"{where}: unknown parameter {key!r} (allowed: {allowed})")
        values[key] = _convert(raw, spec[key].type, key=key, where=where)
    return values


def _convert(raw: str, typ: type, *, key: str, where: str) -> Any:
    try:
        if typ is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            return int(raw, 0)
        if typ is float:
            v = float(raw)
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError(raw)
            return v
        return typ(raw)
    except ValueError:
        raise BadDeviceParameterError(
            f"{where}: parameter {key}={raw!r} is not a valid {typ.__name__}"
        ) from None
