"""Post-training quantisation of the MLP inverse: layer-wise reconstruction with error feedback.

Rounding every weight to its nearest word is fine at 16 bits and costs
several dB at 8. Two standard remedies, applied layer by layer from the
input on, using the run's own targets as calibration data:

1. Refit: the layer's float weights are refitted by ridge least squares so
   that, fed with the *quantised* activations of the layers before it, it
   reproduces the float model's pre-activations (for the output stage: the
   float model's standardised output, skip path and MLP together). Errors of
   earlier layers are compensated instead of accumulated.
2. Rounding with error feedback (GPTQ, Frantar et al., 2023): weights are
   rounded one input at a time (largest activation energy first), and the
   rounding error of each is pushed
   onto the inputs not yet rounded, weighted by the inverse Hessian of the
   layer's least-squares loss, so the errors cancel in the layer's output
   rather than add up.

Biases are then set to the mean residual (bias correction) and stored at
accumulator precision. Layers with exactly-zero weights (a `MaskedDense`
model) keep plain rounding, so a masked connection stays exactly zero.
The result is an ordinary `hwloop.export.mlp.QuantMLP`: the datapath and
its C code do not change, only the values of the words.
"""

from __future__ import annotations

import logging

import numpy as np

from hwloop.export.fixed import TANH_IN_FRAC
from hwloop.export.mlp import (
    QuantMLP,
    block_formats,
    layer_words,
    quantize,
    round_weights,
    weight_block,
    weight_scale,
)
from hwloop.export.mlp_float import FloatMLP
from hwloop.export.shaping import TABLE

log = logging.getLogger(__name__)

CALIBRATION_ROWS = 8000
RIDGE = 1e-3  # relative to the mean diagonal of the Gram matrix


def _gram(a: np.ndarray) -> np.ndarray:
    h = a.T @ a / len(a)
    return h + RIDGE * float(np.mean(np.diag(h)) or 1.0) * np.eye(len(h))


