"""The GMP predistorter in fixed point as gain tables, and its numpy bit-exact reference.

The model is `hwloop.dpd.gmp`'s, term (k, m, l) = x[n-m] |x[n-m-l]|^(k-1).
Grouping the terms by (m, l), it is

    y[n] = sum over groups (m, l) of x[n-m] * G_ml(|x[n-m-l]|),   G_ml(r) = sum_k c_kml r^(k-1)

and that is how it runs in words: each group's complex gain G_ml is a table
over the envelope, linearly interpolated, the standard form of a GMP in
hardware. Evaluating the polynomial itself in short words cannot hold: its
92 nearly collinear terms have large coefficients that cancel, and every
order's term, sized for the peak envelope while the signal's RMS is a third
of it, loses its low bits (12-bit words: 2 to 10 dB of ACPR on the
simulators and a held-out amplifier). A table holds the gain itself, which
is near the amplifier's inverse gain, with each group's own format. Per
sample (``wbits`` the table words, ``io_bits`` the I/Q words in and out):

    |z|   = isqrt(I^2 + Q^2)                       exact floor, from Qz words; kept for the past samples
    i, f  = |z| >> s, |z| mod 2^s                  table index and interpolation weight
    G     = (T[i] << s) + (T[i+1] - T[i]) * f      exact linear interpolation, per group, re and im
    acc  += x[n-m] * G  aligned to one scale       complex MAC, int64, per-group shifts
    y     = acc >> s                                then the peak limit:
    x     = y * peak / |y|  where |y| > peak       isqrt and a rounded division (peak: 2 LSB inside)

The tables' words are chosen by `hwloop.export.ptq.gptq_gram` below 16 bits
(rounding with error feedback over the run's own logged signal), so their
rounding errors cancel where the signal goes; at 16 bits, nearest rounding.
Each table's format holds the gain up to the largest logged envelope; past
it, where no logged signal reached, the gain saturates.

A predistorter with leading taps (``lookahead`` L, for an amplifier that is
not minimum phase) reads the L targets after sample n. The datapath streams
it causally: its delays count from the newest target received, n + L, so the
tables are the same and the delay line is L samples longer, and the drive
out of step n is sample n - L's: a latency of L samples. After the last
target, L zero samples flush the last drives out (`QuantGMP.drive`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from hwloop.dpd.gmp import GMPConfig, GMPInverse
from hwloop.errors import UsageError
from hwloop.export.fixed import ACC64_LIMIT, QFormat, div_round, isqrt, peak_word, q_for_range, rshift_round

log = logging.getLogger(__name__)

TARGET_MARGIN = 1.1
Y_CLAMP = 1 << 30  # the pre-limit output is clamped here so its square stays in int64
NODES = 128  # table nodes over the envelope's whole word range (a power-of-two spacing)
PTQ_BELOW = 16  # tables narrower than this are rounded with error feedback
CALIBRATION_SAMPLES = 40_000


def envelope_max(io_bits: int) -> int:
    """The largest envelope isqrt(I^2 + Q^2) of two io-bit words (both at the negative limit)."""
    return int(isqrt(np.array([2 * (1 << (2 * (io_bits - 1)))]))[0])


@dataclass
class QuantGMP:
    """A GMP predistorter as gain tables in words; ``run`` is the bit-exact reference of the C."""

    wbits: int  # table words
    io_bits: int
    cfg: dict
    fmt_z: QFormat
    step: int  # s: table nodes every 2^s envelope words
    groups: np.ndarray  # (G, 2): m, l
    tab_re: np.ndarray  # (G, nodes) words
    tab_im: np.ndarray
    tab_frac: np.ndarray  # (G,)
    acc_frac: int
    fmt_x: QFormat
    peak_q: int
    gain: tuple[float, float] = (1.0, 0.0)

    @property
    def lookahead(self) -> int:
        """Leading taps L: the drive out of step n is sample n - L's (a latency of L samples)."""
        return GMPConfig(**self.cfg).lookahead

    @property
    def depth(self) -> int:
        """Past samples the datapath keeps: the deepest m + l, delays counted from the newest target
        (with leading taps that is sample n + L, so the line is L samples longer than the model's past)."""
        cfg = GMPConfig(**self.cfg)
        return cfg.depth + cfg.lookahead

    @property
    def group_shift(self) -> np.ndarray:
        """Right shift of each group's product onto the accumulator's scale (negative: left)."""
        return self.tab_frac + self.fmt_z.frac + self.step - self.acc_frac

    def gains(self, env: np.ndarray, g: int) -> tuple[np.ndarray, np.ndarray]:
        """Group g's interpolated gain words (scale 2^-(tab_frac + step)) at envelope words ``env``."""
        i, f = np.right_shift(env, self.step), env & ((1 << self.step) - 1)
        tr, ti = self.tab_re[g], self.tab_im[g]
        return (
            np.left_shift(tr[i], self.step) + (tr[i + 1] - tr[i]) * f,
            np.left_shift(ti[i], self.step) + (ti[i + 1] - ti[i]) * f,
        )

    def run(self, z: np.ndarray) -> np.ndarray:
        """I/Q input words (n, 2) from a reset -> drive words (n, 2), exactly as the C computes them:
        row n is the drive of sample n - `lookahead` (the first L rows precede the signal)."""
        z = np.asarray(z, np.int64)
        n, d = len(z), self.depth
        ext = np.concatenate([np.zeros((d, 2), np.int64), z])
        zi, zq = ext[:, 0], ext[:, 1]
        mag = isqrt(zi * zi + zq * zq)
        acc_r = np.zeros(n, np.int64)
        acc_i = np.zeros(n, np.int64)
        for g, ((m, lag), sh) in enumerate(zip(self.groups, self.group_shift, strict=True)):
            gr, gi = self.gains(mag[d - m - lag : d - m - lag + n], g)
            xr, xi = zi[d - m : d - m + n], zq[d - m : d - m + n]
            acc_r += rshift_round(xr * gr - xi * gi, sh)
            acc_i += rshift_round(xr * gi + xi * gr, sh)
        out_s = self.acc_frac - self.fmt_x.frac
        yr = np.clip(rshift_round(acc_r, out_s), -Y_CLAMP, Y_CLAMP)
        yi = np.clip(rshift_round(acc_i, out_s), -Y_CLAMP, Y_CLAMP)
        m2 = yr * yr + yi * yi
        over = m2 > self.peak_q * self.peak_q
        ym = np.maximum(isqrt(m2), 1)
        xr = np.where(over, div_round(yr * self.peak_q, ym), yr)
        xi = np.where(over, div_round(yi * self.peak_q, ym), yi)
        return np.stack([self.fmt_x.saturate(xr), self.fmt_x.saturate(xi)], axis=1)

    def drive(self, z: np.ndarray) -> np.ndarray:
        """The drive words of target words ``z`` (n, 2), row n sample n's: `run` fed L zero samples
        after the last (the end of the signal, as the float predistorter takes it), L rows dropped."""
        look = self.lookahead
        if not look:
            return self.run(z)
        z = np.asarray(z, np.int64)
        return self.run(np.concatenate([z, np.zeros((look, 2), np.int64)]))[look:]

    def formats(self) -> dict:
        return {
            "z": self.fmt_z.to_dict(),
            "envelope": {"bits": self.io_bits + 1, "frac": self.fmt_z.frac, "unsigned": True},
            "tables": {
                "groups": len(self.groups),
                "nodes": int(self.tab_re.shape[1]),
                "node_step": {"words": 1 << self.step, "value": 2.0 ** (self.step - self.fmt_z.frac)},
                "bits": self.wbits,
                "frac_min": int(self.tab_frac.min()),
                "frac_max": int(self.tab_frac.max()),
            },
            "accumulator": {"bits": 64, "frac": int(self.acc_frac)},
            "x": self.fmt_x.to_dict(),
            "peak": {"word": int(self.peak_q), "value": self.peak_q / 2.0**self.fmt_x.frac},
        }

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("io_bits", "cfg", "acc_frac", "peak_q", "step")}
        d |= {"weight_bits": self.wbits, "fmt_z": self.fmt_z.frac, "fmt_x": self.fmt_x.frac}
        d |= {"gain": list(self.gain), "datapath": "tables"}
        d |= {k: np.asarray(getattr(self, k)).tolist() for k in ("groups", "tab_re", "tab_im", "tab_frac")}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> QuantGMP:
        if d.get("datapath") != "tables":
            raise UsageError("this GMP export is of an older datapath (basis terms); export the run again")
        io = int(d["io_bits"])
        arrays = {k: np.asarray(d[k], np.int64) for k in ("groups", "tab_re", "tab_im", "tab_frac")}
        return cls(
            wbits=int(d["weight_bits"]),
            io_bits=io,
            cfg=dict(d["cfg"]),
            fmt_z=QFormat(io, int(d["fmt_z"])),
            step=int(d["step"]),
            acc_frac=int(d["acc_frac"]),
            fmt_x=QFormat(io, int(d["fmt_x"])),
            peak_q=int(d["peak_q"]),
            gain=(float(d["gain"][0]), float(d["gain"][1])),
            **arrays,
        )


