"""The C export's arithmetic as a trainable Keras model: what quantisation-aware fine-tuning trains.

`FixedPointMLP` holds float shadow weights and computes, in its forward pass,
exactly the words `hwloop.export.mlp.QuantMLP.run` computes from those
weights rounded to their formats: targets rounded to the input words,
standardised and saturated, every weight rounded half up to its per-unit
format and saturated to its width, int32/int64 sums (exact in float64),
every shift rounded half up, the tanh table with its interpolation, each
activation saturated to its width (at 10 bits or fewer, the last two layers'
words chosen by error feedback exactly as `hwloop.export.shaping` chooses
them; backward, tanh's derivative), the skip and MLP parts rounded to the
output sum's format, the drive saturated and clipped. The drive it returns
is the export's drive, bit for bit (tests/test_export_qat.py).

The backward pass is straight-through: a rounding passes its gradient on
unchanged, a saturation passes it only inside its range, and the tanh table
passes tanh's own derivative (zero where the table is clamped at +-8). The
Q formats are those of the export being tuned and stay fixed; only the
weights and biases move, and `to_quant` rounds them into a `QuantMLP` with
the same formats.
"""

from __future__ import annotations

import copy

import keras
import numpy as np
import tensorflow as tf

from hwloop.export.fixed import TANH_IN_FRAC, TANH_LIMIT, TANH_OUT_FRAC, TANH_STEP_BITS, QFormat, tanh_table
from hwloop.export.mlp import WIDE, QLayer, QuantMLP, layer_words, weight_scale
from hwloop.export.shaping import ERROR_BITS, G_BITS, TABLE

F64 = tf.float64
_LIMIT = float(TANH_LIMIT << TANH_IN_FRAC)
_STEP = float(1 << (TANH_IN_FRAC - TANH_STEP_BITS))


def _c(v) -> tf.Tensor:
    return tf.constant(np.asarray(v, np.float64), F64)


@tf.custom_gradient
def round_sat(v: tf.Tensor, lo: tf.Tensor, hi: tf.Tensor):
    """clip(floor(v + 1/2), lo, hi); gradient 1 inside [lo, hi], 0 where it saturates."""
    out = tf.clip_by_value(tf.floor(v + 0.5), lo, hi)

    def grad(up: tf.Tensor):
        inside = tf.cast((v >= lo - 0.5) & (v <= hi + 0.5), F64)
        return up * inside, None, None

    return out, grad


def requant(v: tf.Tensor, shift: np.ndarray | int, fmt: QFormat) -> tf.Tensor:
    """`hwloop.export.fixed.requant` on words held in float64 (exact below 2^52)."""
    return round_sat(v * _c(np.exp2(-np.asarray(shift, np.float64))), _c(fmt.lo), _c(fmt.hi))


def _tanh_words(acc: tf.Tensor, shift: np.ndarray, fmt: QFormat) -> tf.Tensor:
    """`tanh_q(tanh_input(acc, shift), fmt)` on float64 words (forward only)."""
    table = _c(tanh_table())
    u = tf.floor(acc * _c(np.exp2(-np.asarray(shift, np.float64))) + 0.5)
    a = tf.minimum(tf.abs(u), _LIMIT)
    i = tf.floor(a / _STEP)
    r = a - i * _STEP
    idx = tf.cast(i, tf.int32)
    t0, t1 = tf.gather(table, idx), tf.gather(table, idx + 1)
    y = t0 + tf.floor(((t1 - t0) * r + _STEP / 2) / _STEP)
    down = TANH_OUT_FRAC - fmt.frac
    if down > 0:
        y = tf.floor((y + float(1 << (down - 1))) / float(1 << down))
    y = tf.minimum(y, float(fmt.hi))
    return tf.where(u < 0, -y, y)


def tanh_fixed(acc: tf.Tensor, shift: np.ndarray, fmt: QFormat) -> tf.Tensor:
    """The export's tanh words of an accumulator; backward, tanh' (0 beyond the table's +-8)."""

    @tf.custom_gradient
    def op(a: tf.Tensor):
        out = _tanh_words(a, shift, fmt)

        def grad(up: tf.Tensor):
            scale = _c(np.exp2(-np.asarray(shift, np.float64) - TANH_IN_FRAC))  # d u_value / d acc
            u = a * scale
            d = (1.0 - tf.square(tf.tanh(u))) * scale * float(1 << fmt.frac)
            return up * tf.where(tf.abs(u) < TANH_LIMIT, d, tf.zeros_like(d))

        return out, grad

    return op(acc)


