"""The MLP and tapped-delay inverses in fixed point, and their numpy bit-exact reference.

`extract` reads the Keras graph that `hwloop.inverses.models.build_regressor`
builds (Standardize, tanh Dense layers, a linear skip beside them, the MLP's
output layer, their sum, Destandardize, and the clip to the safe range) into
float64 arrays, and checks that they reproduce the Keras model. `quantize`
turns it into words (`QuantMLP`); `QuantMLP.run` is the reference the
generated C must match exactly.

The datapath, with ``bits`` the width of weights and hidden activations and
``io_bits`` the width of the input, the standardised input, the output sum
and the drive (the converter's words; ``io_bits = bits`` gives a pure
``bits``-bit datapath):

    d  = sat(t - mean_t)                       t, mean_t, d   in Qt  (io_bits)
    z  = sat(d * inv_std >> s)                 z              in Qz  (io_bits)
    h1 = tanh(z @ W1 + b1)                     W: per-unit Q formats, int32 accumulators
    hk = tanh(h(k-1) @ Wk + bk)                h              in Q0.(bits-1)
    zo = sat(sk(z @ Ws + bs) + sk(h @ Wo + bo))  each part rounded to Qzo first
    x  = clip(sat((zo * std_x >> s) + mean_x), low, high)       x in Qx (io_bits)

Weight formats are chosen per output unit, then narrowed where needed so
that no int32 accumulator can overflow for any representable input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from hwloop.errors import UsageError
from hwloop.export.fixed import (
    ACC32_LIMIT,
    ACC64_LIMIT,
    TANH_IN_FRAC,
    QFormat,
    q_for_range,
    requant,
    tanh_input,
    tanh_q,
    worst_sum,
)

log = logging.getLogger(__name__)

WIDE = QFormat(31, 0)  # an intermediate sum two of which still fit in int32
MAX_WEIGHT_FRAC = 24
TARGET_MARGIN = 1.1  # targets up to 10 % beyond the logged ones keep their value


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
    rows = np.asarray(check, np.float32)
    keras_x = np.clip(np.asarray(model.predict_on_batch(rows), np.float64), mlp.low, mlp.high)
    err = float(np.max(np.abs(keras_x - mlp.forward(rows))))
    scale = float(np.max(mlp.high - mlp.low))
    if not err <= 1e-4 * scale:
        raise UsageError(f"the exporter's reading of this inverse differs from Keras by {err:.3g}")
    return mlp


@dataclass
class QLayer:
    """A dense layer in words: kernel, per-unit fractional bits, biases, per-unit shifts.

    ``acc64`` says the layer's accumulator is int64: a worst-case sum of its
    products does not fit int32 (16-bit weights on 16-bit activations over a
    wide layer); narrowing the weights instead would throw away their precision.
    """

    w: np.ndarray  # (in, units) int64 words of `bits` bits
    wfrac: np.ndarray  # (units,)
    bias: np.ndarray  # (units,) at 2**-(wfrac + in_frac)
    shift: np.ndarray  # (units,) accumulator scale minus the output's
    acc64: bool = False

    def acc(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a, np.int64) @ self.w + self.bias

    def to_dict(self) -> dict:
        d: dict = {k: np.asarray(getattr(self, k)).tolist() for k in ("w", "wfrac", "bias", "shift")}
        return d | {"acc64": self.acc64}

    @classmethod
    def from_dict(cls, d: dict) -> QLayer:
        arrays = (np.asarray(d[k], np.int64) for k in ("w", "wfrac", "bias", "shift"))
        return cls(*arrays, bool(d["acc64"]))


def natural_frac(w: np.ndarray, bits: int) -> np.ndarray:
    """Per output unit, the finest weight format that holds the unit's largest weight."""
    return np.array([q_for_range(m, bits, MAX_WEIGHT_FRAC).frac for m in np.max(np.abs(w), axis=0)], np.int64)


def round_weights(w: np.ndarray, wfrac: np.ndarray, bits: int) -> np.ndarray:
    """Weights (in, units) as words with per-unit fractional bits: round half up, saturate."""
    q = np.floor(np.asarray(w, np.float64) * np.exp2(wfrac.astype(np.float64)) + 0.5)
    return np.clip(q, -(1 << (bits - 1)), (1 << (bits - 1)) - 1).astype(np.int64)


