"""The MLP and tapped-delay inverses in fixed point, and their numpy bit-exact reference.

`quantize` turns the float MLP (`hwloop.export.mlp_float`) into words
(`QuantMLP`); `QuantMLP.run` is the reference the generated C must match
exactly.

The datapath, with ``wbits`` the width of the weights, ``abits`` the width
of the hidden activations and ``io_bits`` the width of the input, the
standardised input, the output sum and the drive (the converter's words;
all three equal give a pure datapath of that width):

    d  = sat(t - mean_t)                       t, mean_t, d   in Qt  (io_bits)
    z  = sat(d * inv_std >> s)                 z              in Qz  (io_bits)
    h1 = tanh(z @ W1 + b1)                     W: wbits, per-unit Q formats, int32 accumulators
    hk = tanh(h(k-1) @ Wk + bk)                h              in Q0.(abits-1)
                                               (at <= 10 bits the last two layers' words chosen
                                               by error feedback onto the output: `shaping`)
    zo = sat(sk(z @ Ws + bs) + sk(h @ Wo + bo))  each part rounded to Qzo first
    x  = clip(sat((zo * std_x >> s) + mean_x), low, high)       x in Qx (io_bits)
    x  = each I/Q pair beyond the device's envelope scaled back onto it (`envelope_limit`)

Weight formats are chosen per output unit or, below 12-bit weights, per
block of `BLOCK` inputs of a unit: each block's words get the finest format
that holds the block's largest weight, and the block's partial sum is
shifted left onto the unit's finest format before it joins the accumulator
(a power-of-two exponent per block, as the OCP microscaling formats have).
Accumulators are int32, or int64 where the worst case over all
representable inputs could pass 2^30.
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
    envelope_limit,
    peak_word,
    q_for_range,
    requant,
    tanh_input,
    tanh_q,
    worst_sum,
)
from hwloop.export.mlp_float import FloatMLP
from hwloop.export.shaping import (
    TABLE,
    applies,
    error_shifts,
    jacobian_words,
    probe_shifts,
    sensitivities,
    shaped_words,
)
from hwloop.export.words import WordInverse, input_words, output_words

log = logging.getLogger(__name__)

WIDE = QFormat(31, 0)  # an intermediate sum two of which still fit in int32
MAX_WEIGHT_FRAC = 24
BLOCK = 8  # inputs per weight block below BLOCK_BELOW bits
BLOCK_BELOW = 12
MAX_UP = 8  # a block's exponent at most this far from its unit's coarsest


@dataclass
class QLayer:
    """A dense layer in words: kernel, per-unit fractional bits, biases, per-unit shifts.

    ``acc64`` says the layer's accumulator is int64: a worst-case sum of its
    products does not fit int32 (16-bit weights on 16-bit activations over a
    wide layer); narrowing the weights instead would throw away their precision.
    """

    w: np.ndarray  # (in, units) int64 words of `bits` bits
    wfrac: np.ndarray  # (units,): the accumulator's weight scale, the unit's finest block format
    bias: np.ndarray  # (units,) at 2**-(wfrac + in_frac)
    shift: np.ndarray  # (units,) accumulator scale minus the output's
    acc64: bool = False
    up: np.ndarray | None = None  # (in, units): each word's left shift onto wfrac (its block's); None: 0
    block: int = 0  # inputs per block (0: one block, the whole unit)

    @property
    def wide(self) -> np.ndarray:
        """The words at the accumulator's scale: w << up (exact integers)."""
        return self.w if self.up is None else np.left_shift(self.w, self.up)

    def acc(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a, np.int64) @ self.wide + self.bias

    def to_dict(self) -> dict:
        d: dict = {k: np.asarray(getattr(self, k)).tolist() for k in ("w", "wfrac", "bias", "shift")}
        d |= {"up": None if self.up is None else self.up.tolist(), "block": self.block}
        return d | {"acc64": self.acc64}

    @classmethod
    def from_dict(cls, d: dict) -> QLayer:
        arrays = (np.asarray(d[k], np.int64) for k in ("w", "wfrac", "bias", "shift"))
        up = d.get("up")
        return cls(
            *arrays,
            bool(d["acc64"]),
            None if up is None else np.asarray(up, np.int64),
            int(d.get("block", 0)),
        )


def natural_frac(w: np.ndarray, bits: int) -> np.ndarray:
    """Per output unit, the finest weight format that holds the unit's largest weight."""
    return np.array([q_for_range(m, bits, MAX_WEIGHT_FRAC).frac for m in np.max(np.abs(w), axis=0)], np.int64)