def envelope_words(x: tf.Tensor, pairs: list, peak: int) -> tf.Tensor:
    """`hwloop.export.fixed.envelope_limit` on drive words held in float64 (exact)."""
    cols = tf.unstack(x, axis=1)
    p = float(peak)
    for i, j in pairs:
        a, b = cols[i], cols[j]
        m2 = a * a + b * b
        r = tf.floor(tf.sqrt(m2))
        r = tf.where(r * r > m2, r - 1.0, r)
        r = tf.where((r + 1.0) * (r + 1.0) <= m2, r + 1.0, r)
        mag = tf.maximum(r, 1.0)
        half = tf.floor(mag / 2.0)

        def div(v: tf.Tensor, mag: tf.Tensor = mag, half: tf.Tensor = half) -> tf.Tensor:
            return tf.sign(v) * tf.floor((tf.abs(v) * p + half) / mag)

        over = m2 > p * p
        cols[i], cols[j] = tf.where(over, div(a), a), tf.where(over, div(b), b)
    return tf.stack(cols, axis=1)


def _bit_length(v: tf.Tensor) -> tf.Tensor:
    """Bits of non-negative int64 ``v``, exactly (a count of the powers of two it reaches)."""
    powers = tf.constant([1 << i for i in range(63)], tf.int64)
    return tf.reduce_sum(tf.cast(v[..., None] >= powers, tf.int64), axis=-1)


def shaped_words(y: tf.Tensor, wide: tf.Tensor, wfrac: np.ndarray, fmt: QFormat) -> tf.Tensor:
    """`hwloop.export.shaping.shaped_words` (and its `error_shifts`) on int64 tensors: table words
    ``y`` (rows, units) and output words ``wide`` (units, outputs) -> activation words."""
    s = TABLE.frac - fmt.frac
    bound = tf.reduce_sum(tf.abs(wide), axis=0) * (1 << s)
    wf = tf.constant(np.asarray(wfrac, np.int64))
    c = tf.minimum(tf.reduce_min(wf), tf.reduce_min(wf + ERROR_BITS - _bit_length(bound)))
    div = tf.bitwise.left_shift(tf.ones_like(wf), wf - c)
    return _greedy(y, fmt, lambda j: wide[j][None, :], div)


def _bit_shift_max(v: tf.Tensor, keep: int) -> tf.Tensor:
    """max(0, bit length of max(v) - keep), as int64."""
    return tf.maximum(tf.constant(0, tf.int64), _bit_length(tf.reduce_max(v)) - keep)


def jacobian_words(
    y: tf.Tensor, y_probe: tf.Tensor, last: tf.Tensor, out: tf.Tensor, last_frac, out_frac, fmt: QFormat
) -> tf.Tensor:
    """`hwloop.export.shaping.jacobian_words` with its `sensitivities` and `probe_shifts`, on
    int64 tensors: the penultimate layer's table words ``y``, the last layer's table words
    ``y_probe`` at the nearest words, the wide words ``last`` and ``out`` -> activation words."""
    s = TABLE.frac - fmt.frac
    last_frac, out_frac = np.asarray(last_frac, np.int64), np.asarray(out_frac, np.int64)
    aligned = tf.constant((last_frac - last_frac.min())[:, None] + (out_frac - out_frac.min())[None, :])
    top = tf.abs(out) * (1 << TABLE.frac)
    gshift = aligned + _bit_shift_max(tf.bitwise.right_shift(top, aligned), G_BITS)
    gtop = tf.cast(tf.bitwise.right_shift(top, gshift), F64)
    bound = tf.cast(tf.matmul(tf.abs(tf.cast(last, F64)), gtop), tf.int64)  # exact: below 2^53
    sshift = _bit_shift_max(tf.reduce_sum(bound, axis=0) * (1 << s), ERROR_BITS)
    d = (1 << TABLE.frac) - tf.bitwise.right_shift(y_probe * y_probe, TABLE.frac)
    g = tf.truncatediv(d[:, :, None] * out[None], tf.bitwise.left_shift(tf.ones_like(gshift), gshift))
    sens = tf.einsum("jm,nmk->njk", tf.cast(last, F64), tf.cast(g, F64))  # exact: below 2^53
    sens = tf.truncatediv(tf.cast(sens, tf.int64), tf.bitwise.left_shift(tf.constant(1, tf.int64), sshift))
    return _greedy(y, fmt, lambda j: sens[:, j])


