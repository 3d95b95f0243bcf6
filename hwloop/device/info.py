"""`DeviceInfo`: what a device declares about itself, and the check every input passes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from hwloop.device.envelope import IQEnvelope
from hwloop.errors import OutOfRangeError, ShapeError


@dataclass(frozen=True)
class DeviceInfo:
    """Static description of a device; ``low``/``high`` bound every input.

    ``envelope`` (optional) declares complex input pairs and their magnitude
    limits (`IQEnvelope`); then nothing outside the circle reaches the device
    and every sampler draws inside it.
    """

    name: str
    in_dim: int
    out_dim: int
    max_batch: int
    low: tuple[float, ...]
    high: tuple[float, ...]
    stateful: bool = False
    firmware: str = ""
    envelope: IQEnvelope | None = None

    def __post_init__(self) -> None:
        if isinstance(self.envelope, Mapping):  # from to_dict(), e.g. device.json or a farm actor
            object.__setattr__(self, "envelope", IQEnvelope(**self.envelope))
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
        env = self.envelope
        if env is not None:
            if max(k for p in env.pairs for k in p) >= self.in_dim:
                raise ShapeError(
                    f"device {self.name!r}: envelope pairs {env.pairs} exceed in_dim {self.in_dim}"
                )
            for i, q in env.pairs:  # the disc must be reachable: the origin inside the box
                if not (lo[i] <= 0 <= hi[i] and lo[q] <= 0 <= hi[q]):
                    raise ShapeError(f"device {self.name!r}: an I/Q pair's box must contain 0")

    @property
    def low_array(self) -> np.ndarray:
        return np.asarray(self.low, dtype=np.float32)

    @property
    def high_array(self) -> np.ndarray:
        return np.asarray(self.high, dtype=np.float32)

    def uniform(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n inputs drawn uniformly over the safe region, as float32 (n, in_dim).

        Per axis over [low, high]; with an envelope, each complex pair
        uniformly over its disc (within the box), the batch kept under the
        RMS limit (`IQEnvelope.place`: row by row, so n rows are the first n
        of a larger draw).
        """
        if self.envelope is None:
            return rng.uniform(self.low_array, self.high_array, size=(n, self.in_dim)).astype(np.float32)
        # One draw per row (box and disc together), so n rows are the first rows of a larger draw.
        u = rng.uniform(0.0, 1.0, size=(n, self.in_dim + 2 * len(self.envelope.pairs)))
        x = (self.low_array + u[:, : self.in_dim] * (self.high_array - self.low_array)).astype(np.float32)
        return np.clip(self.envelope.place(x, u[:, self.in_dim :]), self.low_array, self.high_array)

    def identity(self) -> dict:
        """What makes this device this device: every field but ``max_batch`` (a transport limit).
        A run is bound to it; a resumed run checks it before sending anything."""
        d = self.to_dict()
        d.pop("max_batch")
        return d

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
            "envelope": None if self.envelope is None else self.envelope.to_dict(),
        }


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
    env = info.envelope
    if env is not None and arr.shape[0]:
        over = int(np.count_nonzero(env.magnitudes(arr) > env.peak))
        if over:
            raise OutOfRangeError(
                f"{info.name}: {over} I/Q input(s) with magnitude above the peak {env.peak:g}; nothing sent"
            )
        if env.rms is not None and (rms := env.rms_of(arr)) > env.rms:
            raise OutOfRangeError(
                f"{info.name}: the query's RMS magnitude {rms:.4g} exceeds the limit {env.rms:g}; "
                "nothing sent"
            )
    return arr