def block_formats(w: np.ndarray, bits: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """(wfrac (units,), up (in, units)): per block of ``block`` inputs of each unit, the finest format
    holding the block's largest weight, at most `MAX_UP` finer than the unit's coarsest block;
    wfrac is the unit's finest, up each word's shift onto it. ``block`` 0: one block per unit."""
    w = np.asarray(w, np.float64)
    n = w.shape[0]
    size = block if 0 < block < n else n
    fr = np.array(
        [
            [q_for_range(m, bits, MAX_WEIGHT_FRAC).frac for m in np.max(np.abs(w[i : i + size]), axis=0)]
            for i in range(0, n, size)
        ],
        np.int64,
    )
    fr = np.minimum(fr, fr.min(axis=0) + MAX_UP)
    wfrac = fr.max(axis=0)
    return wfrac, np.repeat(wfrac[None, :] - fr, size, axis=0)[:n]


def weight_scale(wfrac: np.ndarray, up: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Words per unit of weight, per weight: 2^(wfrac - up)."""
    up = np.zeros(shape, np.int64) if up is None else up
    return np.exp2((np.broadcast_to(wfrac, shape) - up).astype(np.float64))


def round_weights(w: np.ndarray, wfrac: np.ndarray, bits: int, up: np.ndarray | None = None) -> np.ndarray:
    """Weights (in, units) as words at their blocks' formats: round half up, saturate."""
    q = np.floor(np.asarray(w, np.float64) * weight_scale(wfrac, up, np.shape(w)) + 0.5)
    return np.clip(q, -(1 << (bits - 1)), (1 << (bits - 1)) - 1).astype(np.int64)


def layer_words(
    wq: np.ndarray,
    wfrac: np.ndarray,
    b: np.ndarray,
    in_fmt: QFormat,
    out_frac: int,
    up: np.ndarray | None = None,
    block: int = 0,
) -> QLayer:
    """A `QLayer` from weight words and float biases; int64 accumulators where int32 could overflow."""
    bq = np.floor(np.asarray(b, np.float64) * np.exp2((wfrac + in_fmt.frac).astype(np.float64)) + 0.5)
    wide = np.asarray(wq, np.int64) if up is None else np.left_shift(np.asarray(wq, np.int64), up)
    worst = worst_sum(wide, -in_fmt.lo) + np.abs(bq)
    if np.any(worst >= ACC64_LIMIT):
        raise UsageError("a layer's worst-case sum does not fit a 64-bit accumulator; weights out of range")
    shift = wfrac + in_fmt.frac - out_frac
    if np.any(np.abs(shift) > 40):
        raise UsageError(f"a layer needs a shift of {int(np.max(np.abs(shift)))} bits; weights out of range")
    if up is not None and not np.any(up):
        up, block = None, 0
    acc64 = bool(np.any(worst >= ACC32_LIMIT))
    return QLayer(np.asarray(wq, np.int64), wfrac, bq.astype(np.int64), shift, acc64, up, block)


def _qlayer(w: np.ndarray, b: np.ndarray, bits: int, in_fmt: QFormat, out_frac: int, block: int) -> QLayer:
    """Formats as fine as the weights allow (per block), each weight rounded to the nearest word."""
    wfrac, up = block_formats(w, bits, block)
    return layer_words(round_weights(w, wfrac, bits, up), wfrac, b, in_fmt, out_frac, up, block)


def weight_block(wbits: int) -> int:
    """Inputs per weight block at ``wbits``: `BLOCK` below `BLOCK_BELOW` bits, else one block per unit."""
    return BLOCK if wbits < BLOCK_BELOW else 0


@dataclass
class QuantMLP(WordInverse):
    """An MLP inverse in words; ``run`` is the bit-exact reference of the generated C.

    ``wbits``: weights; ``abits``: hidden activations; ``io_bits``: input, output and their
    standardised forms.
    """

    wbits: int
    abits: int
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
    pairs: list = field(default_factory=list)  # the device's I/Q pairs, with an envelope
    peak_q: int = 0  # its peak as a drive word (`peak_word`); 0: no envelope
    shaped: bool = False  # the last two hidden layers' words chosen by error feedback (`shaping`)

    def activation(self, k: int, a: np.ndarray) -> np.ndarray:
        """Hidden layer k's output words for its input words a."""
        if self.shaped and k == len(self.hidden) - 1:
            return shaped_words(self.table_words(k, a), self.out.wide, self.shape_shifts, self.fmt_h)
        layer = self.hidden[k]
        near = tanh_q(tanh_input(layer.acc(a), layer.shift), self.fmt_h)
        if self.shaped and k == len(self.hidden) - 2:  # through the last layer's tanh' at `near`
            last = self.hidden[-1]
            sens = sensitivities(self.table_words(k + 1, near), last.wide, self.out.wide, *self.probe_shifts)
            return jacobian_words(self.table_words(k, a), sens, self.fmt_h)
        return near

    def table_words(self, k: int, a: np.ndarray) -> np.ndarray:
        """Hidden layer k's tanh at the table's own precision (Q0.15), before any rounding."""
        layer = self.hidden[k]
        return tanh_q(tanh_input(layer.acc(a), layer.shift), TABLE)

    @property
    def shape_shifts(self) -> np.ndarray:
        """Per output, the power of two its running rounding error is divided by (`error_shifts`)."""
        return error_shifts(self.out.wide, self.out.wfrac, TABLE.frac - self.fmt_h.frac)

    @property
    def probe_shifts(self) -> tuple[np.ndarray, int]:
        """The penultimate layer's sensitivity scaling (`hwloop.export.shaping.probe_shifts`)."""
        last = self.hidden[-1]
        return probe_shifts(
            last.wide, last.wfrac, self.out.wide, self.out.wfrac, TABLE.frac - self.fmt_h.frac
        )

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
        return envelope_limit(np.clip(x, self.low_q, self.high_q), self.pairs, self.peak_q)

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
            n: {
                "bits": self.wbits,
                "frac_min": int((ly.wfrac - (0 if ly.up is None else ly.up.max(axis=0))).min()),
                "frac_max": int(ly.wfrac.max()),
                "block": ly.block or len(ly.w),
            }
            for n, ly in zip(names, layers, strict=True)
        }
        return out

    def to_dict(self) -> dict:
        d: dict = {"weight_bits": self.wbits, "act_bits": self.abits, "io_bits": self.io_bits}
        d |= {"bits": self.wbits, "extra": self.extra}  # "bits": what exports before act_bits wrote
        d |= {"pairs": [list(map(int, p)) for p in self.pairs], "peak_q": int(self.peak_q)}
        d["act_rounding"] = "feedback" if self.shaped else "nearest"  # of the last two hidden layers
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
            wbits=int(d.get("weight_bits", d["bits"])),
            abits=int(d.get("act_bits", d["bits"])),
            io_bits=io,
            hidden=[QLayer.from_dict(x) for x in d["hidden"]],
            skip=QLayer.from_dict(d["skip"]),
            out=None if d["out"] is None else QLayer.from_dict(d["out"]),
            extra=dict(d.get("extra") or {}),
            pairs=[tuple(p) for p in d.get("pairs", [])],
            peak_q=int(d.get("peak_q", 0)),
            shaped=d.get("act_rounding") == "feedback",
            **fmt,
            **arr,
        )