def _greedy(y: tf.Tensor, fmt: QFormat, weight, div: tf.Tensor | None = None) -> tf.Tensor:
    """`hwloop.export.shaping._greedy` on int64 tensors (the one rounding loop of both layers)."""
    s = TABLE.frac - fmt.frac
    lo = tf.clip_by_value(tf.math.floordiv(y, 1 << s), fmt.lo, fmt.hi)
    hi = tf.clip_by_value(lo + 1, fmt.lo, fmt.hi)
    err = tf.constant(0, tf.int64)
    cols = []
    for j in range(y.shape[1]):
        w = weight(j)
        down = err + (lo[:, j : j + 1] * (1 << s) - y[:, j : j + 1]) * w
        up = err + (hi[:, j : j + 1] * (1 << s) - y[:, j : j + 1]) * w
        scaled = (down, up) if div is None else (tf.truncatediv(down, div), tf.truncatediv(up, div))
        take_up = tf.reduce_sum(tf.square(scaled[1]), axis=1) < tf.reduce_sum(tf.square(scaled[0]), axis=1)
        cols.append(tf.where(take_up, hi[:, j], lo[:, j]))
        err = tf.where(take_up[:, None], up, down)
    return tf.stack(cols, axis=1)


class FixedPointMLP(keras.Model):
    """A `QuantMLP`'s datapath with trainable float weights: targets (n, in) -> the export's drive."""

    def __init__(self, q: QuantMLP, masks: list[np.ndarray | None] | None = None, **kwargs: object) -> None:
        """``masks``: per layer (hidden..., skip, out), 0/1 where a connection exists (a masked model's
        structural zeros stay zero); None: every connection."""
        super().__init__(**kwargs)
        self.q = copy.deepcopy(q)
        layers = [*q.hidden, q.skip] + ([q.out] if q.out is not None else [])
        names = [f"hidden_{i}" for i in range(len(q.hidden))] + ["skip"] + (["out"] if q.out else [])
        in_fracs = [q.fmt_z.frac] + [q.fmt_h.frac] * (len(q.hidden) - 1) + [q.fmt_z.frac, q.fmt_h.frac]
        self.specs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
        self.kernels, self.biases = [], []
        masks = masks or [None] * len(layers)
        for name, ly, in_frac, m in zip(names, layers, in_fracs, masks, strict=False):
            wscale = weight_scale(ly.wfrac, ly.up, ly.w.shape)  # words per unit of weight, per weight
            upscale = np.ones(ly.w.shape) if ly.up is None else np.exp2(ly.up.astype(np.float64))
            bscale = np.exp2((ly.wfrac + in_frac).astype(np.float64))
            mask = np.ones(ly.w.shape) if m is None else np.asarray(m, np.float64)
            self.specs.append((name, wscale, bscale, mask * upscale))
            self.kernels.append(
                self.add_weight(
                    shape=ly.w.shape,
                    initializer=keras.initializers.Constant(ly.w / wscale),
                    name=f"{name}_kernel",
                    dtype="float64",
                )
            )
            self.biases.append(
                self.add_weight(
                    shape=ly.bias.shape,
                    initializer=keras.initializers.Constant(ly.bias / bscale),
                    name=f"{name}_bias",
                    dtype="float64",
                )
            )

    def _words(self, k: int) -> tuple[tf.Tensor, tf.Tensor]:
        """Layer k's weight words at the accumulator's scale (w << up) and bias words, both
        straight-through; masked zeros kept."""
        _, wscale, bscale, mask_up = self.specs[k]
        w_lo, w_hi = -(1 << (self.q.wbits - 1)), (1 << (self.q.wbits - 1)) - 1
        w = round_sat(self.kernels[k] * _c(wscale), _c(w_lo), _c(w_hi)) * _c(mask_up)
        b = round_sat(self.biases[k] * _c(bscale), _c(-(2.0**62)), _c(2.0**62))
        return w, b

    def _layer(self, k: int) -> QLayer:
        return [*self.q.hidden, self.q.skip, self.q.out][k]

    def call(self, t, training: bool = False):  # type: ignore[override]
        q = self.q
        tw = tf.cast(t, F64) * float(2.0**q.fmt_t.frac)
        tw = tf.stop_gradient(tf.clip_by_value(tf.floor(tw + 0.5), q.fmt_t.lo, q.fmt_t.hi))
        d = tf.clip_by_value(tw - _c(q.mean_t), q.fmt_t.lo, q.fmt_t.hi)
        z = tf.stop_gradient(requant(d * _c(q.inv_std), q.z_shift, q.fmt_z))
        h = z
        nh = len(q.hidden)
        for k in range(nh):
            w, b = self._words(k)
            acc = tf.matmul(h, w) + b
            h = tanh_fixed(acc, self._layer(k).shift, q.fmt_h)
            if q.shaped and k >= nh - 2:  # forward: the error-feedback words; backward: tanh's
                h = h + tf.stop_gradient(self._fed(k, acc, h) - h)
        w, b = self._words(nh)
        zo = requant(tf.matmul(z, w) + b, q.skip.shift, WIDE)
        if q.out is not None:
            w, b = self._words(nh + 1)
            zo = zo + requant(tf.matmul(h, w) + b, q.out.shift, WIDE)
        zo = round_sat(zo, _c(q.fmt_zo.lo), _c(q.fmt_zo.hi))
        v = requant(zo * _c(q.std_x), q.x_shift, WIDE) + _c(q.mean_x)
        x = round_sat(v, _c(q.fmt_x.lo), _c(q.fmt_x.hi))
        x = round_sat(x, _c(q.low_q), _c(q.high_q))
        if q.peak_q:  # the envelope's limit, exactly; straight-through backward (it rarely acts)
            x = x + tf.stop_gradient(envelope_words(x, q.pairs, q.peak_q) - x)
        return tf.cast(x * float(2.0**-q.fmt_x.frac), tf.float32)

    def _fed(self, k: int, acc: tf.Tensor, near: tf.Tensor) -> tf.Tensor:
        """Hidden layer k's error-feedback words (the last layer's or the one before it)."""
        q, nh = self.q, len(self.q.hidden)
        y = tf.cast(_tanh_words(acc, self._layer(k).shift, TABLE), tf.int64)
        out = tf.cast(self._words(nh + 1)[0], tf.int64)
        if k == nh - 1:
            return tf.cast(shaped_words(y, out, q.out.wfrac, q.fmt_h), F64)
        w, b = self._words(nh - 1)
        probe = tf.cast(_tanh_words(tf.matmul(near, w) + b, q.hidden[-1].shift, TABLE), tf.int64)
        words = jacobian_words(y, probe, tf.cast(w, tf.int64), out, q.hidden[-1].wfrac, q.out.wfrac, q.fmt_h)
        return tf.cast(words, F64)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.q.out_dim)

    def to_quant(self) -> QuantMLP:
        """The words the weights round to, in the export's formats (accumulator widths re-checked)."""
        q = copy.deepcopy(self.q)
        fmts = [q.fmt_z] + [q.fmt_h] * (len(q.hidden) - 1) + [q.fmt_z, q.fmt_h]
        outs = [TANH_IN_FRAC] * len(q.hidden) + [q.fmt_zo.frac, q.fmt_zo.frac]
        built = []
        for k in range(len(self.specs)):
            w, b = (np.asarray(a, np.float64) for a in self._words(k))
            ly = self._layer(k)
            words = np.rint(w / (1.0 if ly.up is None else np.exp2(ly.up.astype(np.float64)))).astype(
                np.int64
            )
            bias = b / np.exp2((ly.wfrac + fmts[k].frac).astype(np.float64))  # back to a float bias
            built.append(layer_words(words, ly.wfrac, bias, fmts[k], outs[k], ly.up, ly.block))
        q.hidden = built[: len(q.hidden)]
        q.skip = built[len(q.hidden)]
        q.out = built[len(q.hidden) + 1] if q.out is not None else None
        return q
