"""The MLP inverse rebuilt for TensorFlow's integer converter, so that the converter rounds nothing.

The converter gives every Dense layer one int8 scale per output channel
(its largest |weight| / 127) and folds an affine op in front of a Dense
layer into its weights, re-rounding them. `blocked_model` builds a graph in
which neither loses what `hwloop.export.ptq` keeps in C:

- the input standardisation is folded into the first layer and the output
  destandardisation into the last, so no op is folded by the converter;
- every Dense layer with more than `BLOCK` inputs is a sum of Dense layers,
  one per block of `BLOCK` inputs, each with its own per-channel scale (the
  C export's weight blocks, `hwloop.export.mlp.BLOCK`); the skip path is a
  Dense layer of its own in the output sum;
- each layer's weights are refitted by least squares on the layers before
  it as the converter will hold them, then rounded onto those scales by
  error feedback (`hwloop.export.ptq.gptq_gram`) with each block's largest
  weight pinned at +-127 (so the converter picks exactly that scale), the
  skip's inputs first; biases corrected to the mean residual.

What it keeps of the float inverse's closed loop is measured in
benchmarks/export.py (docs/BENCHMARKS.md, "Exports"). `integer_model` (skip
and output joined in one Dense layer, nothing tuned) stays a candidate, and
the only tuned-free one for masked inverses, whose fixed zeros error
feedback would fill.
"""

from __future__ import annotations

import logging

import numpy as np

from hwloop.export.mlp import BLOCK, QLayer, QuantMLP
from hwloop.export.mlp_float import FloatMLP

log = logging.getLogger(__name__)

CALIBRATION_ROWS = 4000  # logged targets the words are fitted and rounded over
INT8_TOP = 127


def block_starts(n: int, block: int = BLOCK, lead: int = 0) -> list[int]:
    """First input of each block: ``lead`` inputs (the skip's) in a block of their own, then blocks of
    ``block`` (one block when the rest is not wider than ``block``)."""
    size = block if 0 < block < n - lead else n - lead
    return ([0] if lead else []) + [lead + s for s in range(0, n - lead, size)]


def spans(starts: list[int], n: int) -> list[tuple[int, int]]:
    """(first, end) of each block of ``n`` inputs beginning at ``starts``."""
    return list(zip(starts, [*starts[1:], n], strict=True))


def on_int8_grid(w: np.ndarray, a: np.ndarray, starts: list[int], lead: int = 0) -> np.ndarray:
    """Weights (in, out) as values of the per-(block, channel) symmetric int8 grid the converter
    picks for the block's Dense layer (step: the block's largest |weight| / 127), rounded with error
    feedback over the layer's inputs ``a``, each block's largest weight pinned at +-127."""
    from hwloop.export.ptq import gptq_gram

    step = np.ones_like(w, dtype=np.float64)
    pinned = np.zeros(w.shape, np.int64)
    for s, e in spans(starts, len(w)):
        top = np.max(np.abs(w[s:e]), axis=0)
        step[s:e] = np.where(top > 0, top / INT8_TOP, 1.0)
        rows = s + np.argmax(np.abs(w[s:e]), axis=0)
        cols = np.flatnonzero(top > 0)
        pinned[rows[cols], cols] = np.where(w[rows[cols], cols] > 0, INT8_TOP, -INT8_TOP)
    words = gptq_gram(w, a.T @ a / len(a), 1.0 / step, 8, pinned=pinned, lead=lead, symmetric=True)
    return (words * step).astype(np.float32)


def folded(mlp: FloatMLP) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """The hidden layers with the input standardisation folded into the first, and the output layer
    on [raw input, last hidden layer] (skip rows first) to the raw drive, destandardisation folded."""
    inv = 1.0 / mlp.in_std
    hidden = list(mlp.hidden)
    w_skip, b_skip = mlp.skip[0] * inv[:, None], mlp.skip[1] - (mlp.in_mean * inv) @ mlp.skip[0]
    if hidden:
        w0, b0 = hidden[0]
        hidden[0] = (w0 * inv[:, None], b0 - (mlp.in_mean * inv) @ w0)
    w_out = np.concatenate([w_skip, mlp.out[0]]) if mlp.out is not None else w_skip
    b_out = b_skip + (mlp.out[1] if mlp.out is not None else 0.0)
    return hidden, (w_out * mlp.out_std[None, :], b_out * mlp.out_std + mlp.out_mean)


def _summed_dense(x, n_in: int, units: int, starts: list[int], name: str, lead=None):
    """A Dense layer on ``x`` as a sum of one Dense per block of inputs; ``lead``: a first term."""
    import keras

    parts, names = ([] if lead is None else [lead]), []
    for k, (s, e) in enumerate(spans(starts, n_in)):
        names.append(f"{name}_block{k}")
        xs = x if (s, e) == (0, n_in) else x[:, s:e]
        parts.append(keras.layers.Dense(units, use_bias=(k == 0 and lead is None), name=names[-1])(xs))
    y = parts[0] if len(parts) == 1 else keras.layers.Add(name=f"{name}_sum")(parts)
    return y, names


