"""The fixed-point primitives: the C helpers every export embeds against their numpy twins.

A small C program (the generated preamble and helpers, compiled with the
host compiler) computes tanh, re-quantisation, integer square roots and
rounded divisions on inputs chosen to cover every branch: they must agree
with `hwloop.export.fixed` on every one, bit for bit.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from serial_fixtures import require_toolchain

from hwloop.export.cgen_common import ISQRT_C, PREAMBLE, tanh_c
from hwloop.export.fixed import (
    TANH_IN_FRAC,
    QFormat,
    div_round,
    isqrt,
    q_for_range,
    requant,
    tanh_input,
    tanh_q,
)

HARNESS = r"""
#include <stdio.h>
#include <inttypes.h>
int main(void) {
    char op;
    long long a, b, c, d, e;
    while (scanf(" %c %lld %lld %lld %lld %lld", &op, &a, &b, &c, &d, &e) == 6) {
        long long r = 0;
        if (op == 't') r = hwl_tanh(a, (int)b, (int)c, (int32_t)d);
        else if (op == 'q') r = hwl_requant(a, (int)b, c, d);
        else if (op == 's') r = (long long)hwl_isqrt((uint64_t)a);
        else if (op == 'd') r = hwl_div_round(a, b);
        printf("%lld\n", r);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def helpers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_toolchain("cc")
    d = tmp_path_factory.mktemp("fixed")
    (d / "h.c").write_text(PREAMBLE + tanh_c() + ISQRT_C + HARNESS)
    res = subprocess.run(
        ["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-o", "h", "h.c"],
        cwd=d,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return d / "h"


def run_c(exe: Path, rows: list[tuple[str, int, int, int, int, int]]) -> np.ndarray:
    text = "".join(f"{op} {a} {b} {c} {d} {e}\n" for op, a, b, c, d, e in rows)
    res = subprocess.run([str(exe)], input=text, capture_output=True, text=True, timeout=120, check=True)
    return np.array([int(v) for v in res.stdout.split()], np.int64)


@pytest.mark.parametrize("bits", [16, 12, 8])
def test_tanh_in_c_equals_numpy_on_every_input_word(helpers: Path, bits: int) -> None:
    out = QFormat(bits, bits - 1)
    rows, expect = [], []
    for s in (-3, 0, 1, 6):
        span = (9 << TANH_IN_FRAC) >> max(-s, 0) << max(s, 0)  # inputs reaching past the clamp at +-8
        acc = np.unique(np.concatenate([np.linspace(-span, span, 6001).astype(np.int64), [0, 1, -1]]))
        rows += [("t", int(a), s, out.frac, out.hi, 0) for a in acc]
        expect.append(tanh_q(tanh_input(acc, s), out))
    np.testing.assert_array_equal(run_c(helpers, rows), np.concatenate(expect))


def test_tanh_table_is_accurate_to_5e_5_and_monotone() -> None:
    u = np.arange(-(9 << TANH_IN_FRAC), 9 << TANH_IN_FRAC)
    got = tanh_q(u, QFormat(16, 15)) / 2.0**15
    err = np.max(np.abs(got - np.tanh(u / 2.0**TANH_IN_FRAC)))
    assert err < 5e-5, err
    assert np.all(np.diff(got) >= 0), "the fixed-point tanh must be monotone"


def test_requant_rounds_half_up_and_saturates_like_c(helpers: Path) -> None:
    rng = np.random.default_rng(0)
    rows, expect = [], []
    for fmt in (QFormat(16, 0), QFormat(8, 0), QFormat(31, 0)):
        v = np.concatenate([rng.integers(-(1 << 40), 1 << 40, 400), rng.integers(-300, 300, 200)])
        for s in (-12, -1, 0, 1, 5, 17, 30):
            rows += [("q", int(x), s, fmt.lo, fmt.hi, 0) for x in v]
            expect.append(requant(v, s, fmt))
    np.testing.assert_array_equal(run_c(helpers, rows), np.concatenate(expect))
    # Half up: 2.5 -> 3, -2.5 -> -2; saturation never wraps.
    assert requant(np.array([5, -5, 7, -7]), 1, QFormat(16, 0)).tolist() == [3, -2, 4, -3]
    assert requant(np.array([1 << 40, -(1 << 40)]), -3, QFormat(16, 0)).tolist() == [32767, -32768]


def test_isqrt_and_rounded_division_match_c_exactly(helpers: Path) -> None:
    rng = np.random.default_rng(1)
    roots = rng.integers(0, 1 << 30, 500)
    v = np.concatenate([rng.integers(0, 1 << 61, 500), roots * roots, roots * roots - 1, [0, 1, 2, 3, 4]])
    v = np.maximum(v, 0)
    a = rng.integers(-(1 << 45), 1 << 45, 500)
    b = rng.integers(1, 1 << 31, 500)
    rows = [("s", int(x), 0, 0, 0, 0) for x in v] + [
        ("d", int(x), int(y), 0, 0, 0) for x, y in zip(a, b, strict=True)
    ]
    got = run_c(helpers, rows)
    np.testing.assert_array_equal(got[: len(v)], isqrt(v))
    np.testing.assert_array_equal(got[len(v) :], div_round(a, b))
    exact = np.array([int(np.floor(np.sqrt(float(x)))) for x in v[:50]])  # sanity beside the integer check
    assert np.all(np.abs(isqrt(v[:50]) - exact) <= 1)
    assert div_round(np.array([5, -5, 4]), np.array([2, 2, 2])).tolist() == [3, -3, 2]


@pytest.mark.parametrize("r", [0.3, 0.84, 1.0, 1.2, 2.5, 7.9])
@pytest.mark.parametrize("bits", [16, 12, 8])
def test_a_range_gets_the_finest_format_that_holds_it(r: float, bits: int) -> None:
    fmt = q_for_range(r, bits)
    top = fmt.hi / 2.0**fmt.frac
    assert top >= r - 2.0**-fmt.frac  # holds r (a power of two one step below)
    assert (fmt.hi / 2.0 ** (fmt.frac + 1)) < r  # one more fractional bit would not
    q = fmt.quantize(np.array([r, -r, 0.0, 10 * r]))
    assert q[3] == fmt.hi and abs(fmt.value(q[0]) - r) <= 2.0**-fmt.frac
