"""The recurrent (GRU) inverse in fixed point, and its numpy bit-exact reference, state included.

`extract_gru` reads the Keras graph `hwloop.inverses.gru.build_gru_model`
builds (Standardize, a Keras GRU with ``reset_after``, a Dense head on the
standardised target beside the GRU's state, Destandardize) and checks the
float arrays against Keras on a sequence. `quantize_gru` turns them into
words (`QuantGRU`); `QuantGRU.run` is what the generated C computes, output
and state, sample by sample from a reset. Per sample, with ``wbits`` the
weights, ``abits`` the state and gates, ``io_bits`` the target and drive:

    z    = sat(sat(t - mean_t) * inv_std >> s)            Qz (io_bits), as the MLP
    gx   = Wx z + bx,  gh = Wh h + bh                      per gate unit, requantised to Q.12
    zg   = sig(gx_z + gh_z),  rg = sig(gx_r + gh_r)         sig(u) = (1 + tanh(u / 2)) / 2, Q1.(abits-1)
    hh   = tanh(gx_h + rg * gh_h >> (abits-1))              Q0.(abits-1)
    h'   = sat(hh + zg * (h - hh) >> (abits-1))             the new state, Q0.(abits-1)
    zo   = sat(Hz z + Hh h' (each rounded to Qzo))          the head, as the MLP's skip and output
    x    = peak(clip(sat(zo * std_x >> s) + mean_x))        the drive, Qx (io_bits)

``peak`` scales an I/Q pair above the device's envelope back onto it (exact
integer square root, rounded division), as the float inverse's
`within_device` does. The tanh is the table of `hwloop.export.fixed`
(sig uses it at u / 2); accumulators are int32, or int64 where the worst
case needs it (`hwloop.export.mlp.layer_words`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from hwloop.errors import UsageError
from hwloop.export.fixed import (
    TANH_IN_FRAC,
    QFormat,
    envelope_limit,
    peak_word,
    requant,
    rshift_round,
    tanh_input,
    tanh_q,
)
from hwloop.export.mlp import WIDE, QLayer, layer_words, natural_frac, round_weights
from hwloop.export.words import WordInverse, input_words, output_words

log = logging.getLogger(__name__)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class FloatGRU:
    """The GRU inverse as float64 arrays (Keras' gate order z, r, h; reset after the product)."""

    in_mean: np.ndarray
    in_std: np.ndarray
    kernel: np.ndarray  # (d, 3u)
    rkernel: np.ndarray  # (u, 3u)
    bias_x: np.ndarray  # (3u,)
    bias_h: np.ndarray  # (3u,)
    head_z: tuple[np.ndarray, np.ndarray]  # (d, out), (out,): the standardised target's part, with the bias
    head_h: np.ndarray  # (u, out)
    out_mean: np.ndarray
    out_std: np.ndarray
    low: np.ndarray
    high: np.ndarray
    pairs: list  # the device's I/Q pairs with an envelope (none: no envelope)
    peak: float | None

    @property
    def units(self) -> int:
        return self.rkernel.shape[0]

    def run(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drive (n, out) and states (n, u) for targets t (n, d) from a zero state."""
        z = (np.asarray(t, np.float64) - self.in_mean) / self.in_std
        u = self.units
        h = np.zeros(u)
        xs, hs = [], []
        gxs = z @ self.kernel + self.bias_x
        for gx in gxs:
            gh = h @ self.rkernel + self.bias_h
            zg = _sigmoid(gx[:u] + gh[:u])
            rg = _sigmoid(gx[u : 2 * u] + gh[u : 2 * u])
            hh = np.tanh(gx[2 * u :] + rg * gh[2 * u :])
            h = zg * h + (1.0 - zg) * hh
            hs.append(h)
        hs = np.asarray(hs)
        zo = z @ self.head_z[0] + self.head_z[1] + hs @ self.head_h
        xs = np.clip(zo * self.out_std + self.out_mean, self.low, self.high)
        for i, q in self.pairs:
            m = np.hypot(xs[:, i], xs[:, q])
            scale = np.minimum(1.0, self.peak / np.maximum(m, 1e-300))
            xs[:, i], xs[:, q] = xs[:, i] * scale, xs[:, q] * scale
        return xs, hs


def extract_gru(inverse, check: np.ndarray) -> FloatGRU:
    """The float arrays of a `GRUInverse`, verified against Keras on the target sequence ``check``."""
    m = inverse.model
    try:
        st, gru, head, de = (m.get_layer(n) for n in ("standardize", "gru", "head", "destandardize"))
    except ValueError as exc:
        raise UsageError(f"this GRU inverse is not the model the export knows ({exc})") from None
    cell = getattr(gru, "cell", gru)
    if not getattr(cell, "reset_after", False) or not getattr(cell, "use_bias", True):
        raise UsageError("the fixed-point GRU export needs a Keras GRU with reset_after and biases")
    act = (getattr(cell.activation, "__name__", ""), getattr(cell.recurrent_activation, "__name__", ""))
    if act != ("tanh", "sigmoid"):
        raise UsageError(f"the fixed-point GRU export needs tanh and sigmoid activations, got {act}")
    kernel, rkernel, bias = (np.asarray(w, np.float64) for w in gru.get_weights())
    hw, hb = (np.asarray(w, np.float64) for w in head.get_weights())
    d = kernel.shape[0]
    env = (inverse.device_info or {}).get("envelope")
    f = FloatGRU(
        np.asarray(st.mean, np.float64),
        np.asarray(st.std, np.float64),
        kernel,
        rkernel,
        bias[0],
        bias[1],
        (hw[:d], hb),
        hw[d:],
        np.asarray(de.mean, np.float64),
        np.asarray(de.std, np.float64),
        np.asarray(inverse.low, np.float64),
        np.asarray(inverse.high, np.float64),
        [tuple(map(int, p)) for p in env["pairs"]] if env else [],
        float(env["peak"]) if env else None,
    )
    keras_x = np.asarray(inverse.apply(check), np.float64)
    err = float(np.max(np.abs(keras_x - f.run(check)[0])))
    if not err <= 1e-4 * float(np.max(f.high - f.low)):
        raise UsageError(f"the exporter's reading of this GRU inverse differs from Keras by {err:.3g}")
    return f


@dataclass
class QuantGRU(WordInverse):
    """A GRU inverse in words; ``run`` is the bit-exact reference of the generated C, state included."""

    wbits: int
    abits: int
    io_bits: int
    fmt_t: QFormat
    mean_t: np.ndarray
    fmt_is: QFormat
    inv_std: np.ndarray
    fmt_z: QFormat
    lx: QLayer  # z -> 3u gate pre-activations, Q.12
    lh: QLayer  # h -> 3u, Q.12
    head_z: QLayer  # z -> out, Qzo
    head_h: QLayer  # h -> out, Qzo
    fmt_zo: QFormat
    fmt_so: QFormat
    std_x: np.ndarray
    fmt_x: QFormat
    mean_x: np.ndarray
    low_q: np.ndarray
    high_q: np.ndarray
    peak_q: int  # 0: no envelope
    pairs: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def units(self) -> int:
        return self.lh.w.shape[0]

    def sig(self, v: np.ndarray) -> np.ndarray:
        """sigmoid of Q.12 pre-activations v, in Q1.(abits-1): (1 + tanh(v / 2)) / 2, [0, 1]."""
        ga = self.abits - 1
        t = tanh_q(tanh_input(v, 1), self.fmt_h)
        return np.right_shift((1 << ga) + t + 1, 1)

    def step(self, z: np.ndarray, h: np.ndarray) -> np.ndarray:
        """The next state words for standardised inputs z (n, d) and states h (n, u)."""
        u, ga = self.units, self.abits - 1
        gx = requant(self.lx.acc(z), self.lx.shift, WIDE)
        gh = requant(self.lh.acc(h), self.lh.shift, WIDE)
        zg = self.sig(gx[:, :u] + gh[:, :u])
        rg = self.sig(gx[:, u : 2 * u] + gh[:, u : 2 * u])
        v = gx[:, 2 * u :] + rshift_round(rg * gh[:, 2 * u :], ga)
        hh = tanh_q(tanh_input(v, 0), self.fmt_h)
        return self.fmt_h.saturate(hh + rshift_round(zg * (h - hh), ga))

    def output(self, z: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Drive words from the standardised inputs and the new states."""
        zo = requant(self.head_z.acc(z), self.head_z.shift, WIDE)
        zo = self.fmt_zo.saturate(zo + requant(self.head_h.acc(h), self.head_h.shift, WIDE))
        x = self.fmt_x.saturate(requant(zo * self.std_x, self.x_shift, WIDE) + self.mean_x)
        return envelope_limit(np.clip(x, self.low_q, self.high_q), self.pairs, self.peak_q)

    def run(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Target words (n, d) of one stream from a reset -> (drive words (n, out), states (n, u))."""
        z = self.standardised(t)
        h = np.zeros((1, self.units), np.int64)
        hs = np.empty((len(z), self.units), np.int64)
        for i in range(len(z)):
            h = self.step(z[i : i + 1], h)
            hs[i] = h[0]
        return self.output(z, hs), hs

    def formats(self) -> dict:
        ga = self.abits - 1
        return {
            "t": self.fmt_t.to_dict(),
            "inv_std": self.fmt_is.to_dict(),
            "z": self.fmt_z.to_dict(),
            "preactivation": {"bits": 32, "frac": TANH_IN_FRAC, "q": f"Q19.{TANH_IN_FRAC}"},
            "state": self.fmt_h.to_dict(),
            "gates": {"bits": self.abits + 1, "frac": ga, "q": f"Q1.{ga} (unsigned, [0, 1])"},
            "zo": self.fmt_zo.to_dict(),
            "std_x": self.fmt_so.to_dict(),
            "x": self.fmt_x.to_dict(),
            "weights": {
                n: {"bits": self.wbits, "frac_min": int(ly.wfrac.min()), "frac_max": int(ly.wfrac.max())}
                for n, ly in (
                    ("kernel", self.lx),
                    ("recurrent", self.lh),
                    ("head_z", self.head_z),
                    ("head_h", self.head_h),
                )
            },
            "peak": None
            if not self.peak_q
            else {"word": self.peak_q, "value": self.peak_q / 2.0**self.fmt_x.frac},
        }

    def to_dict(self) -> dict:
        d: dict = {"weight_bits": self.wbits, "act_bits": self.abits, "io_bits": self.io_bits}
        d |= {"peak_q": int(self.peak_q), "pairs": [list(map(int, p)) for p in self.pairs]}
        d |= {"extra": self.extra}
        for k in ("fmt_t", "fmt_is", "fmt_z", "fmt_zo", "fmt_so", "fmt_x"):
            d[k] = getattr(self, k).frac
        for k in ("mean_t", "inv_std", "std_x", "mean_x", "low_q", "high_q"):
            d[k] = np.asarray(getattr(self, k)).tolist()
        for k in ("lx", "lh", "head_z", "head_h"):
            d[k] = getattr(self, k).to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> QuantGRU:
        io = int(d["io_bits"])
        fmt = {k: QFormat(io, int(d[k])) for k in ("fmt_t", "fmt_is", "fmt_z", "fmt_zo", "fmt_so", "fmt_x")}
        arr = {
            k: np.asarray(d[k], np.int64) for k in ("mean_t", "inv_std", "std_x", "mean_x", "low_q", "high_q")
        }
        layers = {k: QLayer.from_dict(d[k]) for k in ("lx", "lh", "head_z", "head_h")}
        return cls(
            wbits=int(d["weight_bits"]),
            abits=int(d["act_bits"]),
            io_bits=io,
            peak_q=int(d["peak_q"]),
            pairs=[tuple(p) for p in d.get("pairs", [])],
            extra=dict(d.get("extra") or {}),
            **fmt,
            **arr,
            **layers,
        )


def _layer(w: np.ndarray, b: np.ndarray, wbits: int, in_fmt: QFormat, out_frac: int) -> QLayer:
    wfrac = natural_frac(w, wbits)
    return layer_words(round_weights(w, wfrac, wbits), wfrac, b, in_fmt, out_frac)


def quantize_gru(f: FloatGRU, targets: np.ndarray, wbits: int, abits: int, io_bits: int) -> QuantGRU:
    """Words for the GRU ``f``; ``targets`` (rows of its input) set the input range."""
    words = input_words(targets, f.in_mean, f.in_std, io_bits)
    words |= output_words(f.low, f.high, f.out_mean, f.out_std, io_bits)
    fmt_z, fmt_zo, fmt_x = words["fmt_z"], words["fmt_zo"], words["fmt_x"]
    fmt_h = QFormat(abits, abits - 1)
    lx = _layer(f.kernel, f.bias_x, wbits, fmt_z, TANH_IN_FRAC)
    lh = _layer(f.rkernel, f.bias_h, wbits, fmt_h, TANH_IN_FRAC)
    head_z = _layer(f.head_z[0], f.head_z[1], wbits, fmt_z, fmt_zo.frac)
    head_h = _layer(f.head_h, np.zeros(f.head_h.shape[1]), wbits, fmt_h, fmt_zo.frac)
    peak_q = 0 if f.peak is None else peak_word(f.peak, fmt_x.frac)
    q = QuantGRU(
        wbits=wbits,
        abits=abits,
        io_bits=io_bits,
        lx=lx,
        lh=lh,
        head_z=head_z,
        head_h=head_h,
        **words,
        peak_q=peak_q,
        pairs=list(f.pairs),
    )
    log.info("GRU %d units, %d-bit weights, %d-bit state (io %d)", f.units, wbits, abits, io_bits)
    return q
