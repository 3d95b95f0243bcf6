"""What every generated C file shares: the preamble, integer helpers, table formatting.

The helpers are the C twins of `hwloop.export.fixed` (same rounding, same
saturation, same tanh table and interpolation, same integer square root).
Tables go to flash on an AVR (``PROGMEM`` and ``pgm_read_*``) and are plain
``static const`` arrays everywhere else; nothing but ``<stdint.h>`` and
``<string.h>`` is needed.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from hwloop.export.fixed import (
    TANH_ENTRIES,
    TANH_IN_FRAC,
    TANH_LIMIT,
    TANH_OUT_FRAC,
    TANH_STEP_BITS,
    tanh_table,
)

PREAMBLE = r"""#include <stdint.h>
#include <string.h>

#if defined(__AVR__)
#include <avr/pgmspace.h>
#define HWL_ROM PROGMEM
#define HWL_R8(a) ((int8_t)pgm_read_byte(&(a)))
#define HWL_R16(a) ((int16_t)pgm_read_word(&(a)))
#define HWL_R32(a) ((int32_t)pgm_read_dword(&(a)))
static inline int64_t hwl_r64(const int64_t *p) { int64_t v; memcpy_P(&v, p, sizeof v); return v; }
#define HWL_R64(a) hwl_r64(&(a))
#else
#define HWL_ROM
#define HWL_R8(a) (a)
#define HWL_R16(a) (a)
#define HWL_R32(a) (a)
#define HWL_R64(a) (a)
#endif

/* Right shifts of negative numbers must be arithmetic (floor): refuse to compile otherwise. */
typedef char hwl_asr_check[((-1) >> 1) == -1 ? 1 : -1];

/* v / 2^s rounded half up for s > 0; v * 2^-s for s <= 0 (the caller keeps it in range). */
static inline int64_t hwl_rshift(int64_t v, int s) {
    if (s > 0) return (v + ((int64_t)1 << (s - 1))) >> s;
    return v * ((int64_t)1 << -s);
}

