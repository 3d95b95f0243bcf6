"""C99 source for the GMP predistorter as gain tables in fixed point (`hwloop.export.gmp.QuantGMP`).

A streaming predistorter: ``PREFIX_step`` takes one target I/Q sample and
returns one drive sample, keeping the last ``depth`` samples and their
envelopes in a state struct. With leading taps (``PREFIX_LOOKAHEAD`` L)
the drive returned by a step is the drive of the target L steps earlier.
Each group (m, l) of the GMP's terms is a
complex gain table over the envelope, interpolated exactly and multiplied
into the sample m steps back: the model of `hwloop.dpd.gmp`, the arithmetic
of `QuantGMP.run`.
"""

from __future__ import annotations

from hwloop.export.cgen_common import ISQRT_C, PREAMBLE, banner, reader, table
from hwloop.export.gmp import Y_CLAMP, QuantGMP


def source(q: QuantGMP, prefix: str, header: str, comment: list[str]) -> str:
    """``PREFIX.c`` for ``q``."""
    d, ng = q.depth, len(q.groups)
    nodes = q.tab_re.shape[1]
    parts = [banner(comment), f'#include "{header}"\n', PREAMBLE, ISQRT_C, "\n"]
    parts += [
        table("GROUP_M", q.groups[:, 0], 8),
        table("GROUP_L", q.groups[:, 1], 8),
        table("GROUP_SHIFT", q.group_shift, 8),
        table("TAB_RE", q.tab_re, q.wbits, (ng, nodes)),
        table("TAB_IM", q.tab_im, q.wbits, (ng, nodes)),
    ]
    out_s = q.acc_frac - q.fmt_x.frac
    rd = reader(q.wbits)
    s = q.step
    parts.append(
        f"""
void {prefix}_reset({prefix}_state *s) {{ memset(s, 0, sizeof *s); }}

void {prefix}_step({prefix}_state *s, const int16_t t[2], int16_t x[2]) {{
    memmove(s->zi + 1, s->zi, sizeof(int16_t) * {d});
    memmove(s->zq + 1, s->zq, sizeof(int16_t) * {d});
    memmove(s->env + 1, s->env, sizeof(uint32_t) * {d});
    s->zi[0] = t[0];
    s->zq[0] = t[1];
    s->env[0] = (uint32_t)hwl_isqrt((uint64_t)((int64_t)t[0] * t[0] + (int64_t)t[1] * t[1]));
    int64_t acc_r = 0, acc_i = 0;
    for (int g = 0; g < {ng}; g++) {{
        int m = HWL_R8(GROUP_M[g]), l = HWL_R8(GROUP_L[g]);
        uint32_t e = s->env[m + l];
        int i = (int)(e >> {s});
        int64_t f = (int64_t)(e & {(1 << s) - 1}u);
        int64_t r0 = {rd}(TAB_RE[g][i]), r1 = {rd}(TAB_RE[g][i + 1]);
        int64_t i0 = {rd}(TAB_IM[g][i]), i1 = {rd}(TAB_IM[g][i + 1]);
        int64_t gr = r0 * {1 << s} + (r1 - r0) * f, gi = i0 * {1 << s} + (i1 - i0) * f;
        int64_t xr = s->zi[m], xi = s->zq[m];
        int sh = HWL_R8(GROUP_SHIFT[g]);
        acc_r += hwl_rshift(xr * gr - xi * gi, sh);
        acc_i += hwl_rshift(xr * gi + xi * gr, sh);
    }}
    int64_t yr = hwl_sat(hwl_rshift(acc_r, {out_s}), -{Y_CLAMP}L, {Y_CLAMP}L);
    int64_t yi = hwl_sat(hwl_rshift(acc_i, {out_s}), -{Y_CLAMP}L, {Y_CLAMP}L);
    int64_t m2 = yr * yr + yi * yi;
    const int64_t peak = {q.peak_q};
    if (m2 > peak * peak) {{
        int64_t ym = (int64_t)hwl_isqrt((uint64_t)m2);
        yr = hwl_div_round(yr * peak, ym);
        yi = hwl_div_round(yi * peak, ym);
    }}
    x[0] = (int16_t)hwl_sat(yr, {q.fmt_x.lo}, {q.fmt_x.hi});
    x[1] = (int16_t)hwl_sat(yi, {q.fmt_x.lo}, {q.fmt_x.hi});
}}
"""
    )
    return "".join(parts)


def header(q: QuantGMP, prefix: str, hash8: str, comment: list[str]) -> str:
    """``PREFIX.h``: the streaming interface, the state, the Q formats of the I/Q words."""
    up = prefix.upper()
    d = q.depth
    return "".join(
        [
            banner(comment),
            f"#ifndef {up}_H\n#define {up}_H\n\n#include <stdint.h>\n\n",
            f'#define {up}_FAMILY "gmp"\n',
            f'#define {up}_HASH8 "{hash8}"  /* first 8 hex digits of the SHA-256 of {prefix}.c */\n',
            f"#define {up}_WEIGHT_BITS {q.wbits}  /* gain-table words */\n",
            f"#define {up}_IO_BITS {q.io_bits}  /* I/Q words in and out (held in int16_t) */\n",
            f"#define {up}_IN_DIM 2\n#define {up}_OUT_DIM 2\n#define {up}_STATEFUL 1\n",
            f"#define {up}_T_FRAC {q.fmt_z.frac}  /* target = word / 2^{q.fmt_z.frac} ({q.fmt_z.name}) */\n",
            f"#define {up}_X_FRAC {q.fmt_x.frac}  /* drive = word / 2^{q.fmt_x.frac} ({q.fmt_x.name}) */\n",
            f"#define {up}_DEPTH {d}  /* past samples held, delays counted from the newest target */\n",
            f"#define {up}_LOOKAHEAD {q.lookahead}  /* latency: a step returns the drive of the target "
            f"{q.lookahead} steps before */\n",
            f"#define {up}_GROUPS {len(q.groups)}\n",
            f"#define {up}_TABLE_NODES {q.tab_re.shape[1]}  /* one every 2^{q.step} envelope words */\n\n",
            f"typedef struct {{\n    int16_t zi[{d + 1}], zq[{d + 1}];  /* newest first */\n",
            f"    uint32_t env[{d + 1}];  /* their envelopes isqrt(I^2 + Q^2) */\n",
            f"}} {prefix}_state;\n\n",
            f"void {prefix}_reset({prefix}_state *s);  /* zeros: an amplifier reset to idle */\n",
            "/* One I/Q sample in, one out: the drive of the target LOOKAHEAD steps before (after the\n"
            "   last target, LOOKAHEAD zero samples flush the last drives out). */\n",
            f"void {prefix}_step({prefix}_state *s, const int16_t t[2], int16_t x[2]);\n",
            f"\n#endif /* {up}_H */\n",
        ]
    )
