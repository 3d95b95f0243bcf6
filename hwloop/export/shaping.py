"""Error-feedback rounding of the hidden activations onto the output (noise shaping).

Why: below 16-bit activations, rounding each of the last hidden layer's tanh
values to its nearest word adds errors that the output layer then sums.
Measured on the inverse of benchmarks/export.py's ``heldout_rapp_pm/0``
(2 -> 64 -> 64 -> 2) at 8 bits, those errors are -44 dB of the standardised
output, far above the -54 dB the first layer's rounding costs and the -57 dB
closed loop of the float inverse. Only the weighted sum of the errors reaches
the drive, so each unit in turn is rounded down or up, whichever leaves the
running output error (each rounding error times its output words, summed
over the units already rounded) smaller: error diffusion, in the vector form
the output layer needs (`shaped_words`). The units are ordered by falling
output-weight norm (`hwloop.export.mlp_float.order_units`), so the last,
lightest ones trim what the earlier ones left: -73 dB on the same inverse.

The layer before it is rounded the same way through each unit's sensitivity
of the output (`jacobian_words`): tanh' of the last layer, probed per sample
by running it once at the nearest words, times the output words. With both,
the drive's error at 16-bit weights and 8-bit activations is -68 dB of its
power, where nearest rounding gives -39. Every activation is still a word of
the activation width; only the choice between the two nearest words changes.

The running errors are held in int64 as exact integers, divided (truncating,
as C99's ``/`` does) by powers of two fixed by the words (`error_shifts`,
`probe_shifts`) that put every output on one scale and keep sums of squares
within int64. Ties round down. These functions are the reference the
generated C (`shape_c`, `jacobian_c`) and the trainable model
(`hwloop.export.qat_model`) match bit for bit.
"""

from __future__ import annotations

import numpy as np

from hwloop.export.fixed import TANH_OUT_FRAC, QFormat

TABLE = QFormat(16, TANH_OUT_FRAC)  # the tanh table's own words: what is rounded
ERROR_BITS = 29  # each output's scaled error stays below 2^29: squares below 2^58
MAX_OUTPUTS = 16  # sums of that many squares stay below 2^62
SHAPED_UP_TO = 10  # activation bits; at 12 nearest rounding costs 0.1 dB (docs/BENCHMARKS.md, "Exports")
G_BITS = 24  # the probe's per-unit sensitivities stay below 2^24


def applies(abits: int, out_dim: int, has_out: bool) -> bool:
    """Whether an MLP with these widths shapes its rounding: activations of at most
    `SHAPED_UP_TO` bits, an output layer, and few enough outputs for int64 sums of squares."""
    return has_out and abits <= SHAPED_UP_TO and out_dim <= MAX_OUTPUTS


def _bit_length(v: np.ndarray) -> np.ndarray:
    return np.array([int(x).bit_length() for x in np.ravel(v)], np.int64).reshape(np.shape(v))


def error_shifts(wide: np.ndarray, wfrac: np.ndarray, step_bits: int) -> np.ndarray:
    """Per output, the power of two its running error is divided by.

    ``wide``: the output words at the accumulator's scale (hidden units, outputs); ``wfrac``:
    each output's weight format; ``step_bits``: table LSBs per activation word. An output's
    error is at most the sum of its words' magnitudes times 2^step_bits; dividing by
    2^(wfrac - c), one c for all, puts every output on the scale 2^-c of the standardised
    output, with c as fine as keeps each below 2^`ERROR_BITS`.
    """
    bound = np.sum(np.abs(np.asarray(wide, np.int64)), axis=0) << step_bits
    wfrac = np.asarray(wfrac, np.int64)
    c = int(min(wfrac.min(), np.min(wfrac + ERROR_BITS - _bit_length(bound))))
    return wfrac - c


def shaped_words(y: np.ndarray, wide: np.ndarray, shifts: np.ndarray, fmt: QFormat) -> np.ndarray:
    """Activation words of ``fmt`` for table words ``y`` (rows, units): each unit, in order,
    rounded down or up to whichever leaves the smaller scaled output error."""
    wide = np.asarray(wide, np.int64)
    div = np.left_shift(np.int64(1), np.asarray(shifts, np.int64))
    return _greedy(y, fmt, lambda j: wide[j], div)