def gain_tables(inv: GMPInverse, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The groups (G, 2) of (m, l) and their complex gains G_ml at envelopes ``r``: (G, len(r))."""
    cfg = inv.model.cfg
    terms = cfg.terms()
    if any(lag < 0 for _, _, lag in terms):
        raise UsageError("a streaming fixed-point GMP cannot use leading terms (lead > 0)")
    groups = sorted({(m, lag) for _, m, lag in terms})
    index = {g: i for i, g in enumerate(groups)}
    tabs = np.zeros((len(groups), len(r)), np.complex128)
    for (k, m, lag), c in zip(terms, np.asarray(inv.model.coeffs, np.complex128), strict=True):
        tabs[index[(m, lag)]] += c * r ** (k - 1)
    return np.asarray(groups, np.int64).reshape(-1, 2), tabs


def quantize_gmp(
    inv: GMPInverse, targets: np.ndarray, wbits: int, io_bits: int, calls: list[np.ndarray] | None = None
) -> QuantGMP:
    """Gain tables in words for ``inv``; ``targets`` (I/Q rows) set the ranges, ``calls`` (logged
    sequences from a reset) calibrate the error-feedback rounding below 16 bits."""
    t = np.asarray(targets, np.float64)
    r_top = float(np.max(np.hypot(t[:, 0], t[:, 1])))
    fmt_z = q_for_range(TARGET_MARGIN * r_top, io_bits, 24)
    env_max = envelope_max(io_bits)
    step = max(0, int(np.ceil(np.log2(env_max / NODES))))
    nodes = (env_max >> step) + 2
    r = (np.arange(nodes) << step) / 2.0**fmt_z.frac
    groups, tabs = gain_tables(inv, r)
    used = r <= r_top + 2.0 ** (step - fmt_z.frac)  # the nodes the logged signal interpolates between
    top = np.maximum(np.abs(tabs.real[:, used]), np.abs(tabs.imag[:, used])).max(axis=1)
    tab_frac = np.array([q_for_range(v, wbits, 30).frac if v > 0 else 30 for v in top], np.int64)
    fmt_w = QFormat(wbits, 0)
    scale = np.exp2(tab_frac.astype(np.float64))[:, None]
    tab_re = fmt_w.saturate(np.floor(tabs.real * scale + 0.5))
    tab_im = fmt_w.saturate(np.floor(tabs.imag * scale + 0.5))
    fmt_x = q_for_range(inv.peak, io_bits, 24)
    own = tab_frac + fmt_z.frac + step
    # |x_re g_re - x_im g_im| per group, for any words the tables may hold (error feedback included)
    worst = np.full(len(groups), 2.0 * 2.0 ** (io_bits - 1) * 2.0 ** (wbits - 1) * 2.0**step)
    acc_frac = int(min(own.max(), 62))
    while np.sum(worst * np.exp2((acc_frac - own).astype(np.float64))) >= ACC64_LIMIT / 2:
        acc_frac -= 1
    if acc_frac < fmt_x.frac:
        raise UsageError("the GMP gains are too large for a 64-bit accumulator")
    g = complex(inv.gain)
    q = QuantGMP(
        wbits,
        io_bits,
        inv.model.cfg.to_dict(),
        fmt_z,
        step,
        groups,
        tab_re,
        tab_im,
        tab_frac,
        acc_frac,
        fmt_x,
        min(peak_word(inv.peak, fmt_x.frac), fmt_x.hi),
        (g.real, g.imag),
    )
    if wbits < PTQ_BELOW and calls:
        feedback_round(q, tabs, calls)
    log.info("GMP as %d gain tables, %d-bit words (io %d): %s", len(groups), wbits, io_bits, q.formats())
    return q


def _design(q: QuantGMP, calls: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """Gram matrix of the tables' real parameters (re then im of nodes 0..k-1 of every group) over
    the logged sequences, and k: the drive is linear in the table words, exactly, so this is the
    loss of their rounding. Nodes past k are never reached by the signal."""
    mask = (1 << q.step) - 1
    seqs, left = [], CALIBRATION_SAMPLES
    for call in calls:
        if left > 0:
            seqs.append(q.fmt_z.quantize(call[:left]))
            left -= len(seqs[-1])
    d = q.depth
    exts = [np.concatenate([np.zeros((d, 2), np.int64), z]) for z in seqs]
    mags = [isqrt(e[:, 0] * e[:, 0] + e[:, 1] * e[:, 1]) for e in exts]
    k = int(max(np.right_shift(m, q.step).max() for m in mags)) + 2
    width = len(q.groups) * k
    c = np.zeros((width, width), np.complex128)
    for ext, mag in zip(exts, mags, strict=True):
        n = len(ext) - d
        rows, cols, vals = [], [], []
        for g, (m, lag) in enumerate(q.groups):
            e = mag[d - m - lag : d - m - lag + n]
            i, f = np.right_shift(e, q.step), (e & mask) / float(1 << q.step)
            x = ext[d - m : d - m + n]
            xc = x[:, 0] + 1j * x[:, 1].astype(np.float64)
            rows += [np.arange(n)] * 2
            cols += [g * k + i, g * k + i + 1]
            vals += [xc * (1.0 - f), xc * f]
        phi = sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, width)
        )
        c += (phi.conj().T @ phi).toarray()
    # The real parameters are re and im of every node: [[Re C, -Im C], [Im C, Re C]].
    gram = np.block([[c.real, -c.imag], [c.imag, c.real]])
    return gram, k


def feedback_round(q: QuantGMP, tabs: np.ndarray, calls: list[np.ndarray]) -> None:
    """Re-round the tables of ``q`` with error feedback (GPTQ) over the logged sequences ``calls``.

    Only the nodes the signal reaches take part; the others keep their nearest words.
    """
    from hwloop.export.ptq import gptq_gram

    gram, k = _design(q, calls)
    live = np.flatnonzero(np.diag(gram) > 0)
    if not len(live):
        return
    sub = np.s_[:, :k]
    w = np.concatenate([tabs.real[sub].ravel(), tabs.imag[sub].ravel()])[live]
    frac = np.tile(np.repeat(q.tab_frac, k), 2)[live]
    words = gptq_gram(
        w[:, None], gram[np.ix_(live, live)], np.exp2(frac.astype(np.float64))[:, None], q.wbits
    )
    flat = np.concatenate([q.tab_re[sub].ravel(), q.tab_im[sub].ravel()])
    flat[live] = words[:, 0]
    half = len(flat) // 2
    q.tab_re[sub] = flat[:half].reshape(-1, k)
    q.tab_im[sub] = flat[half:].reshape(-1, k)
    log.info("GMP tables rounded with error feedback over %d live parameters", len(live))