def quantize(
    mlp: FloatMLP, targets: np.ndarray, wbits: int, abits: int, io_bits: int, envelope: dict | None = None
) -> QuantMLP:
    """Words for ``mlp`` (weights rounded to nearest); ``targets`` (rows of its input) set the input
    range; ``envelope`` (device.json's: ``pairs``, ``peak``) keeps the drive's I/Q pairs within it."""
    words = input_words(targets, mlp.in_mean, mlp.in_std, io_bits)
    words |= output_words(mlp.low, mlp.high, mlp.out_mean, mlp.out_std, io_bits)
    fmt_z, fmt_zo = words["fmt_z"], words["fmt_zo"]
    fmt_h = QFormat(abits, abits - 1)
    hidden, in_fmt = [], fmt_z
    blk = weight_block(wbits)
    for w, b in mlp.hidden:
        hidden.append(_qlayer(w, b, wbits, in_fmt, TANH_IN_FRAC, blk))
        in_fmt = fmt_h
    skip = _qlayer(*mlp.skip, wbits, fmt_z, fmt_zo.frac, blk)
    out = None if mlp.out is None else _qlayer(*mlp.out, wbits, fmt_h, fmt_zo.frac, blk)
    q = QuantMLP(
        wbits=wbits,
        abits=abits,
        io_bits=io_bits,
        hidden=hidden,
        skip=skip,
        out=out,
        **words,
        pairs=[tuple(map(int, p)) for p in (envelope or {}).get("pairs", [])],
        peak_q=peak_word(float(envelope["peak"]), words["fmt_x"].frac) if envelope else 0,
        shaped=applies(abits, len(mlp.out_mean), mlp.out is not None),
    )
    log.info("MLP, %d-bit weights, %d-bit activations (io %d): %s", wbits, abits, io_bits, q.formats())
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