def layer_words(wq: np.ndarray, wfrac: np.ndarray, b: np.ndarray, in_fmt: QFormat, out_frac: int) -> QLayer:
    """A `QLayer` from weight words and float biases; int64 accumulators where int32 could overflow."""
    bq = np.floor(np.asarray(b, np.float64) * np.exp2((wfrac + in_fmt.frac).astype(np.float64)) + 0.5)
    worst = worst_sum(wq, -in_fmt.lo) + np.abs(bq)
    if np.any(worst >= ACC64_LIMIT):
        raise UsageError("a layer's worst-case sum does not fit a 64-bit accumulator; weights out of range")
    shift = wfrac + in_fmt.frac - out_frac
    if np.any(np.abs(shift) > 40):
        raise UsageError(f"a layer needs a shift of {int(np.max(np.abs(shift)))} bits; weights out of range")
    return QLayer(
        np.asarray(wq, np.int64), wfrac, bq.astype(np.int64), shift, bool(np.any(worst >= ACC32_LIMIT))
    )


def _qlayer(w: np.ndarray, b: np.ndarray, bits: int, in_fmt: QFormat, out_frac: int) -> QLayer:
    """Per-unit formats as fine as the weights allow, each weight rounded to the nearest word."""
    wfrac = natural_frac(w, bits)
    return layer_words(round_weights(w, wfrac, bits), wfrac, b, in_fmt, out_frac)


@dataclass
class QuantMLP:
    """An MLP inverse in words; ``run`` is the bit-exact reference of the generated C."""

    bits: int
    io_bits: int
    fmt_t: QFormat
    mean_t: np.ndarray
    fmt_is: QFormat
    inv_std: np.ndarray
    fmt_z: QFormat
    hidden: list[QLayer]
    skip: QLayer
    out: QLayer | None
    fmt_zo: QFormat
    fmt_so: QFormat
    std_x: np.ndarray
    fmt_x: QFormat
    mean_x: np.ndarray
    low_q: np.ndarray
    high_q: np.ndarray
    extra: dict = field(default_factory=dict)

    @property
    def fmt_h(self) -> QFormat:
        return QFormat(self.bits, self.bits - 1)

    @property
    def in_dim(self) -> int:
        return len(self.mean_t)

    @property
    def out_dim(self) -> int:
        return len(self.mean_x)

    @property
    def z_shift(self) -> int:
        return self.fmt_t.frac + self.fmt_is.frac - self.fmt_z.frac

    @property
    def x_shift(self) -> int:
        return self.fmt_zo.frac + self.fmt_so.frac - self.fmt_x.frac

    def standardised(self, t: np.ndarray) -> np.ndarray:
        """The words z of the standardised input rows t."""
        d = self.fmt_t.saturate(np.asarray(t, np.int64) - self.mean_t)
        return requant(d * self.inv_std, self.z_shift, self.fmt_z)

    def activation(self, k: int, a: np.ndarray) -> np.ndarray:
        """Hidden layer k's output words for its input words a."""
        layer = self.hidden[k]
        return tanh_q(tanh_input(layer.acc(a), layer.shift), self.fmt_h)

    def run(self, t: np.ndarray) -> np.ndarray:
        """Rows of input words (n, in_dim) -> drive words (n, out_dim), exactly as the C computes them."""
        z = self.standardised(t)
        h = z
        for k in range(len(self.hidden)):
            h = self.activation(k, h)
        zo = requant(self.skip.acc(z), self.skip.shift, WIDE)
        if self.out is not None:
            zo = zo + requant(self.out.acc(h), self.out.shift, WIDE)
        zo = self.fmt_zo.saturate(zo)
        x = self.fmt_x.saturate(requant(zo * self.std_x, self.x_shift, WIDE) + self.mean_x)
        return np.clip(x, self.low_q, self.high_q)

    def formats(self) -> dict:
        """The Q format of every stored quantity, for the manifest and the C header."""
        out = {
            "t": self.fmt_t.to_dict(),
            "inv_std": self.fmt_is.to_dict(),
            "z": self.fmt_z.to_dict(),
            "hidden": self.fmt_h.to_dict(),
            "tanh_input": {"bits": 32, "frac": TANH_IN_FRAC, "q": f"Q19.{TANH_IN_FRAC}"},
            "zo": self.fmt_zo.to_dict(),
            "std_x": self.fmt_so.to_dict(),
            "x": self.fmt_x.to_dict(),
        }
        names = [f"hidden_{i}" for i in range(len(self.hidden))] + ["linear_skip"]
        layers = [*self.hidden, self.skip] + ([self.out] if self.out is not None else [])
        names += ["mlp_out"] if self.out is not None else []
        out["weights"] = {
            n: {"bits": self.bits, "frac_min": int(ly.wfrac.min()), "frac_max": int(ly.wfrac.max())}
            for n, ly in zip(names, layers, strict=True)
        }
        return out

    def to_dict(self) -> dict:
        d: dict = {"bits": self.bits, "io_bits": self.io_bits, "extra": self.extra}
        for k in ("fmt_t", "fmt_is", "fmt_z", "fmt_zo", "fmt_so", "fmt_x"):
            d[k] = getattr(self, k).frac
        for k in ("mean_t", "inv_std", "std_x", "mean_x", "low_q", "high_q"):
            d[k] = np.asarray(getattr(self, k)).tolist()
        d["hidden"] = [ly.to_dict() for ly in self.hidden]
        d["skip"] = self.skip.to_dict()
        d["out"] = None if self.out is None else self.out.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> QuantMLP:
        io = int(d["io_bits"])
        fmt = {k: QFormat(io, int(d[k])) for k in ("fmt_t", "fmt_is", "fmt_z", "fmt_zo", "fmt_so", "fmt_x")}
        arr = {
            k: np.asarray(d[k], np.int64) for k in ("mean_t", "inv_std", "std_x", "mean_x", "low_q", "high_q")
        }
        return cls(
            bits=int(d["bits"]),
            io_bits=io,
            hidden=[QLayer.from_dict(x) for x in d["hidden"]],
            skip=QLayer.from_dict(d["skip"]),
            out=None if d["out"] is None else QLayer.from_dict(d["out"]),
            extra=dict(d.get("extra") or {}),
            **fmt,
            **arr,
        )


