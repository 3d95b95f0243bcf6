"""Inverses for devices with memory: the tapped-delay inverse.

A device with memory maps the input *sequence* to the output sequence, so
its inverse must see more than the current target. The tapped-delay inverse
is an ordinary `hwloop.inverses.models.build_regressor` fed, at time n, with the
target samples t[n + lookahead], ..., t[n], ..., t[n - depth] (zeros before
the start and after the end of the sequence, matching a device reset to an
idle state):

    x[n] = M(t[n + lookahead], ..., t[n - depth])

With ``lookahead = 0`` (the default) the inverse is causal. That suffices
when the device's filters are minimum phase: their inverses are causal and
decay geometrically, so ``depth`` past samples catch all but a tail.
A device with non-minimum-phase filters needs future targets: ``lookahead``
> 0 gives them, at the cost of a delay of ``lookahead`` samples when the
inverse runs in real time (offline, the whole target sequence is known).

It is trained by `hwloop.strategies.sequence` (ILA on sequences) and scored
by `hwloop.evaluate.evaluate_sequence`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from hwloop.errors import ShapeError, UsageError
from hwloop.inverses.base import Family, save_model, within_device, without_memory
from hwloop.inverses.models import build_regressor

log = logging.getLogger(__name__)


def tapped(seq: np.ndarray, depth: int, lookahead: int = 0) -> np.ndarray:
    """(n, d) -> (n, d * (lookahead + 1 + depth)): block k holds seq[i + lookahead - k].

    Samples before the start and after the end are zeros.
    """
    arr = np.asarray(seq, np.float32)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ShapeError(f"a sequence must be (n, d), got shape {arr.shape}")
    if depth < 0 or lookahead < 0:
        raise UsageError(f"depth and lookahead must be >= 0, got {depth} and {lookahead}")
    n, d = arr.shape
    padded = np.concatenate(
        [np.zeros((depth, d), np.float32), arr, np.zeros((lookahead, d), np.float32)], axis=0
    )
    # Row i of padded sits at time i - depth; block k is the sample at time i + lookahead - k.
    blocks = [padded[depth + lookahead - k : depth + lookahead - k + n] for k in range(lookahead + 1 + depth)]
    return np.concatenate(blocks, axis=1)


@dataclass
class SequenceInverse:
    """A tapped-delay inverse: target sequence (n, out_dim) -> input sequence (n, in_dim)."""

    model: keras.Model
    depth: int
    lookahead: int
    low: np.ndarray
    high: np.ndarray
    device_info: dict = field(default_factory=dict)

    @property
    def in_dim(self) -> int:
        """The device's input dimension (what the inverse proposes)."""
        return len(self.low)

    @property
    def out_dim(self) -> int:
        """The device's output dimension (what a target row holds)."""
        return int(self.model.input_shape[-1]) // (self.depth + 1 + self.lookahead)

    def apply(self, t: np.ndarray) -> np.ndarray:
        """Inputs for the target sequence ``t`` from a reset device, clipped to the safe range."""
        feats = tapped(t, self.depth, self.lookahead)
        expected = int(self.model.input_shape[-1])
        if feats.shape[1] != expected:
            raise ShapeError(f"targets give {feats.shape[1]} tapped features, the model takes {expected}")
        if len(feats) == 0:
            return np.zeros((0, len(self.low)), np.float32)
        x = np.asarray(self.model.predict_on_batch(feats), np.float32)
        return within_device(x, self.low, self.high, self.device_info)

    __call__ = apply

    def save(self, run_dir: str | Path) -> Path:
        """inverse.keras and device.json, with the taps `load_inverse` needs to rebuild this."""
        info = self.device_info or {"low": self.low.tolist(), "high": self.high.tolist()}
        return save_model(run_dir, self.model, info, {"depth": self.depth, "lookahead": self.lookahead})


def build_tapped_inverse(
    t_seq: np.ndarray,
    x_seq: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    *,
    depth: int,
    lookahead: int = 0,
    hidden: tuple[int, ...] = (64, 64),
    seed: int = 0,
) -> SequenceInverse:
    """An untrained tapped-delay inverse whose standardisation comes from example sequences."""
    feats = tapped(t_seq, depth, lookahead)
    model = build_regressor(
        feats, np.asarray(x_seq, np.float32), hidden=hidden, seed=seed, name="tapped_inverse"
    )
    return SequenceInverse(model, depth, lookahead, np.asarray(low, np.float32), np.asarray(high, np.float32))


def _load(model: keras.Model, info: dict) -> SequenceInverse:
    memory = info["inverse_memory"]
    return SequenceInverse(
        model,
        int(memory["depth"]),
        int(memory["lookahead"]),
        np.asarray(info["low"], np.float32),
        np.asarray(info["high"], np.float32),
        without_memory(info),
    )


FAMILY = Family("tapped", (SequenceInverse,), SequenceInverse.save, _load)
