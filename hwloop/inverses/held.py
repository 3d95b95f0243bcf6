"""Hold chosen outputs of a model constant while training the others.

The use: recalibrate channel 2 of a 3-channel inverse without disturbing the
channel 1 that is already calibrated. Two mechanisms, both exact (a held
output is bit-for-bit unchanged on every input, not merely "close"):

``mechanism="heads"``
    A model from `build_headed_regressor` gives every output its own head
    (its own variables). Only the free heads' variables are handed to the
    optimizer (the var_list); the held heads are never updated. A shared
    trunk, if the model has one, is frozen whenever any output is held,
    because moving it would move every head built on it.

``mechanism="masked_loss"``
    The loss multiplies each output's error by 0 (held) or 1 (free), so a
    held output's own parameters get exactly zero gradient; every layer
    shared between outputs (the trunk, or ``hidden_*`` of `build_regressor`)
    is excluded from the var_list, so the shared part cannot move the held
    outputs either. Works on `build_headed_regressor` models and on plain
    `hwloop.inverses.models.build_regressor` models (its ``linear_skip`` and
    ``mlp_out`` layers map column j to output j only).

Adam leaves a variable with an all-zero gradient history exactly where it
is (its moments stay 0, so the step is 0/(0 + eps) = 0); a fresh optimizer
is made for each call so no momentum from earlier training leaks in.
`retrain_with_hold` checks the held outputs on a probe set reaching far
outside the data and raises `HoldViolation` if any moved.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from hwloop.errors import HwloopError, ShapeError, UsageError
from hwloop.inverses.layers import Destandardize, Standardize
from hwloop.inverses.models import FitConfig, _stats

log = logging.getLogger(__name__)

MECHANISMS = ("heads", "masked_loss")
# Layers of build_regressor whose column j feeds output j alone.
_COLUMNWISE = ("linear_skip", "mlp_out")


class HoldViolation(HwloopError):
    """A held output changed during training: a bug, never silently accepted."""


def _head_prefix(j: int) -> str:
    return f"head{j}_"


def build_headed_regressor(
    x_data: np.ndarray,
    y_data: np.ndarray,
    *,
    hidden: Sequence[int] = (32, 32),
    trunk: Sequence[int] = (),
    seed: int = 0,
    name: str = "headed_regressor",
) -> keras.Model:
    """x -> y where output j is its own head ``head{j}_*`` (linear skip + tanh MLP).

    ``trunk`` widths, if given, add shared tanh layers ``trunk_*`` under the
    heads' MLPs (the skips still read the standardised input). Standardisation
    comes from the data as in `build_regressor`; the last layer is named
    ``destandardize`` so `hwloop.inverses.models.fit_regression` also fits this model.
    """
    x_data, y_data = np.asarray(x_data), np.asarray(y_data)
    if x_data.ndim != 2 or y_data.ndim != 2 or len(x_data) != len(y_data):
        raise ShapeError(f"need x (n, in_dim) and y (n, out_dim), got {x_data.shape} and {y_data.shape}")
    in_dim, out_dim = x_data.shape[1], y_data.shape[1]
    x_mean, x_std = _stats(x_data)
    y_mean, y_std = _stats(y_data)
    inp = keras.Input(shape=(in_dim,), name="x")
    z = Standardize(x_mean, x_std, name="standardize")(inp)

    def first_init(fan_in: int, k: int) -> dict:
        # DESIGN.md's first-layer init: units cover the input range.
        return {
            "kernel_initializer": keras.initializers.RandomNormal(
                stddev=2.0 / np.sqrt(fan_in), seed=seed + k
            ),
            "bias_initializer": keras.initializers.RandomUniform(-1.5, 1.5, seed=seed + 100 + k),
        }

    shared = z
    for i, width in enumerate(trunk):
        init = (
            first_init(in_dim, 0)
            if i == 0
            else {"kernel_initializer": keras.initializers.GlorotUniform(seed + i)}
        )
        shared = keras.layers.Dense(width, activation="tanh", name=f"trunk_{i}", **init)(shared)
    heads = []
    for j in range(out_dim):
        p = _head_prefix(j)
        skip = keras.layers.Dense(1, name=f"{p}skip")(z)
        h = shared
        for i, width in enumerate(hidden):
            k = 1000 * (j + 1) + i
            if i == 0 and not trunk:
                init = first_init(in_dim, k)
            else:
                init = {"kernel_initializer": keras.initializers.GlorotUniform(seed + k)}
            h = keras.layers.Dense(width, activation="tanh", name=f"{p}hidden_{i}", **init)(h)
        mlp = keras.layers.Dense(
            1, kernel_initializer=keras.initializers.GlorotUniform(seed + 7 + j), name=f"{p}mlp_out"
        )(h)
        heads.append(keras.layers.Add(name=f"{p}out")([skip, mlp]))
    z_out = heads[0] if out_dim == 1 else keras.layers.Concatenate(name="heads")(heads)
    out = Destandardize(y_mean, y_std, name="destandardize")(z_out)
    return keras.Model(inp, out, name=name)


def _out_dim(model: keras.Model) -> int:
    return int(model.output_shape[-1])


def _check_hold(hold: Iterable[int], out_dim: int) -> tuple[int, ...]:
    held = tuple(sorted({int(j) for j in hold}))
    bad = [j for j in held if not 0 <= j < out_dim]
    if bad:
        raise UsageError(f"hold names output(s) {bad}, but the model has outputs 0..{out_dim - 1}")
    if len(held) == out_dim:
        raise UsageError("every output is held: nothing left to train")
    return held


def trainable_for_hold(model: keras.Model, hold: Iterable[int], mechanism: str = "heads") -> list:
    """The var_list that trains the free outputs and cannot move the held ones.

    Raises `UsageError` for a model the mechanism cannot hold exactly.
    """
    if mechanism not in MECHANISMS:
        raise UsageError(f"unknown hold mechanism {mechanism!r} (known: {', '.join(MECHANISMS)})")
    out_dim = _out_dim(model)
    held = _check_hold(hold, out_dim)
    names = [layer.name for layer in model.layers]
    headed = all(any(n.startswith(_head_prefix(j)) for n in names) for j in range(out_dim))
    chosen: list = []
    for layer in model.layers:
        if not layer.trainable_weights:
            continue
        n = layer.name
        head = next((j for j in range(out_dim) if n.startswith(_head_prefix(j))), None)
        if head is not None:
            if mechanism == "masked_loss" or head not in held:
                chosen += layer.trainable_weights
        elif not held:
            chosen += layer.trainable_weights  # nothing held: the shared part may move too
        elif mechanism == "masked_loss" and not headed and n in _COLUMNWISE:
            chosen += layer.trainable_weights
        else:
            log.debug("hold: freezing shared layer %s", n)
    if mechanism == "heads" and not headed:
        raise UsageError("mechanism 'heads' needs a model from build_headed_regressor (layers head{j}_*)")
    if not chosen:
        raise UsageError(f"no variable can be trained with outputs {list(held)} held")
    return chosen


@dataclass
class HoldResult:
    """What `retrain_with_hold` did: the free-output loss curve and the check."""

    curve: list[float]
    held: tuple[int, ...]
    trained: list[str]
    max_held_change: float


def _probe(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Inputs inside and far outside the data (up to ~10 std from the mean)."""
    mean, std = _stats(x)
    rng = np.random.default_rng(seed + 4242)
    return (mean + std * rng.normal(0.0, 3.0, size=(n, x.shape[1]))).astype(np.float32)