def refit(a: np.ndarray, target: np.ndarray, w0: np.ndarray, b0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge least squares of ``target`` on [a, 1], shrunk towards the float weights (w0, b0)."""
    a1 = np.concatenate([a, np.ones((len(a), 1))], axis=1)
    h = _gram(a1)
    prior = np.concatenate([w0, b0[None, :]])
    rhs = a1.T @ target / len(a) + (h - a1.T @ a1 / len(a)) @ prior
    sol = np.linalg.solve(h, rhs)
    return sol[:-1], sol[-1]


def gptq(
    w: np.ndarray, a: np.ndarray, wfrac: np.ndarray, bits: int, up: np.ndarray | None = None
) -> np.ndarray:
    """Weight words for ``w`` (in, units), rounded input by input with error feedback over inputs ``a``."""
    return _gptq_mixed(w, a, weight_scale(wfrac, up, w.shape), bits)


def _quantise_layer(a_q: np.ndarray, target: np.ndarray, w: np.ndarray, b: np.ndarray, bits: int, block: int):
    """(words, wfrac, up, float bias) reproducing ``target`` from quantised inputs ``a_q`` (floats)."""
    if np.any(w == 0.0):  # a masked layer: plain rounding keeps its zeros
        wfrac, up = block_formats(w, bits, block)
        return round_weights(w, wfrac, bits, up), wfrac, up, b
    w_fit, _ = refit(a_q, target, w, b)
    wfrac, up = block_formats(w_fit, bits, block)
    words = gptq(w_fit, a_q, wfrac, bits, up)
    bias = np.mean(target - a_q @ (words / weight_scale(wfrac, up, w.shape)), axis=0)
    return words, wfrac, up, bias


def reconstruct(
    mlp: FloatMLP, feats: np.ndarray, wbits: int, abits: int, io_bits: int, envelope: dict | None = None
) -> QuantMLP:
    """`quantize`'s formats, with every layer's words chosen by refit and error-feedback rounding."""
    q = quantize(mlp, feats, wbits, abits, io_bits, envelope)
    bits, blk = wbits, weight_block(wbits)
    rng = np.random.default_rng(0)
    rows = feats[rng.choice(len(feats), size=min(CALIBRATION_ROWS, len(feats)), replace=False)]
    z_f, acts_f, s_f, o_f = mlp.parts(rows)
    z_w = q.standardised(q.fmt_t.quantize(rows))
    a_w, a_fmt, a_float = z_w, q.fmt_z, z_f
    for k, (w, b) in enumerate(mlp.hidden):
        target = a_float @ w + b  # the float model's pre-activation
        words, wfrac, up, bias = _quantise_layer(a_fmt.value(a_w), target, w, b, bits, blk)
        q.hidden[k] = layer_words(words, wfrac, bias, a_fmt, TANH_IN_FRAC, up, blk)
        last = k == len(mlp.hidden) - 1
        if last and q.shaped:  # its words follow the output words: fit those to the table's tanh
            a_w, a_fmt = q.table_words(k, a_w), TABLE
        else:
            a_w, a_fmt = q.activation(k, a_w), q.fmt_h
        a_float = acts_f[k]
    target = s_f + o_f
    if mlp.out is None:
        words, wfrac, up, bias = _quantise_layer(q.fmt_z.value(z_w), target, *mlp.skip, bits, blk)
        q.skip = layer_words(words, wfrac, bias, q.fmt_z, q.fmt_zo.frac, up, blk)
        return q
    w = np.concatenate([mlp.skip[0], mlp.out[0]])
    if np.any(w == 0.0):
        return q  # masked: `quantize`'s plain rounding
    _output_stage(q, mlp, z_w, a_fmt.value(a_w), target, blk)
    log.info("MLP reconstructed with %d-bit weights from %d calibration rows", bits, len(rows))
    return q


def _output_stage(
    q: QuantMLP, mlp: FloatMLP, z_w: np.ndarray, h: np.ndarray, target: np.ndarray, blk: int
) -> None:
    """Skip and MLP output fitted as one linear map of [z, h] (h: the last hidden layer's values)
    to ``target``, each keeping its own word formats: refit, then error-feedback rounding."""
    bits, a_fmt = q.wbits, q.fmt_h
    a_q = np.concatenate([q.fmt_z.value(z_w), h], axis=1)
    w = np.concatenate([mlp.skip[0], mlp.out[0]])
    nz = z_w.shape[1]
    w_fit, _ = refit(a_q, target, w, mlp.skip[1] + mlp.out[1])
    (fr_s, up_s), (fr_o, up_o) = block_formats(w_fit[:nz], bits, blk), block_formats(w_fit[nz:], bits, blk)
    scale = np.concatenate(
        [weight_scale(fr_s, up_s, (nz, w.shape[1])), weight_scale(fr_o, up_o, (len(w) - nz, w.shape[1]))]
    )
    words = _gptq_mixed(w_fit, a_q, scale, bits)
    bias = np.mean(target - a_q @ (words / scale), axis=0)
    q.skip = layer_words(words[:nz], fr_s, bias, q.fmt_z, q.fmt_zo.frac, up_s, blk)
    q.out = layer_words(words[nz:], fr_o, np.zeros_like(bias), a_fmt, q.fmt_zo.frac, up_o, blk)


def _gptq_mixed(w: np.ndarray, a: np.ndarray, scale: np.ndarray, bits: int) -> np.ndarray:
    """`gptq` where each weight has its own scale (skip and MLP rows share one output map).

    Inputs are rounded in order of falling activation energy (GPTQ's "act
    order"): the inputs that matter most are rounded first, while every other
    input is still free to absorb their error. Measured at 8 bits on sim:rapp
    and sim:saleh: closed-loop loss against float 3.04/3.11 dB in input order,
    2.35/2.66 dB in this one (benchmarks/export.py).
    """
    return gptq_gram(w, a.T @ a / len(a), scale, bits)


def gptq_gram(
    w: np.ndarray,
    gram: np.ndarray,
    scale: np.ndarray,
    bits: int,
    pinned: np.ndarray | None = None,
    lead: int = 0,
    symmetric: bool = False,
) -> np.ndarray:
    """Words for ``w`` (inputs, outputs) at per-weight ``scale``, rounded input by input in act order
    with error feedback, for the least-squares loss whose Gram matrix over the inputs is ``gram``.

    ``pinned``: words fixed in advance where non-zero (the rest absorb their error, as they absorb
    every rounding error before them); ``lead``: the first ``lead`` inputs are rounded before the
    others, whatever their energy (a linear skip beside an MLP: the MLP's units can take up the
    skip's rounding error, which the other way round it cannot); ``symmetric``: words within
    +-(2^(bits-1) - 1), as TFLite's int8 weights are."""
    energy = np.diag(gram)
    order = np.concatenate(
        [np.argsort(-energy[:lead], kind="stable"), lead + np.argsort(-energy[lead:], kind="stable")]
    )
    h = gram[np.ix_(order, order)]
    h = h + RIDGE * float(np.mean(np.diag(h)) or 1.0) * np.eye(len(h))
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper Cholesky factor of H^-1
    w = np.array(w, np.float64)[order]
    scale = np.asarray(scale, np.float64)[order]
    pin = None if pinned is None else np.asarray(pinned, np.int64)[order]
    hi = (1 << (bits - 1)) - 1
    lo = -hi if symmetric else -hi - 1
    words = np.zeros(w.shape, np.int64)
    for i in range(w.shape[0]):
        words[i] = np.clip(np.floor(w[i] * scale[i] + 0.5), lo, hi)
        if pin is not None:
            words[i] = np.where(pin[i] != 0, pin[i], words[i])
        err = (w[i] - words[i] / scale[i]) / u[i, i]
        w[i + 1 :] -= np.outer(u[i, i + 1 :], err)
    out = np.empty_like(words)
    out[order] = words
    return out
