"""Fixed-point arithmetic every export shares, in numpy: the reference the generated C must match bit for bit.

Conventions (docs/deploy.md spells them out for hardware engineers):

- A word is a signed two's-complement integer of ``bits`` bits; its Q format
  ``Qm.n`` has ``n = frac`` fractional bits and ``m = bits - 1 - frac``
  integer bits (m may be negative: small values keep more precision). The
  value of word q is ``q / 2**frac``.
- Rounding is round-half-up everywhere: a right shift by s > 0 adds
  ``2**(s-1)`` first, then shifts arithmetically (floor). C does the same
  with ``(v + (1 << (s-1))) >> s``; the generated source refuses to compile
  where ``>>`` of a negative number is not arithmetic.
- Saturation: every word that is stored is clamped to its ``bits`` range,
  never wrapped. Accumulators are wide enough that they cannot overflow:
  each export checks the worst case over all representable inputs.
- tanh is a table of ``tanh(i / 64)`` for i = 0..512 in Q0.15, linearly
  interpolated on inputs in Q.12 (|u| clamped at 8), odd-symmetric. Its
  error is below 5e-5 (interpolation 2.4e-5, table and output rounding one
  Q0.15 half-step each), it is monotone, and C and numpy compute it with
  the same integer operations.
- Square roots are exact integer floors (``isqrt``); divisions round half
  away from zero.

Python ints would be exact but slow; every operation here is int64 numpy,
and each caller keeps its values inside int64 (checked where it matters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwloop.errors import UsageError

MIN_BITS, MAX_BITS = 4, 16
TANH_IN_FRAC = 12  # tanh inputs in Q.12 (int32)
TANH_STEP_BITS = 6  # table spacing 2**-6
TANH_LIMIT = 8  # tanh(8) = 1 - 2.3e-7: saturated at 16 bits
TANH_OUT_FRAC = 15  # table values in Q0.15
TANH_ENTRIES = TANH_LIMIT * (1 << TANH_STEP_BITS) + 2  # one extra so index 512 interpolates to itself
ACC32_LIMIT = 1 << 30  # |int32 accumulators| stay below this (room for the rounding half)
ACC64_LIMIT = 1 << 61


def check_bits(bits: int, what: str = "--bits") -> int:
    """A word width the exports support (4..16)."""
    if not MIN_BITS <= int(bits) <= MAX_BITS:
        raise UsageError(f"{what} must be between {MIN_BITS} and {MAX_BITS}, got {bits}")
    return int(bits)


@dataclass(frozen=True)
class QFormat:
    """A signed fixed-point word: ``bits`` wide, ``frac`` fractional bits."""

    bits: int
    frac: int

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def name(self) -> str:
        return f"Q{self.bits - 1 - self.frac}.{self.frac}"

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Floats to words: round half up, saturate."""
        q = np.floor(np.asarray(x, np.float64) * float(2.0**self.frac) + 0.5)
        return np.clip(q, self.lo, self.hi).astype(np.int64)

    def value(self, q: np.ndarray) -> np.ndarray:
        return np.asarray(q, np.float64) / float(2.0**self.frac)

    def saturate(self, v: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(v, np.int64), self.lo, self.hi)

    def to_dict(self) -> dict:
        return {"bits": self.bits, "frac": self.frac, "q": self.name}


def q_for_range(r: float, bits: int, max_frac: int = 30) -> QFormat:
    """The format with the most fractional bits whose range covers +-r.

    ``r`` exactly a power of two saturates one step below it (Q0.15 holds
    up to 1 - 2^-15): that costs one LSB at the very top and buys a bit of
    precision everywhere else.
    """
    r = float(abs(r))
    if not math.isfinite(r):
        raise UsageError(f"cannot choose a fixed-point format for a range of {r}")
    intbits = math.ceil(math.log2(r)) if r > 0 else -(max_frac - bits + 1)
    frac = min(max(bits - 1 - intbits, 0), max_frac)
    return QFormat(bits, frac)


def rshift_round(v: np.ndarray, s: int | np.ndarray) -> np.ndarray:
    """v / 2**s rounded half up (s > 0), v * 2**-s (s <= 0); int64, elementwise s allowed."""
    v = np.asarray(v, np.int64)
    s = np.asarray(s, np.int64)
    pos = np.maximum(s, 0)
    half = np.where(pos > 0, np.left_shift(np.int64(1), np.maximum(pos - 1, 0)), 0)
    right = np.right_shift(v + half, pos)
    left = v * np.left_shift(np.int64(1), np.maximum(-s, 0))
    return np.where(s > 0, right, left)