def quantize(mlp: FloatMLP, targets: np.ndarray, bits: int, io_bits: int) -> QuantMLP:
    """Words for ``mlp``; ``targets`` (rows of the inverse's input) set the input range."""
    feats = np.asarray(targets, np.float64)
    fmt_t = q_for_range(TARGET_MARGIN * float(np.max(np.abs(feats))), io_bits, 20)
    full_t = -fmt_t.lo / 2.0**fmt_t.frac  # |d| after saturation
    inv_std = 1.0 / mlp.in_std
    fmt_is = q_for_range(float(np.max(inv_std)), io_bits, 30)
    fmt_z = q_for_range(full_t * float(np.max(inv_std)), io_bits, 20)
    fmt_h = QFormat(bits, bits - 1)
    hidden, in_fmt = [], fmt_z
    for w, b in mlp.hidden:
        hidden.append(_qlayer(w, b, bits, in_fmt, TANH_IN_FRAC))
        in_fmt = fmt_h
    # Where zo maps beyond [low, high] the clip decides; 25 % headroom past that.
    reach = np.maximum(np.abs(mlp.low - mlp.out_mean), np.abs(mlp.high - mlp.out_mean)) / mlp.out_std
    fmt_zo = q_for_range(1.25 * float(np.max(reach)), io_bits, 20)
    skip = _qlayer(*mlp.skip, bits, fmt_z, fmt_zo.frac)
    out = None if mlp.out is None else _qlayer(*mlp.out, bits, fmt_h, fmt_zo.frac)
    fmt_x = q_for_range(float(np.max(np.maximum(np.abs(mlp.low), np.abs(mlp.high)))), io_bits, 20)
    fmt_so = q_for_range(float(np.max(mlp.out_std)), io_bits, 30)
    fmt_so = QFormat(io_bits, max(fmt_so.frac, fmt_x.frac - fmt_zo.frac))  # keeps the x shift >= 0
    q = QuantMLP(
        bits=bits,
        io_bits=io_bits,
        fmt_t=fmt_t,
        mean_t=fmt_t.quantize(mlp.in_mean),
        fmt_is=fmt_is,
        inv_std=fmt_is.quantize(inv_std),
        fmt_z=fmt_z,
        hidden=hidden,
        skip=skip,
        out=out,
        fmt_zo=fmt_zo,
        fmt_so=fmt_so,
        std_x=fmt_so.quantize(mlp.out_std),
        fmt_x=fmt_x,
        mean_x=fmt_x.quantize(mlp.out_mean),
        low_q=fmt_x.quantize(mlp.low),
        high_q=fmt_x.quantize(mlp.high),
    )
    log.info("MLP in %d-bit words (io %d): %s", bits, io_bits, q.formats())
    return q


def tap_words(t: np.ndarray, depth: int, lookahead: int) -> np.ndarray:
    """The C delay line's rows for a stream of target words (n, d): row n holds t[n], ..., t[n-L-D].

    Row n is the tapped row of time n - lookahead (`hwloop.inverses.tapped.tapped`).
    """
    t = np.asarray(t, np.int64)
    n, d = t.shape
    taps = lookahead + 1 + depth
    padded = np.concatenate([np.zeros((taps - 1, d), np.int64), t])
    return np.concatenate([padded[taps - 1 - k : taps - 1 - k + n] for k in range(taps)], axis=1)
