"""C99 source for the GRU inverse in fixed point (`hwloop.export.gru.QuantGRU`).

A streaming inverse: ``PREFIX_step`` takes one target sample and returns one
drive sample, carrying the GRU's state (``h``, one word per unit) in a
state struct that ``PREFIX_reset`` zeroes (a device reset to idle). It
computes exactly what `QuantGRU.run` computes, state included: the gate
sums, the sigmoid and tanh from the shared table, the state update, the
head, the clip and the envelope's peak limit.
"""

from __future__ import annotations

import numpy as np

from hwloop.export.cgen_common import ISQRT_C, PREAMBLE, banner, ctype, peak_c, table, tanh_c
from hwloop.export.cgen_mlp import _layer_tables, _mac
from hwloop.export.gru import QuantGRU
from hwloop.export.mlp import WIDE


def source(q: QuantGRU, prefix: str, header: str, comment: list[str]) -> str:
    """``PREFIX.c`` for ``q``."""
    d, u, o, wb = q.in_dim, q.units, q.out_dim, q.wbits
    ga, fh = q.abits - 1, q.fmt_h
    hty = ctype(q.abits)
    parts = [banner(comment), f'#include "{header}"\n', PREAMBLE, tanh_c(), ISQRT_C, "\n"]
    parts += [table("MEAN_T", q.mean_t, 16), table("INV_STD", q.inv_std, 16)]
    for name, ly in (("GX", q.lx), ("GH", q.lh), ("HZ", q.head_z), ("HH", q.head_h)):
        parts.append(_layer_tables(name, ly, wb))
    parts += [table(n, v, 16) for n, v in (("STD_X", q.std_x), ("MEAN_X", q.mean_x))]
    parts += [table(n, v, 16) for n, v in (("LOW_X", q.low_q), ("HIGH_X", q.high_q))]
    wide = f"{WIDE.lo}L, {WIDE.hi}L"
    peak = peak_c(q.pairs, q.peak_q)
    parts.append(
        f"""
/* sigmoid of a Q.12 pre-activation: (1 + tanh(u / 2)) / 2 in Q1.{ga}, 0 .. {1 << ga}. */
static int32_t hwl_sig(int64_t v) {{
    int32_t t = hwl_tanh(v, 1, {fh.frac}, {fh.hi});
    return ((1L << {ga}) + t + 1) >> 1;
}}

void {prefix}_reset({prefix}_state *s) {{ memset(s, 0, sizeof *s); }}

void {prefix}_step({prefix}_state *s, const int16_t t[{d}], int16_t x[{o}]) {{
    int16_t z[{d}];
    int32_t gx[{3 * u}], gh[{3 * u}];
    {hty} hn[{u}];
    for (int i = 0; i < {d}; i++) {{
        int64_t dd = hwl_sat((int64_t)t[i] - HWL_R16(MEAN_T[i]), {q.fmt_t.lo}, {q.fmt_t.hi});
        z[i] = (int16_t)hwl_requant(dd * HWL_R16(INV_STD[i]), {q.z_shift}, {q.fmt_z.lo}, {q.fmt_z.hi});
    }}
    for (int j = 0; j < {3 * u}; j++) {{
{_mac("GX", q.lx, "z", wb)}        gx[j] = (int32_t)hwl_requant(acc, HWL_R8(GX_S[j]), {wide});
    }}
    for (int j = 0; j < {3 * u}; j++) {{
{_mac("GH", q.lh, "s->h", wb)}        gh[j] = (int32_t)hwl_requant(acc, HWL_R8(GH_S[j]), {wide});
    }}
    for (int j = 0; j < {u}; j++) {{
        int32_t zg = hwl_sig((int64_t)gx[j] + gh[j]);
        int32_t rg = hwl_sig((int64_t)gx[{u} + j] + gh[{u} + j]);
        int64_t v = (int64_t)gx[{2 * u} + j] + hwl_rshift((int64_t)rg * gh[{2 * u} + j], {ga});
        int32_t hh = hwl_tanh(v, 0, {fh.frac}, {fh.hi});
        int64_t hv = hh + hwl_rshift((int64_t)zg * ((int64_t)s->h[j] - hh), {ga});
        hn[j] = ({hty})hwl_sat(hv, {fh.lo}, {fh.hi});
    }}
    memcpy(s->h, hn, sizeof hn);
    for (int j = 0; j < {o}; j++) {{
{_mac("HZ", q.head_z, "z", wb)}        int64_t zo = hwl_requant(acc, HWL_R8(HZ_S[j]), {wide});
{_mac("HH", q.head_h, "s->h", wb, "acc_h")}        zo += hwl_requant(acc_h, HWL_R8(HH_S[j]), {wide});
        zo = hwl_sat(zo, {q.fmt_zo.lo}, {q.fmt_zo.hi});
        int64_t v = hwl_requant(zo * HWL_R16(STD_X[j]), {q.x_shift}, {wide});
        v = hwl_sat(v + HWL_R16(MEAN_X[j]), {q.fmt_x.lo}, {q.fmt_x.hi});
        x[j] = (int16_t)hwl_sat(v, HWL_R16(LOW_X[j]), HWL_R16(HIGH_X[j]));
    }}
{peak}}}
"""
    )
    return "".join(parts)


def header(q: QuantGRU, prefix: str, hash8: str, comment: list[str]) -> str:
    """``PREFIX.h``: the streaming interface, the state, the Q formats of the words."""
    up = prefix.upper()
    return "".join(
        [
            banner(comment),
            f"#ifndef {up}_H\n#define {up}_H\n\n#include <stdint.h>\n\n",
            f'#define {up}_FAMILY "gru"\n',
            f'#define {up}_HASH8 "{hash8}"  /* first 8 hex digits of the SHA-256 of {prefix}.c */\n',
            f"#define {up}_WEIGHT_BITS {q.wbits}  /* weights */\n",
            f"#define {up}_ACT_BITS {q.abits}  /* state and gates */\n",
            f"#define {up}_IO_BITS {q.io_bits}  /* target and drive words (held in int16_t) */\n",
            f"#define {up}_IN_DIM {q.in_dim}  /* target words per sample */\n",
            f"#define {up}_OUT_DIM {q.out_dim}  /* drive words per sample */\n",
            f"#define {up}_T_FRAC {q.fmt_t.frac}  /* target = word / 2^{q.fmt_t.frac} ({q.fmt_t.name}) */\n",
            f"#define {up}_X_FRAC {q.fmt_x.frac}  /* drive = word / 2^{q.fmt_x.frac} ({q.fmt_x.name}) */\n",
            f"#define {up}_X_LOW {int(np.min(q.low_q))}\n#define {up}_X_HIGH {int(np.max(q.high_q))}\n",
            f"#define {up}_STATEFUL 1\n#define {up}_UNITS {q.units}\n",
            f"#define {up}_STATE_FRAC {q.fmt_h.frac}  /* state = word / 2^{q.fmt_h.frac} "
            f"({q.fmt_h.name}) */\n\n",
            f"typedef struct {{ {ctype(q.abits)} h[{q.units}]; }} {prefix}_state;  /* the GRU's state */\n\n",
            f"void {prefix}_reset({prefix}_state *s);  /* zeros: a device reset to idle */\n",
            "/* One target sample in, one drive sample out; the state steps once. */\n",
            f"void {prefix}_step({prefix}_state *s, const int16_t t[{q.in_dim}], int16_t x[{q.out_dim}]);\n",
            f"\n#endif /* {up}_H */\n",
        ]
    )