def retrain_with_hold(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    hold: Iterable[int],
    *,
    mechanism: str = "heads",
    cfg: FitConfig | None = None,
    seed: int = 0,
    tolerance: float = 0.0,
) -> HoldResult:
    """Fit the free outputs of ``model`` to ``(x, y)``; the ``hold`` outputs stay as they are.

    ``y[:, j]`` for a held j is ignored (any value will do). The loss is the
    MSE in standardised units (the model's ``destandardize`` layer), as in
    `hwloop.inverses.models.fit_regression`. Afterwards the held outputs are compared
    on probe inputs far outside the data; a change above ``tolerance``
    raises `HoldViolation`.
    """
    cfg = cfg or FitConfig()
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    out_dim = _out_dim(model)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or y.shape[1] != out_dim:
        raise ShapeError(
            f"need x (n, {model.input_shape[-1]}) and y (n, {out_dim}), got {x.shape}, {y.shape}"
        )
    held = _check_hold(hold, out_dim)
    variables = trainable_for_hold(model, held, mechanism)
    free = np.ones(out_dim, np.float32)
    free[list(held)] = 0.0
    # "heads" trains on the plain loss: the var_list alone keeps the held heads still.
    weights = tf.constant(free if mechanism == "masked_loss" else np.ones(out_dim, np.float32))
    free_t = tf.constant(free)
    y_std = tf.constant(np.asarray(model.get_layer("destandardize").std, np.float32))
    probe = _probe(x, 512, seed)
    before = np.asarray(model(probe))[:, list(held)]

    xs, ys = tf.constant(x), tf.constant(y)
    n = int(xs.shape[0])
    batch = min(cfg.batch, n)
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.lr, decay_steps=max(cfg.steps, 1), alpha=cfg.lr_final / cfg.lr
    )
    opt = keras.optimizers.Adam(schedule)
    gen = tf.random.Generator.from_seed(seed)

    @tf.function(jit_compile=False, reduce_retracing=True)
    def step() -> tf.Tensor:
        idx = gen.uniform((batch,), 0, n, dtype=tf.int32)
        xb, yb = tf.gather(xs, idx), tf.gather(ys, idx)
        with tf.GradientTape() as tape:
            sq = tf.square((model(xb, training=True) - yb) / y_std)
            loss = tf.reduce_sum(tf.reduce_mean(sq, axis=0) * weights) / tf.reduce_sum(weights)
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return tf.reduce_sum(tf.reduce_mean(sq, axis=0) * free_t) / tf.reduce_sum(free_t)

    curve: list[float] = []
    for i in range(cfg.steps):
        value = step()
        if i % 100 == 0 or i == cfg.steps - 1:
            curve.append(float(value))
    after = np.asarray(model(probe))[:, list(held)]
    change = float(np.max(np.abs(after - before))) if held else 0.0
    trained = sorted({v.path for v in variables})
    log.info(
        "hold %s (%s): trained %d variables, held outputs moved by %.3g",
        held,
        mechanism,
        len(trained),
        change,
    )
    if change > tolerance:
        raise HoldViolation(
            f"held outputs {list(held)} moved by {change:.3g} (> {tolerance:g}) under {mechanism}"
        )
    return HoldResult(curve, held, trained, change)