def requant(v: np.ndarray, s: int | np.ndarray, fmt: QFormat) -> np.ndarray:
    """Re-scale an accumulator by 2**-s and saturate it to ``fmt`` (what C's ``hwl_requant`` does).

    A left shift (s < 0) clamps to just past the range before shifting, so it never overflows
    and still saturates to the exact limits.
    """
    v = np.asarray(v, np.int64)
    s = np.asarray(s, np.int64)
    up = np.maximum(-s, 0)
    clamped = np.clip(v, np.right_shift(np.int64(fmt.lo), up), np.right_shift(np.int64(fmt.hi), up) + 1)
    return fmt.saturate(np.where(s > 0, rshift_round(v, s), rshift_round(clamped, s)))


def tanh_table() -> np.ndarray:
    """tanh(i / 2**TANH_STEP_BITS) in Q0.15, i = 0..TANH_ENTRIES-1 (capped at 32767)."""
    i = np.arange(TANH_ENTRIES, dtype=np.float64)
    i[-1] = i[-2]  # the extra entry repeats the last: index 512 interpolates to tanh(8)
    t = np.floor(np.tanh(i / (1 << TANH_STEP_BITS)) * (1 << TANH_OUT_FRAC) + 0.5)
    return np.minimum(t, (1 << TANH_OUT_FRAC) - 1).astype(np.int64)


_TABLE = tanh_table()


def tanh_q(u: np.ndarray, out: QFormat) -> np.ndarray:
    """tanh of Q.12 inputs u (int64) as words of ``out`` (frac = out.bits - 1)."""
    u = np.asarray(u, np.int64)
    a = np.minimum(np.abs(u), TANH_LIMIT << TANH_IN_FRAC)
    i = np.right_shift(a, TANH_IN_FRAC - TANH_STEP_BITS)
    r = a & ((1 << (TANH_IN_FRAC - TANH_STEP_BITS)) - 1)
    t0, t1 = _TABLE[i], _TABLE[i + 1]
    y = t0 + rshift_round((t1 - t0) * r, TANH_IN_FRAC - TANH_STEP_BITS)
    y = np.minimum(rshift_round(y, TANH_OUT_FRAC - out.frac), out.hi)
    return np.where(u < 0, -y, y)


def tanh_input(acc: np.ndarray, s: int | np.ndarray) -> np.ndarray:
    """An accumulator at scale 2**-(TANH_IN_FRAC + s) as a Q.12 tanh input, clamped at +-8 first."""
    lim = np.int64(TANH_LIMIT << TANH_IN_FRAC)
    s = np.asarray(s, np.int64)
    up = np.maximum(-s, 0)
    acc = np.asarray(acc, np.int64)
    clamped = np.clip(acc, -np.right_shift(lim, up), np.right_shift(lim, up))
    return np.where(s > 0, rshift_round(acc, s), rshift_round(clamped, s))


def isqrt(v: np.ndarray) -> np.ndarray:
    """floor(sqrt(v)) of non-negative int64 values below 2**62, exactly."""
    v = np.asarray(v, np.int64)
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    for _ in range(2):  # float64 is off by at most one here
        r = np.where(r * r > v, r - 1, r)
        r = np.where((r + 1) * (r + 1) <= v, r + 1, r)
    return r


def div_round(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b rounded half away from zero, for b > 0 (C: the same on magnitudes, sign restored)."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    q = (np.abs(a) + b // 2) // b
    return np.where(a < 0, -q, q)


def peak_word(peak: float, frac: int) -> int:
    """The envelope's peak as a drive word, two LSB inside it: `envelope_limit`'s rounding can
    land up to 1.71 LSB above the word it scales to, and the result must stay within the peak."""
    return max(1, int(np.floor(peak * 2.0**frac)) - 2)


def envelope_limit(x: np.ndarray, pairs: list[tuple[int, int]] | np.ndarray, peak_q: int) -> np.ndarray:
    """Drive words with each I/Q pair above ``peak_q`` scaled back onto it, phase kept (exact
    integer square root, rounded division): the device's envelope, as the float inverse keeps it."""
    x = np.array(x, np.int64)
    if not peak_q:
        return x
    for i, q in pairs:
        m2 = x[:, i] * x[:, i] + x[:, q] * x[:, q]
        over = m2 > peak_q * peak_q
        mag = np.maximum(isqrt(m2), 1)
        xi = np.where(over, div_round(x[:, i] * peak_q, mag), x[:, i])
        xq = np.where(over, div_round(x[:, q] * peak_q, mag), x[:, q])
        x[:, i], x[:, q] = xi, xq
    return x


def worst_sum(weights: np.ndarray, in_max: int) -> np.ndarray:
    """Per output column, the largest |sum_i w_ij a_i| over inputs |a_i| <= in_max (int64)."""
    return np.sum(np.abs(np.asarray(weights, np.int64)), axis=0) * np.int64(in_max)
