"""Model builders and the regression fit, following DESIGN.md's recipe.

An MLP regressor with standardised inputs and outputs, a linear skip path
beside a 2x64 tanh MLP, a first layer initialised to cover the input range
(weights ~ N(0, (2/sqrt(d_in))^2), biases ~ U(-1.5, 1.5)), and Adam with a
cosine-decayed learning rate. Used for the inverse (targets -> inputs) and,
later, for the surrogate (inputs -> outputs).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from hwloop import progress
from hwloop.errors import ShapeError
from hwloop.inverses.layers import ClipToRange, Destandardize, MaskedDense, Standardize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitConfig:
    """How a regression is fitted; defaults are the recipe in DESIGN.md."""

    steps: int = 3000
    batch: int = 256
    lr: float = 2e-2
    lr_final: float = 2e-5


def _stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = a.mean(axis=0)
    std = a.std(axis=0)
    # A constant column (e.g. a held channel) must not divide by zero.
    std = np.where(std > 1e-8, std, 1.0)
    return mean, std


def build_regressor(
    x_data: np.ndarray,
    y_data: np.ndarray,
    *,
    hidden: Sequence[int] = (64, 64),
    seed: int = 0,
    name: str = "regressor",
    mask: np.ndarray | None = None,
) -> keras.Model:
    """x -> y with standardisation taken from the data and a linear skip path.

    ``mask`` (in_dim, out_dim) of 0/1, if given, means output j may depend on
    input i only where ``mask[i, j] == 1``; see `_masked_paths` for how that
    is guaranteed. Without it the model is the plain recipe.
    """
    in_dim, out_dim = x_data.shape[1], y_data.shape[1]
    x_mean, x_std = _stats(x_data)
    y_mean, y_std = _stats(y_data)
    inp = keras.Input(shape=(in_dim,), name="x")
    z = Standardize(x_mean, x_std, name="standardize")(inp)
    if mask is not None:
        z_out = _masked_paths(z, mask, in_dim, out_dim, hidden, seed)
        out = Destandardize(y_mean, y_std, name="destandardize")(z_out)
        return keras.Model(inp, out, name=name)
    # Every initializer seeded: a model's start never depends on what was built before it.
    skip_init = keras.initializers.GlorotUniform(seed=seed + 50)
    skip = keras.layers.Dense(out_dim, kernel_initializer=skip_init, name="linear_skip")(z)
    h = z
    for i, width in enumerate(hidden):
        first = i == 0
        h = keras.layers.Dense(
            width,
            activation="tanh",
            kernel_initializer=(
                keras.initializers.RandomNormal(stddev=2.0 / math.sqrt(in_dim), seed=seed)
                if first
                else keras.initializers.GlorotUniform(seed=seed + i)
            ),
            bias_initializer=(
                keras.initializers.RandomUniform(-1.5, 1.5, seed=seed + 100) if first else "zeros"
            ),
            name=f"hidden_{i}",
        )(h)
    mlp_out = keras.layers.Dense(
        out_dim, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 7), name="mlp_out"
    )(h)
    z_out = keras.layers.Add(name="skip_plus_mlp")([skip, mlp_out])
    out = Destandardize(y_mean, y_std, name="destandardize")(z_out)
    return keras.Model(inp, out, name=name)


def _masked_paths(z, mask: np.ndarray, in_dim: int, out_dim: int, hidden: Sequence[int], seed: int):
    """Linear skip and MLP in which output j sees input i only where mask[i, j] == 1.

    A masked first layer alone does not give that guarantee once hidden units
    mix inputs, so the MLP path is one independent sub-MLP per output, packed
    as block-structured `MaskedDense` layers: sub-MLP j's first layer reads
    only the inputs allowed for j, its later layers read only its own block,
    and the output layer maps block j to output j alone. Each block has
    ``max(16, width // out_dim)`` units. Every disallowed path has an exactly
    zero effective weight, so d out_j / d in_i is exactly 0 there.
    """
    m = np.asarray(mask, dtype=np.float32)
    if m.shape != (in_dim, out_dim):
        raise ShapeError(f"mask must have shape (in_dim, out_dim) = ({in_dim}, {out_dim}), got {m.shape}")
    if not np.all((m == 0.0) | (m == 1.0)):
        raise ShapeError("mask may hold only 0 and 1")
    rng = np.random.default_rng(seed)
    skip_layer = MaskedDense(out_dim, m, name="linear_skip")
    skip = skip_layer(z)
    h = z
    prev_block, prev_dim = None, in_dim
    layers: list[tuple[MaskedDense, np.ndarray]] = []
    for i, width in enumerate(hidden):
        block = max(16, int(width) // out_dim)
        owner = np.repeat(np.arange(out_dim), block)  # output each hidden unit belongs to
        if prev_block is None:
            lmask = m[:, owner]
            allowed = np.maximum(m.sum(axis=0), 1.0)[owner]
            # The recipe's first-layer init, with the fan-in of each sub-MLP.
            kernel = rng.normal(size=lmask.shape) * (2.0 / np.sqrt(allowed))[None, :]
            bias = rng.uniform(-1.5, 1.5, size=owner.size)
        else:
            lmask = (prev_block[:, None] == owner[None, :]).astype(np.float32)
            limit = np.sqrt(6.0 / (2 * block))  # Glorot within one block
            kernel = rng.uniform(-limit, limit, size=lmask.shape)
            bias = np.zeros(owner.size)
        layer = MaskedDense(owner.size, lmask, activation="tanh", name=f"hidden_{i}")
        h = layer(h)
        layers.append((layer, [kernel * lmask, bias]))
        prev_block, prev_dim = owner, owner.size
    if prev_block is None:  # no hidden layers: the skip path is the model
        return skip
    omask = (prev_block[:, None] == np.arange(out_dim)[None, :]).astype(np.float32)
    limit = np.sqrt(6.0 / (prev_dim // out_dim + 1))
    out_layer = MaskedDense(out_dim, omask, name="mlp_out")
    mlp_out = out_layer(h)
    layers.append((out_layer, [rng.uniform(-limit, limit, size=omask.shape) * omask, np.zeros(out_dim)]))
    for layer, weights in layers:
        layer.set_weights([np.asarray(w, np.float32) for w in weights])
    return keras.layers.Add(name="skip_plus_mlp")([skip, mlp_out])


def with_clip(model: keras.Model, low: Sequence[float], high: Sequence[float]) -> keras.Model:
    """The same model with its outputs clipped to [low, high] (weights shared)."""
    inp = keras.Input(shape=model.input_shape[1:], name="t")
    out = ClipToRange(low, high, name="clip_to_safe_range")(model(inp))
    return keras.Model(inp, out, name=f"{model.name}_clipped")


def fit_regression(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    cfg: FitConfig = FitConfig(),
    *,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Fit ``model(x) ~ y`` by minibatch Adam; the loss is MSE in standardised y.

    Returns the loss every 100 steps (the training curve).
    """
    dest = model.get_layer("destandardize")
    y_std = tf.constant(np.asarray(dest.std, np.float32))
    xs = tf.constant(np.asarray(x, np.float32))
    ys = tf.constant(np.asarray(y, np.float32))
    n = int(xs.shape[0])
    batch = min(cfg.batch, n)
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.lr, decay_steps=max(cfg.steps, 1), alpha=cfg.lr_final / cfg.lr
    )
    opt = keras.optimizers.Adam(schedule)
    variables = model.trainable_variables
    gen = tf.random.Generator.from_seed(seed)

    @tf.function(jit_compile=False, reduce_retracing=True)
    def step() -> tf.Tensor:
        idx = gen.uniform((batch,), 0, n, dtype=tf.int32)
        xb, yb = tf.gather(xs, idx), tf.gather(ys, idx)
        with tf.GradientTape() as tape:
            err = (model(xb, training=True) - yb) / y_std
            loss = tf.reduce_mean(tf.square(err))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    curve: list[float] = []
    for i in progress.steps(cfg.steps):
        loss = step()
        if i % 100 == 0 or i == cfg.steps - 1:
            value = float(loss)
            curve.append(value)
            if on_step is not None:
                on_step(i, value)
    return curve
