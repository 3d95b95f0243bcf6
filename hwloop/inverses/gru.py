"""Inverses for devices with memory: the recurrent (GRU) inverse.

Where the tapped-delay inverse (`hwloop.inverses.tapped`) sees a fixed window of
past targets, a GRU carries a state through the whole target sequence:

    t (batch, time, out_dim) -> Standardize -> GRU(units) -> [z, h] -> Dense(in_dim) -> Destandardize

The Dense layer reads the standardised target beside the GRU's state, so
the memoryless part of the inverse has a direct path. The model is causal
and starts from a zero state, matching a device reset to an idle state.
`GRUInverse.apply` runs it on a whole target sequence; `GRUInverse.stream`
runs it chunk by chunk with the state carried across chunks, giving the
same samples.

It is trained by truncated backpropagation through time on random windows
of logged (output sequence -> input sequence) pairs (`fit_gru`): each
window starts with a warm-up prefix whose loss is ignored, except for
windows that start at a reset, where the zero state is the true one. A
fixed share of every batch starts at a reset: the start-up transient is
what a tapped inverse gets from its zero taps, and a GRU only from examples.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hwloop import progress
from hwloop.errors import ShapeError, UsageError
from hwloop.inverses.base import Family, save_model, within_device, without_memory
from hwloop.inverses.layers import Destandardize, Standardize

log = logging.getLogger(__name__)

KIND = "gru"
_GRU = "gru"


def _stats(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    a = np.concatenate(seqs).astype(np.float64)
    std = a.std(axis=0)
    return a.mean(axis=0), np.where(std > 1e-8, std, 1.0)


def build_gru_model(
    t_seqs: list[np.ndarray], x_seqs: list[np.ndarray], *, units: int = 32, seed: int = 0
) -> keras.Model:
    """An untrained GRU inverse whose standardisation comes from example (target, input) sequences."""
    if units < 1:
        raise UsageError(f"a GRU inverse needs at least one unit, got {units}")
    out_dim, in_dim = t_seqs[0].shape[1], x_seqs[0].shape[1]
    t_mean, t_std = _stats(t_seqs)
    x_mean, x_std = _stats(x_seqs)
    t = keras.Input(shape=(None, out_dim), name="t")
    z = Standardize(t_mean, t_std, name="standardize")(t)
    h, _ = keras.layers.GRU(
        units,
        return_sequences=True,
        return_state=True,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 1),
        name=_GRU,
    )(z)
    both = keras.layers.Concatenate(name="target_and_state")([z, h])
    out = keras.layers.Dense(
        in_dim, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2), name="head"
    )(both)
    x = Destandardize(x_mean, x_std, name="destandardize")(out)
    return keras.Model(t, x, name="gru_inverse")


def _as_sequence(t: np.ndarray, out_dim: int) -> np.ndarray:
    arr = np.asarray(t, np.float32)
    if arr.ndim == 1 and out_dim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != out_dim:
        raise ShapeError(f"a target sequence must have shape (n, {out_dim}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ShapeError("targets contain non-finite values")
    return arr


class GRUStream:
    """Runs a `GRUInverse` chunk by chunk; the GRU state is carried from one chunk to the next."""

    def __init__(self, inverse: GRUInverse) -> None:
        self._inv = inverse
        self._step = inverse.step_model()
        units = int(inverse.model.get_layer(_GRU).units)
        self._h = np.zeros((1, units), np.float32)

    def send(self, chunk: np.ndarray) -> np.ndarray:
        """The drive for the next ``len(chunk)`` targets, clipped to the safe range."""
        arr = _as_sequence(chunk, self._inv.out_dim)
        if len(arr) == 0:
            return np.zeros((0, self._inv.in_dim), np.float32)
        x, h = self._step([tf.constant(arr[None]), tf.constant(self._h)], training=False)
        self._h = np.asarray(h, np.float32)
        inv = self._inv
        return within_device(np.asarray(x, np.float32)[0], inv.low, inv.high, inv.device_info)


@dataclass
class GRUInverse:
    """A recurrent inverse: target sequence (n, out_dim) from a reset -> input sequence (n, in_dim)."""

    model: keras.Model
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
        return int(self.model.input_shape[-1])

    @property
    def units(self) -> int:
        return int(self.model.get_layer(_GRU).units)

    def apply(self, t: np.ndarray) -> np.ndarray:
        """Inputs for the whole target sequence ``t`` from a reset device, clipped to the safe range."""
        arr = _as_sequence(t, self.out_dim)
        if len(arr) == 0:
            return np.zeros((0, self.in_dim), np.float32)
        x = np.asarray(self.model(tf.constant(arr[None]), training=False), np.float32)[0]
        return within_device(x, self.low, self.high, self.device_info)

    __call__ = apply

    def stream(self) -> GRUStream:
        """A streaming runner from a zero state (a reset device): ``send(chunk)`` per chunk."""
        return GRUStream(self)

    def step_model(self) -> keras.Model:
        """(chunk (1, time, out_dim), state (1, units)) -> (drive, next state); weights shared."""
        m = self.model
        t = keras.Input(shape=(None, self.out_dim), batch_size=1, name="t_chunk")
        h0 = keras.Input(shape=(self.units,), batch_size=1, name="state")
        z = m.get_layer("standardize")(t)
        h, h_last = m.get_layer(_GRU)(z, initial_state=h0)
        both = m.get_layer("target_and_state")([z, h])
        x = m.get_layer("destandardize")(m.get_layer("head")(both))
        return keras.Model([t, h0], [x, h_last], name="gru_inverse_step")

    def save(self, run_dir: str | Path) -> Path:
        """inverse.keras and device.json with ``inverse_memory = {"kind": "gru", ...}``."""
        info = self.device_info or {
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
        }
        return save_model(run_dir, self.model, info, {"kind": KIND, "units": self.units})


def from_saved(model: keras.Model, info: dict) -> GRUInverse:
    """The `GRUInverse` for a loaded model and its device.json (``inverse_memory`` dropped)."""
    try:
        model.get_layer(_GRU)
    except ValueError as exc:
        raise ShapeError(f"device.json says a GRU inverse, but the model has no {_GRU!r} layer") from exc
    return GRUInverse(
        model,
        np.asarray(info["low"], np.float32),
        np.asarray(info["high"], np.float32),
        without_memory(info),
    )


FAMILY = Family(KIND, (GRUInverse,), GRUInverse.save, from_saved)


@dataclass(frozen=True)
class WindowConfig:
    """Truncated backpropagation: windows of ``warmup + length`` samples, ``batch`` at a time."""

    length: int = 128
    warmup: int = 32
    batch: int = 32
    clipnorm: float = 1.0
    # Windows that start at a reset, per batch: the start-up transient is otherwise one window in
    # thousands, and every closed-loop sequence starts with it.
    from_reset: float = 0.25


def _window_starts(lengths: list[int], span: int) -> tuple[np.ndarray, np.ndarray]:
    """Start indices (into the concatenated sequences) of every window that stays inside one
    sequence, and whether it starts at the sequence's reset."""
    starts, at_reset, offset = [], [], 0
    for n in lengths:
        if n >= span:
            s = np.arange(offset, offset + n - span + 1)
            starts.append(s)
            at_reset.append(s == offset)
        offset += n
    if not starts:
        raise UsageError(f"no logged sequence holds a training window of {span} samples")
    return np.concatenate(starts).astype(np.int32), np.concatenate(at_reset)