def probe_shifts(
    last_wide: np.ndarray, last_frac: np.ndarray, out_wide: np.ndarray, out_frac: np.ndarray, step_bits: int
) -> tuple[np.ndarray, int]:
    """(gshift (units, outputs), sshift): the powers of two the penultimate layer's sensitivities
    are divided by, so that they share one scale and their running error fits `ERROR_BITS`.

    A sensitivity is S[j, k] = sum_m last[j, m] * g[m, k], with g[m, k] = tanh'(unit m) times
    out[m, k]; g is divided by 2^gshift[m, k] (aligning units and outputs, and keeping g below
    2^`G_BITS`), S by 2^sshift (keeping the running error below 2^`ERROR_BITS`)."""
    last_frac, out_frac = np.asarray(last_frac, np.int64), np.asarray(out_frac, np.int64)
    aligned = (last_frac - last_frac.min())[:, None] + (out_frac - out_frac.min())[None, :]
    top = np.abs(np.asarray(out_wide, np.int64)) << TANH_OUT_FRAC
    gshift = aligned + max(0, int(_bit_length((top >> aligned).max())) - G_BITS)
    bound = np.abs(np.asarray(last_wide, np.int64)) @ (top >> gshift)
    sshift = max(0, int(_bit_length(np.max(np.sum(bound, axis=0) << step_bits))) - ERROR_BITS)
    return gshift, sshift


def sensitivities(
    y_probe: np.ndarray, last_wide: np.ndarray, out_wide: np.ndarray, gshift, sshift
) -> np.ndarray:
    """(rows, units, outputs): how each penultimate unit moves each output, from the last layer's
    table words ``y_probe`` at the nearest-rounded activations (1 - tanh^2 in Q0.15)."""
    y = np.asarray(y_probe, np.int64)
    d = (1 << TANH_OUT_FRAC) - ((y * y) >> TANH_OUT_FRAC)
    g = _tdiv(d[:, :, None] * np.asarray(out_wide, np.int64)[None], np.left_shift(np.int64(1), gshift))
    return _tdiv(np.einsum("jm,nmk->njk", np.asarray(last_wide, np.int64), g), np.int64(1) << sshift)


def jacobian_words(y: np.ndarray, sens: np.ndarray, fmt: QFormat) -> np.ndarray:
    """Activation words of ``fmt`` for table words ``y`` (rows, units): each unit, in order,
    rounded to whichever leaves the smaller output error through its sensitivities ``sens``."""
    return _greedy(y, fmt, lambda j: sens[:, j])


def _greedy(y: np.ndarray, fmt: QFormat, weight, div: np.ndarray | None = None) -> np.ndarray:
    """The one rounding loop of both layers: unit j of table words ``y`` goes down or up to the word
    of ``fmt`` that leaves the smaller running output error, its rounding error times ``weight(j)``
    (outputs, or rows x outputs) added to the units' before it; the cost is that error's square
    sum, each output divided by ``div`` first (truncated, as C divides) where given."""
    y = np.asarray(y, np.int64)
    s = TANH_OUT_FRAC - fmt.frac
    lo = np.clip(np.floor_divide(y, 1 << s), fmt.lo, fmt.hi)
    hi = np.clip(lo + 1, fmt.lo, fmt.hi)
    out = np.empty_like(lo)
    err = np.int64(0)
    for j in range(y.shape[1]):
        w = weight(j)
        down = err + ((lo[:, j] << s) - y[:, j])[:, None] * w
        up = err + ((hi[:, j] << s) - y[:, j])[:, None] * w
        scaled = (down, up) if div is None else (_tdiv(down, div), _tdiv(up, div))
        take_up = np.sum(scaled[1] ** 2, axis=1) < np.sum(scaled[0] ** 2, axis=1)
        out[:, j] = np.where(take_up, hi[:, j], lo[:, j])
        err = np.where(take_up[:, None], up, down)
    return out


