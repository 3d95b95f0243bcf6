"""C99 source for the MLP and tapped-delay inverses in fixed point (`hwloop.export.mlp.QuantMLP`).

The generated ``PREFIX.c`` computes exactly what `QuantMLP.run` computes:
one loop nest per layer, weights stored per unit (``W[unit][input]``, in
flash on an AVR), an int32 accumulator per unit (int64 where the worst case
needs it), the shared helpers of `hwloop.export.cgen_common`. A tapped
inverse keeps its delay line in a state struct: ``PREFIX_step`` takes the
newest target sample and returns the drive for the sample ``lookahead``
steps back.
"""

from __future__ import annotations

import numpy as np

from hwloop.export.cgen_common import ISQRT_C, PREAMBLE, banner, ctype, peak_c, reader, table, tanh_c
from hwloop.export.mlp import WIDE, QLayer, QuantMLP
from hwloop.export.shaping import TABLE, jacobian_c, shape_c


def _layer_tables(name: str, ly: QLayer, bits: int) -> str:
    bias_bits = 64 if ly.acc64 else 32
    text = (
        table(f"{name}_W", ly.w.T, bits)
        + table(f"{name}_B", ly.bias, bias_bits)
        + table(f"{name}_S", ly.shift, 8)
    )
    if ly.up is not None:  # each block's exponent: its partial sum's left shift onto the unit's format
        text += table(f"{name}_UP", ly.up[:: ly.block].T, 8)
    return text


