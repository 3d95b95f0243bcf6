"""The Keras inverses through TensorFlow's TFLite converter: float16, 16x8 and full-integer int8.

- float16 (``--bits 16``): weights stored as float16 (``Optimize.DEFAULT``
  with ``supported_types = [float16]``); the model computes in float32.
- int16x8 (``--weight-bits 8 --act-bits 16``): the converter's 16x8 mode
  (``EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8``): int8
  weights per channel, int16 activations, int16 input and output tensors.
- int8 (``--bits 8``): full-integer post-training quantisation:
  ``TFLITE_BUILTINS_INT8`` only, int8 input and output tensors.

The integer models are calibrated on a representative dataset drawn from
the run's query log (the targets the inverse was trained on; tapped rows
for a tapped inverse). Each is converted from up to three graphs (the
inverse as trained; skip and output joined; joined, equalised, with words
chosen by error feedback on the converter's own grid: `integer_model`) and
the one closest to the float inverse on logged targets is kept.

Both are run back through the TFLite interpreter with its reference
kernels (no XNNPACK delegate, so outputs are reproducible), which is what
`hwloop.export.loaded` uses for ``hwloop eval --exported``. The
interpreter is ``ai_edge_litert``'s where installed, otherwise the
``tf.lite.Interpreter`` TensorFlow 2.21 still ships (deprecated there).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np

from hwloop.errors import RunDirError, UsageError
from hwloop.export.source import RunSource

log = logging.getLogger(__name__)

REPRESENTATIVE_ROWS = 500
GOLDEN_ROWS = 256
CHECK_ROWS = 2000  # logged targets on which each integer graph is compared with the float inverse
CALIBRATION_ROWS = 4000  # logged targets over which the tuned graph's words are rounded
KINDS = {(16, 16): "float16", (8, 16): "int16x8", (8, 8): "int8"}
ALL_KINDS = ("float16", "int16x8", "int8")


def kinds_for(bits: int | None, weight_bits: int | None, act_bits: int | None) -> list[str]:
    """The TFLite models the width options ask for (all three when none is given)."""
    if bits is None and weight_bits is None and act_bits is None:
        return list(ALL_KINDS)
    w = weight_bits if weight_bits is not None else bits
    a = act_bits if act_bits is not None else bits
    if (w, a) not in KINDS:
        raise UsageError(
            "--format tflite writes float16 (--bits 16), int8 weights with int16 activations "
            "(--weight-bits 8 --act-bits 16) or full int8 (--bits 8); "
            f"got {w}-bit weights and {a}-bit activations"
        )
    return [KINDS[(w, a)]]


def _convert(model, kind: str, representative: np.ndarray) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "float16":
        conv.target_spec.supported_types = [tf.float16]
    else:
        rows = np.asarray(representative, np.float32)

        def gen():
            for r in rows:
                yield [r[None, :]]

        conv.representative_dataset = gen
        if kind == "int8":
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = conv.inference_output_type = tf.int8
        else:
            ops16x8 = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            conv.target_spec.supported_ops = [ops16x8]
            conv.inference_input_type = conv.inference_output_type = tf.int16
    # Keras prints "Saved artifact at ..." while converting: keep it off stdout (the CLI's JSON).
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            content = bytes(conv.convert())
        except Exception as exc:
            raise UsageError(
                f"TFLite could not convert this inverse to {kind}: {type(exc).__name__}: {exc}"
            ) from exc
    log.debug("converter output: %s", chatter.getvalue())
    return content


class TFLiteModel:
    """A .tflite model behind ``run(rows)``: float rows in and out (int8 quantised at the edges)."""

    def __init__(self, content: bytes) -> None:
        self.interp = _interpreter(content)
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]

    @property
    def integer(self) -> bool:
        return self.inp["dtype"] in (np.int8, np.int16)

    def run(self, rows: np.ndarray) -> np.ndarray:
        x = np.asarray(rows, np.float32)
        if len(x) == 0:
            return np.zeros((0, int(self.out["shape"][-1])), np.float32)
        if self.integer:
            s, z = self.inp["quantization"]
            info = np.iinfo(self.inp["dtype"])
            x = np.clip(np.round(x / s + z), info.min, info.max).astype(self.inp["dtype"])
        self.interp.resize_tensor_input(self.inp["index"], list(x.shape))
        self.interp.allocate_tensors()
        self.interp.set_tensor(self.inp["index"], x)
        self.interp.invoke()
        y = self.interp.get_tensor(self.out["index"])
        if self.out["dtype"] in (np.int8, np.int16):
            s, z = self.out["quantization"]
            return ((y.astype(np.float32) - z) * s).astype(np.float32)
        return np.asarray(y, np.float32)


def _interpreter(content: bytes):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        import tensorflow as tf

        Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        try:
            interp = Interpreter(
                model_content=content,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
        except (ValueError, RuntimeError) as exc:
            raise RunDirError(f"not a TFLite model the interpreter can load ({exc})") from None
    interp.allocate_tensors()
    return interp


def integer_model(src: RunSource, tuned: bool = False):
    """The inverse rebuilt with the skip path and the MLP's output as one Dense layer on [z, h].

    The converter gives an Add's inputs its output's scale; where the two parts cancel (they
    can in hwloop's MLPs) each alone saturates that scale (16x8 on sim:mimo3: -20 dB of drive
    error). One matmul has no such intermediate, but its int8 channel scale is then shared by
    the skip's weights and the MLP's; `export_tflite` converts both graphs and keeps the one
    closer to the float inverse on the logged targets (the manifest's ``graph``).

    ``tuned``: the skip's input is standardised a second time, scaled by c (its weights by 1/c)
    so that the skip's largest weight is the MLP output's, and every Dense layer's weights are
    set to words of the int8 grid the converter will choose for them (per output channel, the
    largest weight at 127), layer by layer from the input: refitted (`hwloop.export.ptq.refit`)
    so that, fed by the layers already on the grid, it reproduces the float graph's
    pre-activation, then rounded by error feedback (`gptq_gram`) and its bias corrected, on the
    logged targets: the converter then rounds nothing."""
    import keras

    from hwloop.export.mlp_float import extract
    from hwloop.export.ptq import refit
    from hwloop.inverses.layers import ClipToRange, Destandardize, Standardize

    feats = src.features()
    mlp = extract(src.inverse.model, src.inverse.low, src.inverse.high, feats[:256])
    w_skip = mlp.skip[0]
    c = 1.0
    if tuned and mlp.out is not None:
        c = float(np.max(np.abs(w_skip)) / max(float(np.max(np.abs(mlp.out[0]))), 1e-30)) or 1.0
    inp = keras.Input((feats.shape[1],), name="t")
    z = Standardize(mlp.in_mean, mlp.in_std, name="standardize")(inp)
    z_skip = Standardize(mlp.in_mean, mlp.in_std / c, name="standardize_skip")(inp) if c != 1.0 else z
    h, weights = z, []
    for i, (w, b) in enumerate(mlp.hidden):
        h = keras.layers.Dense(w.shape[1], activation="tanh", name=f"hidden_{i}")(h)
        weights.append((f"hidden_{i}", [w, b]))
    both = keras.layers.Concatenate(name="z_and_h")([z_skip, h]) if mlp.hidden else z_skip
    w_out = np.concatenate([w_skip / c, mlp.out[0]]) if mlp.out is not None else w_skip / c
    b_out = mlp.skip[1] + (mlp.out[1] if mlp.out is not None else 0.0)
    y = keras.layers.Dense(w_out.shape[1], name="output")(both)
    weights.append(("output", [w_out, b_out]))
    x = ClipToRange(mlp.low, mlp.high, name="clip")(
        Destandardize(mlp.out_mean, mlp.out_std, name="destandardize")(y)
    )
    model = keras.Model(inp, x, name="inverse_for_integer_tflite")
    for name, ws in weights:
        model.get_layer(name).set_weights([np.asarray(a, np.float32) for a in ws])
    if tuned:  # each Dense layer's input in the float graph, before any word is chosen
        rng = np.random.default_rng(1)
        rows = feats[rng.choice(len(feats), size=min(CALIBRATION_ROWS, len(feats)), replace=False)]
        a_float = {
            name: np.asarray(
                keras.Model(model.inputs, model.get_layer(name).input).predict_on_batch(
                    rows.astype(np.float32)
                ),
                np.float64,
            )
            for name, _ in weights
        }
    if tuned:
        for name, (w, b) in weights:  # in order: each refitted on the gridded layers before it
            layer = model.get_layer(name)
            a = keras.Model(model.inputs, layer.input).predict_on_batch(rows.astype(np.float32))
            a = np.asarray(a, np.float64)
            target = a_float[name] @ w + b  # the float graph's pre-activation
            w_fit, _ = refit(a, target, w, b)
            grid = on_int8_grid(w_fit, a)
            layer.set_weights(
                [grid, np.mean(target - a @ grid.astype(np.float64), axis=0).astype(np.float32)]
            )
    return model


def on_int8_grid(w: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Weights (in, out) as values of the converter's per-channel symmetric int8 grid (scale: the
    channel's largest |weight| / 127), rounded with error feedback over the layer's inputs ``a``."""
    from hwloop.export.ptq import gptq_gram

    top = np.max(np.abs(w), axis=0)
    step = np.where(top > 0, top / 127.0, 1.0)
    words = gptq_gram(w, a.T @ a / len(a), np.broadcast_to(1.0 / step, w.shape), 8)
    for ch in range(w.shape[1]):  # the channel's largest word stays 127: the converter's scale is ours
        if top[ch] > 0 and np.max(np.abs(words[:, ch])) < 127:
            i = int(np.argmax(np.abs(w[:, ch])))
            words[i, ch] = 127 if w[i, ch] > 0 else -127
    return (words * step).astype(np.float32)


def _kernels(src: RunSource) -> list[np.ndarray]:
    from hwloop.export.mlp_float import extract

    mlp = extract(src.inverse.model, src.inverse.low, src.inverse.high, src.features()[:256])
    return [w for w, _ in mlp.hidden] + ([mlp.out[0]] if mlp.out is not None else [])


def export_tflite(
    src: RunSource,
    out: Path,
    bits: int | None,
    weight_bits: int | None = None,
    act_bits: int | None = None,
) -> dict:
    """``inverse_KIND.tflite`` for each kind asked for, with golden rows; the manifest's record."""
    kinds = kinds_for(bits, weight_bits, act_bits)
    feats = src.features()
    rng = np.random.default_rng(0)
    rep = feats[rng.choice(len(feats), size=min(REPRESENTATIVE_ROWS, len(feats)), replace=False)]
    golden = feats[np.sort(rng.choice(len(feats), size=min(GOLDEN_ROWS, len(feats)), replace=False))]
    models = {}
    check = feats[np.sort(rng.choice(len(feats), size=min(CHECK_ROWS, len(feats)), replace=False))]
    x_float = np.asarray(src.inverse.model.predict_on_batch(check.astype(np.float32)), np.float64)
    graphs = {"as trained": src.inverse.model}
    for kind in kinds:
        name = f"inverse_{kind}.tflite"
        if kind != "float16" and len(graphs) == 1:
            graphs["skip and output joined"] = integer_model(src)
            if not any(np.any(layer_w == 0.0) for layer_w in _kernels(src)):  # masked: left as it is
                graphs["joined, equalised, words by error feedback"] = integer_model(src, tuned=True)
        # An integer model from each graph; the one closer to the float inverse is kept.
        best = None
        for graph, model in graphs.items() if kind != "float16" else [("as trained", src.inverse.model)]:
            content = _convert(model, kind, rep)
            rms = float(np.sqrt(np.mean((TFLiteModel(content).run(check) - x_float) ** 2)))
            if best is None or rms < best[0]:
                best = (rms, graph, content)
        rms, graph, content = best
        (out / name).write_bytes(content)
        x = TFLiteModel(content).run(golden)
        gname = f"golden_{kind}.npz"
        np.savez(out / gname, t=golden.astype(np.float32), x=x)
        models[kind] = {"file": name, "golden": gname, "bytes": len(content), "graph": graph}
        models[kind]["rms_error_vs_float"] = round(rms, 8)
        log.info("tflite %s: %d bytes", kind, len(content))
    return {
        "bits": bits,
        "models": models,
        "representative_rows": len(rep),
        "interface": {
            "in_dim": int(src.info["out_dim"]),
            "out_dim": int(src.info["in_dim"]),
            "stateful": src.family == "tapped",
            "depth": src.depth,
            "lookahead": src.lookahead,
            "low": list(map(float, src.inverse.low)),
            "high": list(map(float, src.inverse.high)),
        },
    }
