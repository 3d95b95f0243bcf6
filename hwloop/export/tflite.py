"""The Keras inverses through TensorFlow's TFLite converter: float16, 16x8 and full-integer int8.

- float16 (``--bits 16``): weights stored as float16 (``Optimize.DEFAULT``
  with ``supported_types = [float16]``); the model computes in float32.
- int16x8 (``--weight-bits 8 --act-bits 16``): the converter's 16x8 mode
  (``EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8``): int8
  weights per channel, int16 activations, int16 input and output tensors.
- int8 (``--bits 8``): full-integer post-training quantisation:
  ``TFLITE_BUILTINS_INT8`` only, int8 input and output tensors.

The integer models are calibrated on a representative dataset drawn from
the run's query log (the targets the inverse was trained on, with the rows
at their extremes: `representative`; tapped rows for a tapped inverse).
Each is converted from up to three graphs (the inverse as trained; skip and
output joined: `hwloop.export.tflite_graph.integer_model`; Dense layers per
block of 8 inputs with words on the converter's own grid:
`hwloop.export.tflite_graph.blocked_model`, not for masked inverses) and the
one closest to the float inverse on logged targets is kept (the manifest's
``graph``).

With ``--qat`` (full int8 only) the words are first fine-tuned with the
device in the loop in the C arithmetic with 8-bit words throughout
(`hwloop.export.qat`, the nearest it comes to full int8: int8 input and
output), read back as float weights (`hwloop.export.tflite_graph.float_of`)
and converted from those graphs, the one closest to the tuned words kept.
The converter re-rounds them onto its own grid (per-channel scales, per-
tensor activations), so the tuning carries over in part: docs/deploy.md
gives what it measured.

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
from hwloop.export.mlp_float import FloatMLP, extract
from hwloop.export.source import RunSource
from hwloop.export.tflite_graph import blocked_model, integer_model

log = logging.getLogger(__name__)

REPRESENTATIVE_ROWS = 500
GOLDEN_ROWS = 256
CHECK_ROWS = 2000  # logged targets on which each integer graph is compared with the float inverse
EDGE_MARGIN = 1.25  # the calibration's extreme rows, widened: fresh targets reach past the logged ones
BLOCKED = "blocks of 8 inputs, words on the converter's grid by error feedback"
TUNED = "quantisation-aware fine-tuned, "
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


def representative(feats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The calibration rows: a sample of the logged targets, and the rows holding each input's
    extremes (and the largest one) widened by `EDGE_MARGIN`, so that the integer ranges hold every
    target the inverse was trained on, and fresh ones a little past them (a sample's range alone
    clips the rest: that cost more than the weights' rounding on the held-out I/Q inverses)."""
    rows = feats[rng.choice(len(feats), size=min(REPRESENTATIVE_ROWS, len(feats)), replace=False)]
    edges = np.unique(
        np.concatenate([np.argmax(feats, 0), np.argmin(feats, 0), [np.argmax(np.linalg.norm(feats, axis=1))]])
    )
    return np.concatenate([rows, feats[edges] * EDGE_MARGIN])


def export_tflite(
    src: RunSource,
    out: Path,
    bits: int | None,
    weight_bits: int | None = None,
    act_bits: int | None = None,
    tuned: FloatMLP | None = None,
) -> dict:
    """``inverse_KIND.tflite`` for each kind asked for, with golden rows; the manifest's record.

    ``tuned``: the inverse after quantisation-aware fine-tuning (`hwloop.export.tflite_graph.float_of`);
    the integer models are converted from it, and judged against it, instead of the trained inverse.
    """
    kinds = kinds_for(bits, weight_bits, act_bits)
    feats = src.features()
    rng = np.random.default_rng(0)
    rep = representative(feats, rng)
    golden = feats[np.sort(rng.choice(len(feats), size=min(GOLDEN_ROWS, len(feats)), replace=False))]
    models = {}
    check = feats[np.sort(rng.choice(len(feats), size=min(CHECK_ROWS, len(feats)), replace=False))]
    if tuned is None:
        x_float = np.asarray(src.inverse.model.predict_on_batch(check.astype(np.float32)), np.float64)
        graphs = {"as trained": src.inverse.model}
    else:
        x_float, graphs = tuned.forward(check), {}
    integer_graphs_built = False  # the integer candidates are built once, for the first integer kind
    for kind in kinds:
        name = f"inverse_{kind}.tflite"
        if kind != "float16" and not integer_graphs_built:
            integer_graphs_built = True
            mlp = tuned or extract(src.inverse.model, src.inverse.low, src.inverse.high, feats[:256])
            graphs[f"{TUNED if tuned else ''}skip and output joined"] = integer_model(mlp)
            kernels = [w for w, _ in mlp.hidden] + ([mlp.out[0]] if mlp.out is not None else [])
            if not any(np.any(w == 0.0) for w in kernels):  # masked: its fixed zeros stay as they are
                graphs[f"{TUNED if tuned else ''}{BLOCKED}"] = blocked_model(mlp, feats)
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
