"""Whether device rounds can improve an ILA inverse, read off answers already measured.

Training M through a surrogate F_hat can remove at most the part of the
closed-loop error that is not F_hat's own mismatch with the device (see
`hwloop.strategies.rounds.cannot_improve`, which measures it on fresh
queries at M(t)). Iterative ILA's refinement has just asked the device near
M(t), at jittered inputs x; for the reachable, noise-free target t = F_hat(x)
the same quantity needs no further query (M: the inverse that proposed them,
before it was refitted on their answers, so it is judged out of sample):

    h = |y - t - F_hat(x) + F_hat(M(t))|^2 - |y - F_hat(x)|^2 = |c|^2 + 2 r.c

with r = y - F_hat(x) the surrogate's residual at the answer (the device's
noise and F_hat's mismatch) and c = F_hat(M(t)) - t the closed-loop error
F_hat predicts for M. The noise enters only through the cross term, whose
mean is zero, so the mean of h is far more precise than either closed-loop
score. When it is not larger than twice its standard error, no round can
improve on iterative ILA by more than the measurements can show.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from hwloop.device import DeviceInfo


@dataclass(frozen=True)
class Headroom:
    """Mean and standard error of h over ``pairs`` answers, as fractions of the target power."""

    pairs: int
    mean: float
    se: float

    @property
    def significant(self) -> bool:
        return self.pairs >= 8 and self.mean > 2 * self.se

    def reason(self) -> str:
        return (
            f"headroom {self.mean:.2e} of target power, within twice its standard error ({self.se:.2e}), "
            f"on {self.pairs} answers of iterative ILA's refinement"
        )

    def to_dict(self) -> dict:
        return {
            "pairs": self.pairs,
            "mean": float(f"{self.mean:.4g}"),
            "se": float(f"{self.se:.4g}"),
            "significant": self.significant,
        }


def in_range(info: DeviceInfo, x: np.ndarray) -> np.ndarray:
    """Inputs as the device would receive them: clipped to its box and envelope."""
    arr = np.clip(np.asarray(x, np.float32), info.low_array, info.high_array)
    return arr if info.envelope is None else info.envelope.clip(arr)[0]


def headroom(
    x: np.ndarray, y: np.ndarray, inverse: keras.Model, surrogate: keras.Model, info: DeviceInfo
) -> Headroom:
    """h per measured pair (x, y) for the inverse M, through the surrogate (no query)."""
    x32 = np.asarray(x, np.float32)
    fx = np.asarray(surrogate(x32), np.float64)
    t = fx.astype(np.float32)
    c = np.asarray(surrogate(in_range(info, np.asarray(inverse(t), np.float32))), np.float64) - fx
    r = np.asarray(y, np.float64) - fx
    power = float(np.mean(np.sum(fx**2, axis=1)))
    h = (np.sum(c**2, axis=1) + 2 * np.sum(r * c, axis=1)) / max(power, 1e-300)
    n = len(h)
    se = float(np.std(h) / np.sqrt(n)) if n > 1 else float("inf")
    return Headroom(n, float(np.mean(h)) if n else 0.0, se)
