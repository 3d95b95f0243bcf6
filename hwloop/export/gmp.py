"""The GMP predistorter in fixed point, and its numpy bit-exact reference.

The basis is `hwloop.dpd.gmp`'s: term (k, m, l) is x[n-m] |x[n-m-l]|^(k-1).
In words, per sample (``bits`` for envelopes, basis terms and coefficients;
``io_bits`` for the I/Q samples in and out):

    |z|   = isqrt(I^2 + Q^2)                       exact floor, from Qz words
    e1    = sat(|z|),  ep = sat(e(p-1) * e1 >> s)   envelope powers, each in its own Q format
    phi   = sat(z[n-m] * e(k-1)[n-m-l] >> s)        complex basis term, one Q format per order k
    acc  += (c * phi) aligned to one scale          complex MAC, int64, per-term coefficient formats
    y     = acc >> s                                 then the peak limit:
    x     = y * peak / |y|  where |y| > peak        isqrt and a rounded division

The coefficient formats are per term (their magnitudes differ by orders of
magnitude); the common accumulator scale is the finest at which no sum of
representable inputs can overflow int64.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from hwloop.dpd.gmp import GMPConfig, GMPInverse
from hwloop.errors import UsageError
from hwloop.export.fixed import ACC64_LIMIT, QFormat, div_round, isqrt, q_for_range, requant, rshift_round

log = logging.getLogger(__name__)

TARGET_MARGIN = 1.1
Y_CLAMP = 1 << 30  # the pre-limit output is clamped here so its square stays in int64


@dataclass
class QuantGMP:
    """A GMP predistorter in words; ``run`` is the bit-exact reference of the generated C."""

    bits: int
    io_bits: int
    cfg: dict
    fmt_z: QFormat
    env_frac: np.ndarray  # (P + 1,): index p holds the format of |z|^p (index 0 unused)
    phi_frac: np.ndarray  # (K + 1,): index k holds the format of order-k terms
    terms: np.ndarray  # (F, 3) k, m, l
    cr: np.ndarray
    ci: np.ndarray
    cfrac: np.ndarray
    acc_frac: int
    fmt_x: QFormat
    peak_q: int
    gain: tuple[float, float] = (1.0, 0.0)

    @property
    def depth(self) -> int:
        return GMPConfig(**self.cfg).depth

    @property
    def nfmt(self) -> QFormat:
        return QFormat(self.bits, 0)

    @property
    def term_shift(self) -> np.ndarray:
        """Right shift of each term's product onto the accumulator's scale (negative: left)."""
        return self.cfrac + self.phi_frac[self.terms[:, 0]] - self.acc_frac

    def run(self, z: np.ndarray) -> np.ndarray:
        """I/Q input words (n, 2) from a reset -> drive words (n, 2), exactly as the C computes them."""
        z = np.asarray(z, np.int64)
        n, d = len(z), self.depth
        ext = np.concatenate([np.zeros((d, 2), np.int64), z])
        zi, zq = ext[:, 0], ext[:, 1]
        mag = isqrt(zi * zi + zq * zq)
        nf, f = self.nfmt, self.env_frac
        env = [None, requant(mag, self.fmt_z.frac - f[1], nf)]
        for p in range(2, len(f)):
            env.append(requant(env[p - 1] * env[1], f[p - 1] + f[1] - f[p], nf))
        acc_r = np.zeros(n, np.int64)
        acc_i = np.zeros(n, np.int64)
        for (k, m, lag), cr, ci, sh in zip(self.terms, self.cr, self.ci, self.term_shift, strict=True):
            at = slice(d - m, d - m + n)
            if k == 1:
                pr = requant(zi[at], self.fmt_z.frac - self.phi_frac[1], nf)
                pi = requant(zq[at], self.fmt_z.frac - self.phi_frac[1], nf)
            else:
                e = env[k - 1][slice(d - m - lag, d - m - lag + n)]
                s = self.fmt_z.frac + f[k - 1] - self.phi_frac[k]
                pr, pi = requant(zi[at] * e, s, nf), requant(zq[at] * e, s, nf)
            acc_r += rshift_round(cr * pr - ci * pi, sh)
            acc_i += rshift_round(cr * pi + ci * pr, sh)
        out_s = self.acc_frac - self.fmt_x.frac
        yr = np.clip(rshift_round(acc_r, out_s), -Y_CLAMP, Y_CLAMP)
        yi = np.clip(rshift_round(acc_i, out_s), -Y_CLAMP, Y_CLAMP)
        m2 = yr * yr + yi * yi
        over = m2 > self.peak_q * self.peak_q
        ym = np.maximum(isqrt(m2), 1)
        xr = np.where(over, div_round(yr * self.peak_q, ym), yr)
        xi = np.where(over, div_round(yi * self.peak_q, ym), yi)
        return np.stack([self.fmt_x.saturate(xr), self.fmt_x.saturate(xi)], axis=1)

    def formats(self) -> dict:
        return {
            "z": self.fmt_z.to_dict(),
            "envelope": {
                f"|z|^{p}": QFormat(self.bits, int(self.env_frac[p])).to_dict()
                for p in range(1, len(self.env_frac))
            },
            "basis": {
                f"order {k}": QFormat(self.bits, int(self.phi_frac[k])).to_dict()
                for k in range(1, len(self.phi_frac))
            },
            "coefficients": {
                "bits": self.bits,
                "frac_min": int(self.cfrac.min()),
                "frac_max": int(self.cfrac.max()),
            },
            "accumulator": {"bits": 64, "frac": int(self.acc_frac)},
            "x": self.fmt_x.to_dict(),
            "peak": {"word": int(self.peak_q), "value": self.peak_q / 2.0**self.fmt_x.frac},
        }

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("bits", "io_bits", "cfg", "acc_frac", "peak_q")}
        d |= {"fmt_z": self.fmt_z.frac, "fmt_x": self.fmt_x.frac, "gain": list(self.gain)}
        d |= {
            k: np.asarray(getattr(self, k)).tolist()
            for k in ("env_frac", "phi_frac", "terms", "cr", "ci", "cfrac")
        }
        return d

    @classmethod
    def from_dict(cls, d: dict) -> QuantGMP:
        io = int(d["io_bits"])
        arrays = {
            k: np.asarray(d[k], np.int64) for k in ("env_frac", "phi_frac", "terms", "cr", "ci", "cfrac")
        }
        return cls(
            bits=int(d["bits"]),
            io_bits=io,
            cfg=dict(d["cfg"]),
            fmt_z=QFormat(io, int(d["fmt_z"])),
            acc_frac=int(d["acc_frac"]),
            fmt_x=QFormat(io, int(d["fmt_x"])),
            peak_q=int(d["peak_q"]),
            gain=(float(d["gain"][0]), float(d["gain"][1])),
            **arrays,
        )


def quantize_gmp(inv: GMPInverse, targets: np.ndarray, bits: int, io_bits: int) -> QuantGMP:
    """Words for the predistorter ``inv``; ``targets`` (I/Q rows) set the input range."""
    cfg = inv.model.cfg
    terms = np.array(cfg.terms(), np.int64).reshape(-1, 3)
    if np.any(terms[:, 2] < 0):
        raise UsageError("a streaming fixed-point GMP cannot use leading terms (lead > 0)")
    if cfg.lookahead:
        raise UsageError(
            f"this predistorter has {cfg.lookahead} leading taps (lookahead); the fixed-point C GMP "
            "streams causally only: export it with --format coeffs"
        )
    t = np.asarray(targets, np.float64)
    r_in = TARGET_MARGIN * float(np.max(np.hypot(t[:, 0], t[:, 1])))
    fmt_z = q_for_range(r_in, io_bits, 24)
    top = int(terms[:, 0].max())
    env_frac = np.array([0] + [q_for_range(r_in**p, bits, 30).frac for p in range(1, max(top, 2))], np.int64)
    phi_frac = np.array([0] + [q_for_range(r_in**k, bits, 30).frac for k in range(1, top + 1)], np.int64)
    c = np.asarray(inv.model.coeffs, np.complex128)
    cmax = np.maximum(np.abs(c.real), np.abs(c.imag))
    cfrac = np.array([q_for_range(v, bits, 30).frac if v > 0 else 0 for v in cmax], np.int64)
    scale = np.exp2(cfrac.astype(np.float64))
    nf = QFormat(bits, 0)
    cr = nf.saturate(np.floor(c.real * scale + 0.5))
    ci = nf.saturate(np.floor(c.imag * scale + 0.5))
    fmt_x = q_for_range(inv.peak, io_bits, 24)
    own = cfrac + phi_frac[terms[:, 0]]
    worst = (np.abs(cr) + np.abs(ci)).astype(np.float64) * 2.0 ** (bits - 1)
    acc_frac = int(min(own.max(), 62))
    while np.sum(worst * np.exp2((acc_frac - own).astype(np.float64))) >= ACC64_LIMIT / 2:
        acc_frac -= 1
    if acc_frac < fmt_x.frac:
        raise UsageError("the GMP coefficients are too large for a 64-bit accumulator")
    shift = own - acc_frac
    dead = shift > 62  # contributes nothing at the accumulator's scale
    cr, ci = np.where(dead, 0, cr), np.where(dead, 0, ci)
    cfrac = np.where(dead, acc_frac - phi_frac[terms[:, 0]], cfrac)
    g = complex(inv.gain)
    q = QuantGMP(
        bits,
        io_bits,
        cfg.to_dict(),
        fmt_z,
        env_frac,
        phi_frac,
        terms,
        cr,
        ci,
        cfrac,
        acc_frac,
        fmt_x,
        int(min(np.floor(inv.peak * 2.0**fmt_x.frac + 0.5), fmt_x.hi)),
        (g.real, g.imag),
    )
    log.info("GMP in %d-bit words (io %d): %s", bits, io_bits, q.formats())
    return q
