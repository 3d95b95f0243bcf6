"""C99 source for the GMP predistorter in fixed point (`hwloop.export.gmp.QuantGMP`).

A streaming predistorter: ``PREFIX_step`` takes one target I/Q sample and
returns one drive sample, keeping the last ``depth`` samples and their
envelope powers in a state struct. The terms are a table of (k, m, l) with
a complex coefficient and a shift each, walked by one loop: the basis as
`hwloop.dpd.gmp` defines it, the arithmetic as `QuantGMP.run` does it.
"""

from __future__ import annotations

import numpy as np

from hwloop.export.cgen_common import ISQRT_C, PREAMBLE, banner, ctype, reader, table
from hwloop.export.gmp import Y_CLAMP, QuantGMP


def source(q: QuantGMP, prefix: str, header: str, comment: list[str]) -> str:
    """``PREFIX.c`` for ``q``."""
    d, nt = q.depth, len(q.terms)
    powers = len(q.env_frac) - 1
    nf = q.nfmt
    et = ctype(q.bits)
    phi_shift = [0] + [
        q.fmt_z.frac - int(q.phi_frac[1])
        if k == 1
        else q.fmt_z.frac + int(q.env_frac[k - 1]) - int(q.phi_frac[k])
        for k in range(1, len(q.phi_frac))
    ]
    env_shift = [0, q.fmt_z.frac - int(q.env_frac[1])] + [
        int(q.env_frac[p - 1] + q.env_frac[1] - q.env_frac[p]) for p in range(2, powers + 1)
    ]
    parts = [banner(comment), f'#include "{header}"\n', PREAMBLE, ISQRT_C, "\n"]
    parts += [
        table("TERM_K", q.terms[:, 0], 8),
        table("TERM_M", q.terms[:, 1], 8),
        table("TERM_L", q.terms[:, 2], 8),
        table("COEF_RE", q.cr, q.bits),
        table("COEF_IM", q.ci, q.bits),
        table("TERM_SHIFT", q.term_shift, 8),
        table("PHI_SHIFT", np.array(phi_shift), 8),
        table("ENV_SHIFT", np.array(env_shift), 8),
    ]
    out_s = q.acc_frac - q.fmt_x.frac
    rd = reader(q.bits)
    parts.append(
        f"""
void {prefix}_reset({prefix}_state *s) {{ memset(s, 0, sizeof *s); }}

void {prefix}_step({prefix}_state *s, const int16_t t[2], int16_t x[2]) {{
    memmove(s->zi + 1, s->zi, sizeof(int16_t) * {d});
    memmove(s->zq + 1, s->zq, sizeof(int16_t) * {d});
    for (int p = 0; p < {powers}; p++) memmove(s->env[p] + 1, s->env[p], sizeof({et}) * {d});
    s->zi[0] = t[0];
    s->zq[0] = t[1];
    int64_t mag = (int64_t)hwl_isqrt((uint64_t)((int64_t)t[0] * t[0] + (int64_t)t[1] * t[1]));
    s->env[0][0] = ({et})hwl_requant(mag, HWL_R8(ENV_SHIFT[1]), {nf.lo}, {nf.hi});
    for (int p = 2; p <= {powers}; p++)
        s->env[p - 1][0] = ({et})hwl_requant((int64_t)s->env[p - 2][0] * s->env[0][0], HWL_R8(ENV_SHIFT[p]),
                                             {nf.lo}, {nf.hi});
    int64_t acc_r = 0, acc_i = 0;
    for (int i = 0; i < {nt}; i++) {{
        int k = HWL_R8(TERM_K[i]), m = HWL_R8(TERM_M[i]), l = HWL_R8(TERM_L[i]);
        int sh = HWL_R8(PHI_SHIFT[k]);
        int64_t e = k == 1 ? 1 : s->env[k - 2][m + l];
        int64_t pr = hwl_requant(s->zi[m] * e, sh, {nf.lo}, {nf.hi});
        int64_t pi = hwl_requant(s->zq[m] * e, sh, {nf.lo}, {nf.hi});
        int64_t cr = {rd}(COEF_RE[i]), ci = {rd}(COEF_IM[i]);
        int ts = HWL_R8(TERM_SHIFT[i]);
        acc_r += hwl_rshift(cr * pr - ci * pi, ts);
        acc_i += hwl_rshift(cr * pi + ci * pr, ts);
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
    d, powers = q.depth, len(q.env_frac) - 1
    return "".join(
        [
            banner(comment),
            f"#ifndef {up}_H\n#define {up}_H\n\n#include <stdint.h>\n\n",
            f'#define {up}_FAMILY "gmp"\n',
            f'#define {up}_HASH8 "{hash8}"  /* first 8 hex digits of the SHA-256 of {prefix}.c */\n',
            f"#define {up}_BITS {q.bits}  /* envelopes, basis terms, coefficients */\n",
            f"#define {up}_IO_BITS {q.io_bits}  /* I/Q words in and out (held in int16_t) */\n",
            f"#define {up}_IN_DIM 2\n#define {up}_OUT_DIM 2\n#define {up}_STATEFUL 1\n",
            f"#define {up}_T_FRAC {q.fmt_z.frac}  /* target = word / 2^{q.fmt_z.frac} ({q.fmt_z.name}) */\n",
            f"#define {up}_X_FRAC {q.fmt_x.frac}  /* drive = word / 2^{q.fmt_x.frac} ({q.fmt_x.name}) */\n",
            f"#define {up}_DEPTH {d}\n#define {up}_TERMS {len(q.terms)}\n\n",
            f"typedef struct {{\n    int16_t zi[{d + 1}], zq[{d + 1}];  /* newest first */\n"
            f"    {ctype(q.bits)} env[{powers}][{d + 1}];  /* |z|^p, p = 1..{powers} */\n",
            f"}} {prefix}_state;\n\n",
            f"void {prefix}_reset({prefix}_state *s);  /* zeros: an amplifier reset to idle */\n",
            "/* One I/Q sample in, one out. */\n",
            f"void {prefix}_step({prefix}_state *s, const int16_t t[2], int16_t x[2]);\n",
            f"\n#endif /* {up}_H */\n",
        ]
    )