static inline int64_t hwl_sat(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Re-scale by 2^-s and saturate to [lo, hi]; a left shift saturates first, so it cannot overflow. */
static inline int64_t hwl_requant(int64_t v, int s, int64_t lo, int64_t hi) {
    if (s > 0) return hwl_sat(hwl_rshift(v, s), lo, hi);
    return hwl_sat(hwl_sat(v, lo >> -s, (hi >> -s) + 1) * ((int64_t)1 << -s), lo, hi);
}
"""

TANH_C = rf"""
/* tanh(i / {1 << TANH_STEP_BITS}) in Q0.{TANH_OUT_FRAC}, i = 0..{TANH_ENTRIES - 1} (last: a repeat). */
static const int16_t hwl_tanh_lut[{TANH_ENTRIES}] HWL_ROM = {{
{{table}}
}};

/* tanh of an accumulator at 2^-({TANH_IN_FRAC} + s), as a word with out_frac <= {TANH_OUT_FRAC} bits. */
static inline int32_t hwl_tanh(int64_t acc, int s, int out_frac, int32_t hi) {{
    const int64_t lim = (int64_t){TANH_LIMIT} << {TANH_IN_FRAC};
    int64_t u = s > 0 ? hwl_rshift(acc, s) : hwl_sat(acc, -(lim >> -s), lim >> -s) * ((int64_t)1 << -s);
    int64_t a = u < 0 ? -u : u;
    if (a > lim) a = lim;
    int32_t i = (int32_t)(a >> {TANH_IN_FRAC - TANH_STEP_BITS});
    int32_t r = (int32_t)(a & {(1 << (TANH_IN_FRAC - TANH_STEP_BITS)) - 1});
    int32_t t0 = HWL_R16(hwl_tanh_lut[i]), t1 = HWL_R16(hwl_tanh_lut[i + 1]);
    int64_t y = t0 + hwl_rshift((int64_t)(t1 - t0) * r, {TANH_IN_FRAC - TANH_STEP_BITS});
    y = hwl_rshift(y, {TANH_OUT_FRAC} - out_frac);
    if (y > hi) y = hi;
    return (int32_t)(u < 0 ? -y : y);
}}
"""

ISQRT_C = r"""
/* floor(sqrt(v)), exactly. */
static inline uint64_t hwl_isqrt(uint64_t v) {
    uint64_t r = 0, bit = (uint64_t)1 << 62;
    while (bit > v) bit >>= 2;
    while (bit) {
        if (v >= r + bit) {
            v -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return r;
}

/* a / b rounded half away from zero, b > 0. */
static inline int64_t hwl_div_round(int64_t a, int64_t b) {
    int64_t q = ((a < 0 ? -a : a) + b / 2) / b;
    return a < 0 ? -q : q;
}

/* The I/Q pair x[i], x[q] scaled back onto the peak word where it lies beyond it, phase kept. */
static inline void hwl_peak(int16_t *x, int i, int q, int64_t peak) {
    int64_t m2 = (int64_t)x[i] * x[i] + (int64_t)x[q] * x[q];
    if (m2 > peak * peak) {
        int64_t mag = (int64_t)hwl_isqrt((uint64_t)m2);
        int64_t a = hwl_div_round((int64_t)x[i] * peak, mag), b = hwl_div_round((int64_t)x[q] * peak, mag);
        x[i] = (int16_t)a;
        x[q] = (int16_t)b;
    }
}
"""


def peak_c(pairs: list[tuple[int, int]] | list[list[int]], peak_q: int, var: str = "x") -> str:
    """The calls of ``hwl_peak`` that keep each I/Q pair of ``var`` within the envelope (or nothing)."""
    if not peak_q:
        return ""
    return "".join(f"    hwl_peak({var}, {int(i)}, {int(q)}, {int(peak_q)});\n" for i, q in pairs)


def ctype(bits: int) -> str:
    """The smallest C integer type holding a signed ``bits``-bit word."""
    return "int8_t" if bits <= 8 else "int16_t" if bits <= 16 else "int32_t" if bits <= 32 else "int64_t"


def reader(bits: int) -> str:
    """The flash-read macro for a table of ``ctype(bits)``."""
    return {"int8_t": "HWL_R8", "int16_t": "HWL_R16", "int32_t": "HWL_R32", "int64_t": "HWL_R64"}[ctype(bits)]


def literal(v: int, bits: int) -> str:
    """An integer literal that is valid C99 for its type (INT64_MIN and friends included)."""
    v = int(v)
    if bits > 32:
        return f"INT64_C({v})" if v > -(1 << 63) else "(-INT64_C(9223372036854775807) - 1)"
    if bits > 16:
        return f"{v}L" if v > -(1 << 31) else "(-2147483647L - 1)"
    return str(v)


def numbers(values: Iterable[int], bits: int, per_line: int = 12, indent: str = "    ") -> str:
    vals = [literal(v, bits) for v in np.ravel(np.asarray(list(values), dtype=object))]
    lines = [", ".join(vals[i : i + per_line]) for i in range(0, len(vals), per_line)]
    return ",\n".join(indent + line for line in lines)


def table(name: str, values: np.ndarray, bits: int, shape: tuple[int, ...] | None = None) -> str:
    """``static const T name[..] HWL_ROM = {...};`` (nested braces for 2-D tables)."""
    arr = np.asarray(values, dtype=np.int64)
    dims = "".join(f"[{d}]" for d in (shape or arr.shape))
    if arr.ndim == 2:
        body = ",\n".join("    {" + numbers(row, bits, 12, "").replace("\n", " ") + "}" for row in arr)
    else:
        body = numbers(arr, bits)
    return f"static const {ctype(bits)} {name}{dims} HWL_ROM = {{\n{body}\n}};\n"


def tanh_c() -> str:
    return TANH_C.replace("{table}", numbers(tanh_table(), 16))


def banner(lines: list[str]) -> str:
    """A C block comment from text lines."""
    return "/*\n" + "".join(f" * {ln}".rstrip() + "\n" for ln in lines) + " */\n"