def blocked_model(mlp: FloatMLP, feats: np.ndarray):
    """The inverse as a Keras graph of Dense layers per block of inputs, weights on the converter's
    int8 grid (module docstring), fitted on the logged targets ``feats``; it computes in float what
    the converted model computes in integers."""
    import keras

    from hwloop.export.ptq import refit
    from hwloop.inverses.layers import ClipToRange

    hidden, (w_out, b_out) = folded(mlp)
    d = len(mlp.in_mean)
    t = keras.Input((d,), name="t")
    h, layers = t, []
    for i, (w, b) in enumerate(hidden):
        starts = block_starts(len(w))
        pre, names = _summed_dense(h, len(w), w.shape[1], starts, f"hidden_{i}")
        layers.append((h, names, starts, w, b, 0))
        h = keras.layers.Activation("tanh", name=f"tanh_{i}")(pre)
    skip = keras.layers.Dense(w_out.shape[1], name="skip")(t)
    if hidden:
        starts, lead = block_starts(len(w_out), lead=d), d
        y, names = _summed_dense(h, len(w_out) - d, w_out.shape[1], [s - d for s in starts[1:]], "out", skip)
    else:
        starts, lead, y, names = [0], 0, skip, []
    model = keras.Model(t, ClipToRange(mlp.low, mlp.high, name="clip")(y), name="inverse_for_integer_tflite")

    rng = np.random.default_rng(1)
    rows = feats[rng.choice(len(feats), size=min(CALIBRATION_ROWS, len(feats)), replace=False)]
    rows = np.asarray(rows, np.float64)
    a_float, a = [], rows  # each layer's input in the float graph
    for w, b in hidden:
        a_float.append(a)
        a = np.tanh(a @ w + b)
    a_float.append(np.concatenate([rows, a], axis=1))
    layers.append((h if hidden else None, ["skip", *names], starts, w_out, b_out, lead))
    # In order from the input, each layer fitted on the layers before it as gridded.
    for (x_in, names, starts, w, b, lead), a_f in zip(layers, a_float, strict=True):
        a = rows if x_in is None else keras.Model(t, x_in).predict_on_batch(rows.astype(np.float32))
        a = np.asarray(a, np.float64)
        if lead:
            a = np.concatenate([rows, a], axis=1)
        target = a_f @ w + b  # the float graph's pre-activation
        w_fit, _ = refit(a, target, w, b)
        grid = on_int8_grid(w_fit, a, starts, lead)
        bias = np.mean(target - a @ grid.astype(np.float64), axis=0).astype(np.float32)
        for k, (name, (s, e)) in enumerate(zip(names, spans(starts, len(w)), strict=True)):
            model.get_layer(name).set_weights([grid[s:e], bias] if k == 0 else [grid[s:e]])
    log.info("TFLite graph: %d Dense blocks on the converter's int8 grid", len(model.layers))
    return model


def integer_model(mlp: FloatMLP):
    """The inverse rebuilt with the skip path and the MLP's output as one Dense layer on [z, h].

    The converter gives an Add's inputs its output's scale; where the two parts cancel (they
    can in hwloop's MLPs) each alone saturates that scale (16x8 on sim:mimo3: -20 dB of drive
    error). One matmul has no such intermediate, but its int8 channel scale is then shared by
    the skip's weights and the MLP's."""
    import keras

    from hwloop.inverses.layers import ClipToRange, Destandardize, Standardize

    inp = keras.Input((len(mlp.in_mean),), name="t")
    z = Standardize(mlp.in_mean, mlp.in_std, name="standardize")(inp)
    h, weights = z, []
    for i, (w, b) in enumerate(mlp.hidden):
        h = keras.layers.Dense(w.shape[1], activation="tanh", name=f"hidden_{i}")(h)
        weights.append((f"hidden_{i}", [w, b]))
    both = keras.layers.Concatenate(name="z_and_h")([z, h]) if mlp.hidden else z
    w_out = np.concatenate([mlp.skip[0], mlp.out[0]]) if mlp.out is not None else mlp.skip[0]
    b_out = mlp.skip[1] + (mlp.out[1] if mlp.out is not None else 0.0)
    y = keras.layers.Dense(w_out.shape[1], name="output")(both)
    weights.append(("output", [w_out, b_out]))
    x = ClipToRange(mlp.low, mlp.high, name="clip")(
        Destandardize(mlp.out_mean, mlp.out_std, name="destandardize")(y)
    )
    model = keras.Model(inp, x, name="inverse_for_integer_tflite")
    for name, ws in weights:
        model.get_layer(name).set_weights([np.asarray(a, np.float32) for a in ws])
    return model


def _real(layer: QLayer, in_frac: int) -> tuple[np.ndarray, np.ndarray]:
    """A layer's words as the float weights and biases they stand for (word x its scale)."""
    scale = np.exp2(-layer.wfrac.astype(np.float64))
    return layer.wide * scale[None, :], layer.bias * scale * 2.0**-in_frac


def float_of(q: QuantMLP) -> FloatMLP:
    """The MLP in words as float arrays (every word times its scale): what quantisation-aware
    fine-tuning (`hwloop.export.qat`) chose, as a graph the integer converter can take."""
    hidden, in_frac = [], q.fmt_z.frac
    for layer in q.hidden:
        hidden.append(_real(layer, in_frac))
        in_frac = q.fmt_h.frac
    x = 2.0**-q.fmt_x.frac
    return FloatMLP(
        in_mean=q.mean_t * 2.0**-q.fmt_t.frac,
        in_std=1.0 / (q.inv_std * 2.0**-q.fmt_is.frac),
        hidden=hidden,
        skip=_real(q.skip, q.fmt_z.frac),
        out=None if q.out is None else _real(q.out, q.fmt_h.frac),
        out_mean=q.mean_x * x,
        out_std=q.std_x * 2.0**-q.fmt_so.frac,
        low=q.low_q * x,
        high=q.high_q * x,
    )