def _mac(name: str, ly: QLayer, src: str, bits: int, acc: str = "acc") -> str:
    """One unit's accumulator (unit index j) over the input array ``src``."""
    n_in = ly.w.shape[0]
    typ = "int64_t" if ly.acc64 else "int32_t"
    rd = "HWL_R64" if ly.acc64 else "HWL_R32"
    if ly.up is None:
        return (
            f"        {typ} {acc} = {rd}({name}_B[j]);\n"
            f"        for (int i = 0; i < {n_in}; i++)\n"
            f"            {acc} += (int32_t){reader(bits)}({name}_W[j][i]) * {src}[i];\n"
        )
    nb, bs = -(-n_in // ly.block), ly.block
    return (
        f"        {typ} {acc} = {rd}({name}_B[j]);\n"
        f"        for (int b = 0; b < {nb}; b++) {{\n"
        "            int32_t part = 0;\n"
        f"            for (int i = b * {bs}; i < (b + 1) * {bs} && i < {n_in}; i++)\n"
        f"                part += (int32_t){reader(bits)}({name}_W[j][i]) * {src}[i];\n"
        f"            {acc} += ({typ})part * (({typ})1 << HWL_R8({name}_UP[j][b]));\n"
        "        }\n"
    )


def source(q: QuantMLP, prefix: str, header: str, taps: int, dim: int, comment: list[str]) -> str:
    """``PREFIX.c`` for ``q``; ``taps`` > 1 makes it a tapped inverse over ``dim``-wide samples."""
    wb = q.wbits
    nf = q.in_dim
    parts = [banner(comment), f'#include "{header}"\n', PREAMBLE, tanh_c()]
    parts += [ISQRT_C, "\n"] if q.peak_q else ["\n"]
    parts += [table("MEAN_T", q.mean_t, 16), table("INV_STD", q.inv_std, 16)]
    for i, ly in enumerate(q.hidden):
        parts.append(_layer_tables(f"L{i}", ly, wb))
    parts.append(_layer_tables("SKIP", q.skip, wb))
    if q.out is not None:
        parts.append(_layer_tables("OUT", q.out, wb))
    parts += [table(n, v, 16) for n, v in (("STD_X", q.std_x), ("MEAN_X", q.mean_x))]
    parts += [table(n, v, 16) for n, v in (("LOW_X", q.low_q), ("HIGH_X", q.high_q))]
    hty = ctype(q.abits)
    body = [f"\nstatic void {prefix}_core(const int16_t *f, int16_t *x) {{\n", f"    int16_t z[{nf}];\n"]
    body.append(
        f"    for (int i = 0; i < {nf}; i++) {{\n"
        f"        int64_t d = hwl_sat((int64_t)f[i] - HWL_R16(MEAN_T[i]), {q.fmt_t.lo}, {q.fmt_t.hi});\n"
        f"        z[i] = (int16_t)hwl_requant(d * HWL_R16(INV_STD[i]), {q.z_shift},"
        f" {q.fmt_z.lo}, {q.fmt_z.hi});\n"
        "    }\n"
    )
    src = "z"
    for i, ly in enumerate(q.hidden):
        units = ly.w.shape[1]
        shaped = q.shaped and i == len(q.hidden) - 1
        probed = q.shaped and i == len(q.hidden) - 2
        body.append(f"    {hty} h{i}[{units}];\n")
        if shaped:  # the table's words first; then each rounded by error feedback onto the output
            body.append(f"    int32_t y[{units}];\n")
        if probed:
            body.append(f"    int16_t y{i}[{units}];\n")
        body.append(f"    for (int j = 0; j < {units}; j++) {{\n")
        body.append(_mac(f"L{i}", ly, src, wb))
        if probed:  # the nearest words and the table's; then each rounded through the probe's sensitivities
            body.append(
                f"        y{i}[j] = (int16_t)hwl_tanh(acc, HWL_R8(L{i}_S[j]), {TABLE.frac}, {TABLE.hi});\n"
                f"        h{i}[j] = ({hty})hwl_tanh(acc, HWL_R8(L{i}_S[j]), {q.fmt_h.frac}, {q.fmt_h.hi});\n"
                "    }\n"
            )
            last = q.hidden[-1]
            blocks = tuple(ly2.block if ly2.up is not None else 0 for ly2 in (last, q.out))
            sizes = (units, last.w.shape[1], q.out_dim)
            reads = (reader(wb), "HWL_R64" if last.acc64 else "HWL_R32")
            body.append(
                jacobian_c(f"h{i}", f"y{i}", f"L{i + 1}", sizes, q.fmt_h, q.probe_shifts, reads, blocks)
            )
        elif shaped:
            body.append(
                f"        y[j] = hwl_tanh(acc, HWL_R8(L{i}_S[j]), {TABLE.frac}, {TABLE.hi});\n    }}\n"
            )
            up = q.out.block if q.out.up is not None else 0
            body.append(shape_c(f"h{i}", units, q.out_dim, q.fmt_h, q.shape_shifts, reader(wb), up))
        else:
            body.append(
                f"        h{i}[j] = ({hty})hwl_tanh(acc, HWL_R8(L{i}_S[j]), {q.fmt_h.frac}, {q.fmt_h.hi});\n"
                "    }\n"
            )
        src = f"h{i}"
    body.append(f"    for (int j = 0; j < {q.out_dim}; j++) {{\n")
    body.append(_mac("SKIP", q.skip, "z", wb))
    body.append(f"        int64_t zo = hwl_requant(acc, HWL_R8(SKIP_S[j]), {WIDE.lo}L, {WIDE.hi}L);\n")
    if q.out is not None:
        body.append(_mac("OUT", q.out, src, wb, "acc_o"))
        body.append(f"        zo += hwl_requant(acc_o, HWL_R8(OUT_S[j]), {WIDE.lo}L, {WIDE.hi}L);\n")
    body.append(
        f"        zo = hwl_sat(zo, {q.fmt_zo.lo}, {q.fmt_zo.hi});\n"
        f"        int64_t v = hwl_requant(zo * HWL_R16(STD_X[j]), {q.x_shift}, {WIDE.lo}L, {WIDE.hi}L);\n"
        f"        v = hwl_sat(v + HWL_R16(MEAN_X[j]), {q.fmt_x.lo}, {q.fmt_x.hi});\n"
        "        x[j] = (int16_t)hwl_sat(v, HWL_R16(LOW_X[j]), HWL_R16(HIGH_X[j]));\n"
        "    }\n" + peak_c(q.pairs, q.peak_q) + "}\n"
    )
    parts += body
    if taps > 1:
        parts.append(
            f"\nvoid {prefix}_reset({prefix}_state *s) {{ memset(s, 0, sizeof *s); }}\n\n"
            f"void {prefix}_step({prefix}_state *s, const int16_t t[{dim}], int16_t x[{q.out_dim}]) {{\n"
            f"    memmove(s->line + {dim}, s->line, sizeof(int16_t) * {(taps - 1) * dim});\n"
            f"    memcpy(s->line, t, sizeof(int16_t) * {dim});\n"
            f"    {prefix}_core(s->line, x);\n}}\n"
        )
    else:
        parts.append(
            f"\nvoid {prefix}_apply(const int16_t t[{dim}], int16_t x[{q.out_dim}]) {{\n"
            f"    {prefix}_core(t, x);\n}}\n"
        )
    return "".join(parts)


def header(
    q: QuantMLP, prefix: str, family: str, taps: int, dim: int, lookahead: int, hash8: str, comment: list[str]
) -> str:
    """``PREFIX.h``: the interface, the Q formats of its words, and the hash of ``PREFIX.c``."""
    up = prefix.upper()
    guard = f"{up}_H"
    lines = [
        banner(comment),
        f"#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n\n",
        f'#define {up}_FAMILY "{family}"\n',
        f'#define {up}_HASH8 "{hash8}"  /* first 8 hex digits of the SHA-256 of {prefix}.c */\n',
        f"#define {up}_WEIGHT_BITS {q.wbits}  /* weights */\n",
        f"#define {up}_ACT_BITS {q.abits}  /* hidden activations */\n",
        f'#define {up}_ACT_ROUNDING "{"feedback" if q.shaped else "nearest"}"'
        "  /* their words: nearest, or error feedback onto the output */\n",
        f"#define {up}_IO_BITS {q.io_bits}  /* target and drive words (held in int16_t) */\n",
        f"#define {up}_IN_DIM {dim}  /* target words per sample */\n",
        f"#define {up}_OUT_DIM {q.out_dim}  /* drive words per sample */\n",
        f"#define {up}_T_FRAC {q.fmt_t.frac}  /* target = word / 2^{q.fmt_t.frac} ({q.fmt_t.name}) */\n",
        f"#define {up}_X_FRAC {q.fmt_x.frac}  /* drive = word / 2^{q.fmt_x.frac} ({q.fmt_x.name}) */\n",
        f"#define {up}_X_LOW {int(np.min(q.low_q))}\n#define {up}_X_HIGH {int(np.max(q.high_q))}\n",
        f"#define {up}_STATEFUL {int(taps > 1)}\n",
    ]
    if taps > 1:
        lines += [
            f"#define {up}_TAPS {taps}\n#define {up}_LOOKAHEAD {lookahead}\n\n",
            "/* The delay line, newest sample first. */\n",
            f"typedef struct {{ int16_t line[{taps * dim}]; }} {prefix}_state;\n\n",
            f"void {prefix}_reset({prefix}_state *s);  /* zeros: a device reset to idle */\n",
            f"/* Feed target t[n]; x receives the drive for sample n - {up}_LOOKAHEAD. */\n",
            f"void {prefix}_step({prefix}_state *s, const int16_t t[{dim}], int16_t x[{q.out_dim}]);\n",
        ]
    else:
        lines += [f"\nvoid {prefix}_apply(const int16_t t[{dim}], int16_t x[{q.out_dim}]);\n"]
    lines.append(f"\n#endif /* {guard} */\n")
    return "".join(lines)