def _tdiv(a: np.ndarray, d: np.ndarray) -> np.ndarray:
    """a / d truncated toward zero, as C99 divides integers."""
    return np.sign(a) * (np.abs(a) // d)


def _wide_c(table_name: str, unit: str, inp: str, read: str, block: int) -> str:
    """A C expression: the word of ``table_name[unit][inp]`` at its accumulator's scale (int64)."""
    text = f"(int64_t){read}({table_name}_W[{unit}][{inp}])"
    if block:
        text += f" * ((int64_t)1 << HWL_R8({table_name}_UP[{unit}][{inp} / {block}]))"
    return text


def _greedy_c(h: str, y: str, units: int, out_dim: int, fmt: QFormat, weight: str, scaled: str) -> str:
    """C99: each unit j of ``y`` (table words) rounded into ``h``, down or up, whichever leaves the
    smaller sum of squares of the running error; ``weight`` sets int64 w (unit j, output k),
    ``scaled`` is the error term squared (of ``down[k]`` / ``up[k]``, as ``E``)."""
    s = TANH_OUT_FRAC - fmt.frac
    sq_down, sq_up = scaled.replace("E", "down[k]"), scaled.replace("E", "up[k]")
    return (
        f"    {{ int64_t err[{out_dim}] = {{0}}, down[{out_dim}], up[{out_dim}];\n"
        f"    for (int j = 0; j < {units}; j++) {{\n"
        f"        int32_t lo = (int32_t)(({y}[j] + 32768) >> {s}) - {32768 >> s};  /* floor(y / 2^{s}) */\n"
        f"        lo = (int32_t)hwl_sat(lo, {fmt.lo}, {fmt.hi});\n"
        f"        int32_t hi = (int32_t)hwl_sat(lo + 1, {fmt.lo}, {fmt.hi});\n"
        f"        int64_t e_lo = (int64_t)lo * {1 << s} - {y}[j], e_hi = (int64_t)hi * {1 << s} - {y}[j];\n"
        "        int64_t c_lo = 0, c_hi = 0;\n"
        f"        for (int k = 0; k < {out_dim}; k++) {{\n"
        f"{weight}"
        "            down[k] = err[k] + w * e_lo;\n"
        "            up[k] = err[k] + w * e_hi;\n"
        f"            int64_t a = {sq_down}, b = {sq_up};\n"
        "            c_lo += a * a;\n"
        "            c_hi += b * b;\n"
        "        }\n"
        "        int take_up = c_hi < c_lo;\n"
        f"        for (int k = 0; k < {out_dim}; k++) err[k] = take_up ? up[k] : down[k];\n"
        f"        {h}[j] = take_up ? hi : lo;\n"
        "    } }\n"
    )


def shape_c(
    name: str, units: int, out_dim: int, fmt: QFormat, shifts: np.ndarray, read: str, block: int
) -> str:
    """C99 statements: the table words ``y[units]`` -> activation words ``{name}[units]``, by the
    output words OUT_W (read by the macro ``read``; shifted by OUT_UP per block of ``block``
    inputs when ``block``)."""
    divs = ", ".join(f"INT64_C({1 << int(r)})" for r in shifts)
    weight = f"            int64_t w = {_wide_c('OUT', 'k', 'j', read, block)};\n"
    return f"    static const int64_t shape_div[{out_dim}] = {{{divs}}};\n" + _greedy_c(
        name, "y", units, out_dim, fmt, weight, "E / shape_div[k]"
    )


def jacobian_c(
    h: str,
    y: str,
    last: str,
    sizes: tuple[int, int, int],
    fmt: QFormat,
    shifts: tuple,
    reads: tuple[str, str],
    blocks: tuple[int, int],
) -> str:
    """C99 statements: the penultimate layer's table words ``y`` -> its activation words ``h``
    (which hold the nearest words on entry), through the sensitivities probed at those words.

    ``last``: the last hidden layer's table prefix; ``sizes``: (penultimate units, last units,
    outputs); ``shifts``: `probe_shifts`; ``reads``: the flash-read macros of the weights and of
    the last layer's biases; ``blocks``: (the last layer's block, the output's)."""
    units, units_last, out_dim = sizes
    gshift, sshift = shifts
    read, bias_read = reads
    rows = ", ".join("{" + ", ".join(str(int(v)) for v in row) + "}" for row in np.asarray(gshift))
    w_mi, w_mj = _wide_c(last, "m", "i", read, blocks[0]), _wide_c(last, "m", "j", read, blocks[0])
    w_out = _wide_c("OUT", "k", "m", read, blocks[1])
    weight = (
        "            int64_t w = 0;  /* the output's sensitivity to unit j */\n"
        f"            for (int m = 0; m < {units_last}; m++) w += {w_mj} * g[m][k];\n"
        f"            w /= INT64_C({1 << int(sshift)});\n"
    )
    return (
        f"    static const int8_t gshift[{units_last}][{out_dim}] = {{{rows}}};\n"
        f"    int32_t g[{units_last}][{out_dim}];  /* tanh' of the last layer at the nearest words */\n"
        f"    for (int m = 0; m < {units_last}; m++) {{\n"
        f"        int64_t acc = {bias_read}({last}_B[m]);\n"
        f"        for (int i = 0; i < {units}; i++) acc += {w_mi} * {h}[i];\n"
        f"        int64_t t = hwl_tanh(acc, HWL_R8({last}_S[m]), {TANH_OUT_FRAC}, {TABLE.hi});\n"
        f"        int64_t d = {1 << TANH_OUT_FRAC} - ((t * t) >> {TANH_OUT_FRAC});\n"
        f"        for (int k = 0; k < {out_dim}; k++)\n"
        f"            g[m][k] = (int32_t)((d * {w_out}) / ((int64_t)1 << gshift[m][k]));\n"
        "    }\n" + _greedy_c(h, y, units, out_dim, fmt, weight, "E")
    )