def fit_gru(
    model: keras.Model,
    t_seqs: list[np.ndarray],
    x_seqs: list[np.ndarray],
    steps: int,
    lr: float,
    lr_final: float,
    win: WindowConfig = WindowConfig(),
    *,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Fit ``model(t) ~ x`` on random windows of the logged sequences; MSE in standardised x.

    Adam with a cosine-decayed learning rate; returns the loss every 100 steps.
    """
    if len(t_seqs) != len(x_seqs) or any(len(a) != len(b) for a, b in zip(t_seqs, x_seqs, strict=False)):
        raise ShapeError("every target sequence needs an input sequence of the same length")
    span = win.warmup + win.length
    longest = max(len(t) for t in t_seqs)
    if longest < span:  # short logs: shrink the window, keep a quarter of it as warm-up
        span = longest
        warmup = span // 4
    else:
        warmup = win.warmup
    starts_np, reset_np = _window_starts([len(t) for t in t_seqs], span)
    ts = tf.constant(np.concatenate(t_seqs).astype(np.float32))
    xs = tf.constant(np.concatenate(x_seqs).astype(np.float32))
    n_reset = min(win.batch - 1, round(win.batch * win.from_reset))
    reset_starts = tf.constant(starts_np[reset_np])
    starts, at_reset = tf.constant(starts_np), tf.constant(reset_np)
    x_std = tf.constant(np.asarray(model.get_layer("destandardize").std, np.float32))
    offsets = tf.range(span, dtype=tf.int32)
    after_warmup = tf.cast(offsets >= warmup, tf.float32)
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(steps, 1), alpha=lr_final / lr)
    opt = keras.optimizers.Adam(schedule, clipnorm=win.clipnorm)
    variables = model.trainable_variables
    gen = tf.random.Generator.from_seed(seed)
    n_starts, n_seqs = int(starts_np.shape[0]), int(reset_np.sum())

    @tf.function(jit_compile=False, reduce_retracing=True)
    def step() -> tf.Tensor:
        pick = gen.uniform((win.batch - n_reset,), 0, n_starts, dtype=tf.int32)
        first = tf.gather(reset_starts, gen.uniform((n_reset,), 0, n_seqs, dtype=tf.int32))
        begin = tf.concat([first, tf.gather(starts, pick)], axis=0)
        idx = begin[:, None] + offsets[None, :]
        tb, xb = tf.gather(ts, idx), tf.gather(xs, idx)
        # A window from a reset is scored from its first sample: the zero state is the true state.
        from_reset = tf.concat([tf.ones((n_reset,), tf.bool), tf.gather(at_reset, pick)], axis=0)
        weight = tf.maximum(after_warmup[None, :], tf.cast(from_reset, tf.float32)[:, None])
        with tf.GradientTape() as tape:
            err = tf.reduce_mean(tf.square((model(tb, training=True) - xb) / x_std), axis=-1)
            loss = tf.reduce_sum(err * weight) / tf.reduce_sum(weight)
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    curve: list[float] = []
    for i in progress.steps(steps):
        loss = step()
        if i % 100 == 0 or i == steps - 1:
            value = float(loss)
            curve.append(value)
            if on_step is not None:
                on_step(i, value)
    return curve
