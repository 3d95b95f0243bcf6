"""The GMP predistorter as a Keras model, so it saves and loads as ``inverse.keras``.

The model takes the tapped target sequence that `hwloop.inverses.tapped.tapped`
builds with ``depth = cfg.depth`` and ``lookahead = cfg.lookahead`` (the
predistorter's leading taps, 0 for a causal one): row n holds [I, Q] of
t[n+lookahead], ..., t[n], ..., t[n-depth]. `GMPFeatures` turns a row into the
real and imaginary parts of the GMP basis, a bias-free Dense layer holds the
least-squares coefficients (a complex product written as a real 2F x 2
matrix), and `PeakLimit` bounds the drive's magnitude. Because a row carries
its own past, the model is an ordinary per-row map: `hwloop.inverses.tapped.SequenceInverse`
runs it on whole sequences unchanged, and it stays trainable (e.g. through a
surrogate) with exact gradients.

Run directory hook (the family record `FAMILY`): `save_gmp_inverse` writes
``inverse.keras`` and ``device.json`` with ``inverse_memory = {"depth": D,
"lookahead": L, "kind": "gmp", ...}``; `hwloop.inverses.store.load_inverse`
reads them back into a `hwloop.dpd.gmp.GMPInverse` (numpy, float64,
streaming) through `from_keras`. The Keras form itself
stays an exact float32 model of the predistorter on tapped rows, which
`hwloop.inverses.tapped.SequenceInverse` can run and a surrogate can train through.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import ops

from hwloop.dpd.gmp import GMP, GMPConfig, GMPInverse
from hwloop.errors import UsageError
from hwloop.inverses.base import Family, save_model, without_memory

KIND = "gmp"
_TINY = 1e-24  # floor under |x|^2: keeps the gradient of |x| finite at x = 0


@keras.saving.register_keras_serializable(package="hwloop")
class GMPFeatures(keras.layers.Layer):
    """Tapped I/Q row (2 (depth+1),) -> [Re phi, Im phi] of the GMP basis (2 n_terms,)."""

    def __init__(self, gmp: dict, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.gmp = dict(gmp)
        self.cfg = GMPConfig(**self.gmp)
        if self.cfg.lead:
            raise UsageError("GMPFeatures is causal: leading terms (lead > 0) are not supported")
        self.terms = self.cfg.terms()

    def call(self, x):  # type: ignore[override]
        taps = self.cfg.depth + 1 + self.cfg.lookahead  # row: t[n + lookahead], ..., t[n - depth]
        re = [x[:, 2 * j] for j in range(taps)]
        im = [x[:, 2 * j + 1] for j in range(taps)]
        mag = [ops.sqrt(ops.maximum(re[j] * re[j] + im[j] * im[j], _TINY)) for j in range(taps)]
        out_re, out_im = [], []
        for k, m, lag in self.terms:
            env = ops.power(mag[m + lag], float(k - 1)) if k > 1 else None
            out_re.append(re[m] * env if env is not None else re[m])
            out_im.append(im[m] * env if env is not None else im[m])
        return ops.stack(out_re + out_im, axis=1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], 2 * len(self.terms))

    def get_config(self) -> dict:
        return {**super().get_config(), "gmp": self.gmp}


@keras.saving.register_keras_serializable(package="hwloop")
class PeakLimit(keras.layers.Layer):
    """Scale I/Q rows with magnitude above ``peak`` back to ``peak``, keeping their phase."""

    def __init__(self, peak: float = 1.0, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.peak = float(peak)

    def call(self, x):  # type: ignore[override]
        mag = ops.sqrt(ops.maximum(ops.sum(x * x, axis=1, keepdims=True), _TINY))
        return x * ops.minimum(1.0, self.peak / mag)

    def get_config(self) -> dict:
        return {**super().get_config(), "peak": self.peak}


def complex_to_kernel(coeffs: np.ndarray) -> np.ndarray:
    """Complex c (F,) -> real W (2F, 2) with [Re phi, Im phi] @ W = [Re, Im] of phi @ c."""
    a, b = np.real(coeffs), np.imag(coeffs)
    return np.stack([np.concatenate([a, -b]), np.concatenate([b, a])], axis=1)


def kernel_to_complex(w: np.ndarray) -> np.ndarray:
    """Inverse of `complex_to_kernel`."""
    f = w.shape[0] // 2
    return w[:f, 0] + 1j * w[:f, 1]


def build_keras(inv: GMPInverse) -> keras.Model:
    """A Keras model equal to ``inv`` on tapped rows (float32)."""
    cfg = inv.model.cfg
    inp = keras.Input((2 * (cfg.depth + 1 + cfg.lookahead),), name="tapped_target")
    phi = GMPFeatures(cfg.to_dict(), name="gmp_features")(inp)
    lin = keras.layers.Dense(2, use_bias=False, name="gmp_linear", dtype="float32")
    x = PeakLimit(inv.peak, name="peak_limit")(lin(phi))
    model = keras.Model(inp, x, name="gmp_inverse")
    lin.set_weights([complex_to_kernel(inv.model.coeffs).astype(np.float32)])
    return model


def from_keras(model: keras.Model, gain: complex = 1.0) -> GMPInverse:
    """The numpy `GMPInverse` a model from `build_keras` holds."""
    cfg = GMPConfig(**model.get_layer("gmp_features").gmp)
    coeffs = kernel_to_complex(np.asarray(model.get_layer("gmp_linear").get_weights()[0], np.float64))
    return GMPInverse(GMP(cfg, coeffs), peak=model.get_layer("peak_limit").peak, gain=gain)


def save_gmp_inverse(run_dir: str | Path, inv: GMPInverse, device_info: dict) -> Path:
    """Write ``inverse.keras`` and ``device.json`` (with ``inverse_memory.kind = "gmp"``)."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    g = complex(inv.gain)
    cfg = inv.model.cfg
    memory = {"depth": cfg.depth, "lookahead": cfg.lookahead, "kind": KIND, "gain": [g.real, g.imag]}
    return save_model(run, build_keras(inv), device_info, memory)


def _load(model: keras.Model, info: dict) -> GMPInverse:
    g = info["inverse_memory"].get("gain", [1.0, 0.0])
    inv = from_keras(model, complex(g[0], g[1]))
    inv.info = without_memory(info)
    return inv


FAMILY = Family(KIND, (GMPInverse,), lambda inv, run: save_gmp_inverse(run, inv, inv.info), _load)
