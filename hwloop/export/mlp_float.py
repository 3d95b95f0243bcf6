"""The float MLP inverse read out of its Keras graph: what the fixed-point exports quantise.

`extract` reads the graph `hwloop.inverses.models.build_regressor` builds
(Standardize, tanh Dense layers, a linear skip beside them, the MLP's output
layer, their sum, Destandardize, and the clip to the safe range) into float64
arrays, and checks that they reproduce the Keras model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwloop.errors import UsageError


@dataclass
class FloatMLP:
    """The inverse as float64 arrays: what `quantize` quantises and what Keras computes."""

    in_mean: np.ndarray
    in_std: np.ndarray
    hidden: list[tuple[np.ndarray, np.ndarray]]
    skip: tuple[np.ndarray, np.ndarray]
    out: tuple[np.ndarray, np.ndarray] | None
    out_mean: np.ndarray
    out_std: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def parts(self, feats: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
        """z, hidden activations, skip part and MLP part of the standardised output."""
        z = (np.asarray(feats, np.float64) - self.in_mean) / self.in_std
        h, acts = z, []
        for w, b in self.hidden:
            h = np.tanh(h @ w + b)
            acts.append(h)
        s = z @ self.skip[0] + self.skip[1]
        o = h @ self.out[0] + self.out[1] if self.out is not None else np.zeros_like(s)
        return z, acts, s, o

    def forward(self, feats: np.ndarray) -> np.ndarray:
        _, _, s, o = self.parts(feats)
        return np.clip((s + o) * self.out_std + self.out_mean, self.low, self.high)


def _layers(model) -> dict:
    """Every layer of the model and of models nested in it, by name."""
    found = {}
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            found.update(_layers(layer))
        found[layer.name] = layer
    return found


def _dense(layer, activation: str) -> tuple[np.ndarray, np.ndarray]:
    act = getattr(getattr(layer, "activation", None), "__name__", "linear")
    if act != activation:
        raise UsageError(
            f"layer {layer.name} has activation {act}; the fixed-point export needs {activation}"
        )
    if hasattr(layer, "masked_kernel"):  # MaskedDense: the effective kernel, masked zeros included
        kernel = np.asarray(layer.masked_kernel(), np.float64)
    else:
        kernel = np.asarray(layer.kernel.numpy(), np.float64)
    bias = np.asarray(layer.bias.numpy(), np.float64) if layer.bias is not None else np.zeros(kernel.shape[1])
    return kernel, bias


def order_units(mlp: FloatMLP, rows: np.ndarray) -> None:
    """Order hidden units (the same function) as error-feedback rounding (`hwloop.export.shaping`)
    rounds them: the last layer's by falling output-weight norm; the one before it by falling
    mean sensitivity of the output to it on ``rows``."""
    order = np.argsort(-np.linalg.norm(mlp.out[0], axis=1), kind="stable")
    w, b = mlp.hidden[-1]
    mlp.hidden[-1] = (w[:, order], b[order])
    mlp.out = (mlp.out[0][order], mlp.out[1])
    if len(mlp.hidden) < 2:
        return
    _, acts, _, _ = mlp.parts(rows)
    g = (1.0 - acts[-1] ** 2)[:, :, None] * mlp.out[0][None]
    sens = np.einsum("jm,nmk->njk", mlp.hidden[-1][0], g)
    order = np.argsort(-np.mean(np.linalg.norm(sens, axis=2), axis=0), kind="stable")
    (wp, bp), (wl, bl) = mlp.hidden[-2], mlp.hidden[-1]
    mlp.hidden[-2], mlp.hidden[-1] = (wp[:, order], bp[order]), (wl[order], bl)


def extract(model, low: np.ndarray, high: np.ndarray, check: np.ndarray) -> FloatMLP:
    """The float arrays of a `build_regressor` model, verified against Keras on the rows ``check``."""
    layers = _layers(model)
    needed = ("standardize", "linear_skip", "destandardize")
    if any(n not in layers for n in needed):
        raise UsageError(
            f"this inverse is not the MLP the exports know (layers {sorted(layers)}); "
            "they read Standardize, hidden_i, linear_skip, mlp_out, Destandardize"
        )
    hidden = []
    while f"hidden_{len(hidden)}" in layers:
        hidden.append(_dense(layers[f"hidden_{len(hidden)}"], "tanh"))
    st, de = layers["standardize"], layers["destandardize"]
    mlp = FloatMLP(
        np.asarray(st.mean, np.float64),
        np.asarray(st.std, np.float64),
        hidden,
        _dense(layers["linear_skip"], "linear"),
        _dense(layers["mlp_out"], "linear") if "mlp_out" in layers else None,
        np.asarray(de.mean, np.float64),
        np.asarray(de.std, np.float64),
        np.asarray(low, np.float64),
        np.asarray(high, np.float64),
    )
    if (mlp.out is None) != (not hidden):
        raise UsageError("this inverse has hidden layers without an output layer (or the reverse)")
    if hidden:
        order_units(mlp, np.asarray(check, np.float64))
    rows = np.asarray(check, np.float32)
    keras_x = np.clip(np.asarray(model.predict_on_batch(rows), np.float64), mlp.low, mlp.high)
    err = float(np.max(np.abs(keras_x - mlp.forward(rows))))
    scale = float(np.max(mlp.high - mlp.low))
    if not err <= 1e-4 * scale:
        raise UsageError(f"the exporter's reading of this inverse differs from Keras by {err:.3g}")
    return mlp
