"""Generalised memory polynomial (GMP): basis, least-squares fit, indirect-learning predistortion.

The GMP (Morgan et al., IEEE Trans. Signal Process. 2006) models a power
amplifier, or its inverse, on complex baseband samples x[n] as a linear
combination of

- aligned terms   x[n-m] |x[n-m]|^(k-1),    k = 1..K,     m = 0..M-1
- lagging terms   x[n-m] |x[n-m-l]|^(k-1),  k = 2..Kc,    m = 0..Mc-1, l = 1..L
- leading terms   x[n-m] |x[n-m+l]|^(k-1),  the same with future envelopes (``lead``)

so y[n] = sum_i c_i phi_i[n]: linear in the complex coefficients c, which a
least-squares solve finds (`fit_ls`, a fixed small ridge; the predistortion
fits use `hwloop.dpd.fitting.ridge_fit` instead: scaled columns, the ridge
chosen on rows held out of the fit). The
lagging terms catch the envelope memory (thermal, bias network) that aligned
terms miss. Leading envelope terms need future samples, so a streaming
predistorter (`GMPInverse`) refuses them; the basis offers them for offline
behavioural modelling.

Leading taps (``lookahead`` L): every delay counts from sample n + L instead
of n, so the aligned terms reach L samples into the future. An amplifier
whose linear response delays the signal by a fraction of a sample, or is not
minimum phase (a zero outside the unit circle), has no causal inverse: its
post-inverse needs the answer's next samples, and the predistorter copied
from it the target's. A predistorter with L leading taps streams with a
latency of L samples (`GMPStream` returns each drive sample once the L
targets after it have arrived).

A round's sequence is a `Stretch`: windows spread over the signal, sent
back to back after one reset, so one fit sees the signal's statistics rather
than one stretch of it. Indirect learning is `hwloop.dpd.ila`, direct
learning `hwloop.dpd.direct`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from hwloop.dpd.signals import cplx, iq
from hwloop.errors import ShapeError, UsageError

log = logging.getLogger(__name__)

Term = tuple[int, int, int]  # (order k, delay m, envelope lag l): x[n-m] |x[n-m-l]|^(k-1)


@dataclass(frozen=True)
class GMPConfig:
    """Orders and memory depths of a GMP.

    The defaults (92 terms) are the predistorter that did best among a few
    tried on the DPA_200MHz-fitted simulators (benchmarks/dpd.py): the
    amplifier's memory at 800 MS/s spans about ten samples, while orders
    above 5 added nothing.
    """

    order: int = 5  # K, aligned terms k = 1..K
    memory: int = 12  # M, aligned delays m = 0..M-1
    cross_order: int = 3  # Kc, cross terms k = 2..Kc (1: none)
    cross_memory: int = 4  # Mc, delays of the carrier sample in cross terms
    lag: int = 4  # L, lagging envelope lags l = 1..L
    lead: int = 0  # leading envelope lags (non-causal, offline only)
    even: bool = True  # include even orders (|x| to odd powers)
    lookahead: int = 0  # leading taps: delays count from n + lookahead (a latency of that many samples)

    def __post_init__(self) -> None:
        if self.order < 1 or self.memory < 1:
            raise UsageError(f"GMP order and memory must be >= 1, got {self.order} and {self.memory}")
        if min(self.cross_order, self.cross_memory) < 1 or min(self.lag, self.lead) < 0:
            raise UsageError("GMP cross_order and cross_memory must be >= 1, lag and lead >= 0")
        if not 0 <= self.lookahead < self.memory:
            raise UsageError(
                f"GMP lookahead must be in [0, memory), got {self.lookahead} (memory {self.memory})"
            )

    def orders(self, top: int, start: int = 1) -> list[int]:
        return [k for k in range(start, top + 1) if self.even or k % 2 == 1]

    def terms(self) -> list[Term]:
        """Every basis term, aligned first, then lagging, then leading."""
        out: list[Term] = [(k, m, 0) for k in self.orders(self.order) for m in range(self.memory)]
        cross = self.orders(self.cross_order, 2)
        out += [
            (k, m, lag) for k in cross for m in range(self.cross_memory) for lag in range(1, self.lag + 1)
        ]
        out += [
            (k, m, -lag) for k in cross for m in range(self.cross_memory) for lag in range(1, self.lead + 1)
        ]
        return out

    @property
    def depth(self) -> int:
        """How many past samples an evaluation needs (before sample n)."""
        return max(0, max(k_m_l[1] + max(k_m_l[2], 0) for k_m_l in self.terms()) - self.lookahead)

    @property
    def future(self) -> int:
        """How many samples after sample n an evaluation needs."""
        return self.lookahead + self.lead

    def to_dict(self) -> dict:
        return asdict(self)

    def with_lookahead(self, lookahead: int) -> GMPConfig:
        """The same orders and memory with ``lookahead`` leading taps."""
        return GMPConfig(**{**self.to_dict(), "lookahead": int(lookahead)})


def features(
    z: np.ndarray, cfg: GMPConfig, history: np.ndarray | None = None, future: np.ndarray | None = None
) -> np.ndarray:
    """Complex basis matrix (n, n_terms) of complex samples z (n,).

    ``history`` holds the ``cfg.depth`` samples before z (oldest first; zeros,
    a reset device, if None); ``future`` the samples after it that leading
    taps and leading envelope terms see (up to ``cfg.future``; zeros past what
    is given: the end of the signal).
    """
    z = np.asarray(z, np.complex128)
    if z.ndim != 1:
        raise ShapeError(f"GMP features need a 1-D complex sequence, got shape {z.shape}")
    d, f = cfg.depth, cfg.future
    past = np.zeros(d, complex) if history is None else np.asarray(history, complex)
    if past.shape != (d,):
        raise ShapeError(f"GMP history must hold {d} samples, got {past.shape}")
    ahead = np.zeros(0, complex) if future is None else np.asarray(future, complex)[:f]
    ext = np.concatenate([past, z, ahead, np.zeros(f - len(ahead), complex)])
    mag = np.abs(ext)
    n, base = len(z), d + cfg.lookahead  # sample n sits at ext[d + n]; delay m reads ext[base + n - m]

    def at(delay: int) -> slice:
        return slice(base - delay, base - delay + n)

    cols = [ext[at(m)] * (mag[at(m + lag)] ** (k - 1) if k > 1 else 1.0) for k, m, lag in cfg.terms()]
    return np.stack(cols, axis=1)


def fit_ls(phi: np.ndarray, target: np.ndarray, ridge: float = 1e-4) -> np.ndarray:
    """Complex coefficients c minimising |phi c - target|^2 + lam |c|^2, lam = ridge * mean column power."""
    if phi.ndim != 2 or target.shape != (phi.shape[0],):
        raise ShapeError(f"fit_ls: phi (n, p) and target (n,), got {phi.shape} and {target.shape}")
    if phi.shape[0] < phi.shape[1]:
        raise UsageError(f"fit_ls: {phi.shape[0]} samples cannot fit {phi.shape[1]} coefficients")
    lam = ridge * float(np.mean(np.sum(np.abs(phi) ** 2, axis=0)))
    a = np.vstack([phi, np.sqrt(lam) * np.eye(phi.shape[1])]) if lam > 0 else phi
    b = np.concatenate([target, np.zeros(phi.shape[1] if lam > 0 else 0, complex)])
    coeffs, *_ = np.linalg.lstsq(a, b, rcond=None)
    return coeffs


@dataclass
class GMP:
    """A GMP with fitted coefficients: complex samples in, complex samples out."""

    cfg: GMPConfig
    coeffs: np.ndarray  # complex (len(cfg.terms()),)

    def __post_init__(self) -> None:
        self.coeffs = np.asarray(self.coeffs, np.complex128)
        if self.coeffs.shape != (len(self.cfg.terms()),):
            raise ShapeError(f"GMP needs {len(self.cfg.terms())} coefficients, got {self.coeffs.shape}")

    @classmethod
    def identity(cls, cfg: GMPConfig, gain: complex = 1.0) -> GMP:
        """y[n] = gain * x[n]."""
        c = np.zeros(len(cfg.terms()), complex)
        c[cfg.terms().index((1, 0, 0))] = gain
        return cls(cfg, c)

    @classmethod
    def fit(cls, z_in: np.ndarray, z_out: np.ndarray, cfg: GMPConfig, ridge: float = 1e-4) -> GMP:
        """Least-squares GMP from complex sequence z_in (from a reset) to z_out."""
        return cls(cfg, fit_ls(features(z_in, cfg), np.asarray(z_out, np.complex128), ridge))

    def __call__(
        self, z: np.ndarray, history: np.ndarray | None = None, future: np.ndarray | None = None
    ) -> np.ndarray:
        return features(z, self.cfg, history, future) @ self.coeffs

    def lift(self, cfg: GMPConfig) -> GMP:
        """The same map in a richer basis: shared terms keep their coefficients, new ones are 0."""
        if cfg.lookahead != self.cfg.lookahead:
            raise UsageError(f"GMP.lift: lookahead {self.cfg.lookahead} cannot become {cfg.lookahead}")
        index = {term: i for i, term in enumerate(cfg.terms())}
        c = np.zeros(len(index), complex)
        for coeff, term in zip(self.coeffs, self.cfg.terms(), strict=True):
            if term not in index:
                raise UsageError(f"GMP.lift: term {term} is not in the target basis")
            c[index[term]] = coeff
        return GMP(cfg, c)


def peak_limit(z: np.ndarray, peak: float) -> np.ndarray:
    """Scale samples with |z| > peak back onto the circle |z| = peak (phase kept)."""
    peak = peak * (1 - 5e-7)  # a float32 copy of the sample must not round past the peak either
    mag = np.abs(z)
    return np.where(mag > peak, z * (peak / np.maximum(mag, 1e-300)), z)


@dataclass
class Stretch:
    """Training targets as one device sequence: windows of the signal sent back to back after a reset.

    The predistorter's basis on each window takes its history from the
    signal itself, as it would when deployed; the first ``guard`` rows of
    each window, where the amplifier still remembers the previous window,
    belong to no fit and no score (`valid`). Direct learning also keeps the
    first rows of a first window that starts at the signal's first sample
    (``rows(cold=True)``): amplifier and predistorter both start from rest
    there, as a deployed run does, and a step that never saw that start
    answered it with a transient (on pa_gmp: 96 % of the held-out error in
    its first 32 samples). Indirect learning leaves them out: its
    post-inverse fits them badly (a ridge 300 times larger on pa_gmp).
    """

    signal: np.ndarray  # complex (N,): the whole training signal (targets)
    windows: list[tuple[int, int]]
    guard: int = 0

    @classmethod
    def whole(cls, u: np.ndarray) -> Stretch:
        z = cplx(np.asarray(u, np.float64))
        return cls(z, [(0, len(z))])

    @property
    def u(self) -> np.ndarray:
        return np.concatenate([self.signal[a:b] for a, b in self.windows])

    @property
    def valid(self) -> np.ndarray:
        return self.rows(cold=False)

    def rows(self, cold: bool) -> np.ndarray:
        """The rows past each window's guard; with ``cold``, also the first window's first rows when
        it starts where the signal does (a cold start, as deployed)."""
        ok = np.ones(sum(b - a for a, b in self.windows), bool)
        at = 0
        for a, b in self.windows:
            if at or a or not cold:
                ok[at : at + min(self.guard, b - a)] = False
            at += b - a
        return ok

    def basis(self, cfg: GMPConfig) -> np.ndarray:
        """The predistorter's basis on each window, its past and (leading taps) its future taken
        from the signal around the window, as a deployed predistorter sees them."""
        d = cfg.depth
        parts = []
        for a, b in self.windows:
            past = self.signal[max(0, a - d) : a]
            past = np.concatenate([np.zeros(d - len(past), complex), past])
            parts.append(features(self.signal[a:b], cfg, past, self.signal[b : b + cfg.future]))
        return np.vstack(parts)

    def tails(self, count: int) -> np.ndarray:
        """False on the last ``count`` rows of each window: where a post-inverse with ``count``
        leading taps would read the answer to the next window's first samples."""
        ok = np.ones(sum(b - a for a, b in self.windows), bool)
        at = 0
        for a, b in self.windows:
            at += b - a
            if count:
                ok[max(at - count, at - (b - a)) : at] = False
        return ok

    def judged(self) -> slice:
        """The contiguous rows a round is judged on, which no step is fitted on: the last window that
        does not hold the signal's largest sample, past its guard; with one window, its last quarter."""
        lengths = [b - a for a, b in self.windows]
        starts = np.cumsum([0, *lengths])
        if len(self.windows) == 1:
            return slice(int(starts[1] - lengths[0] // 4), int(starts[1]))
        peak = int(np.argmax(np.abs(self.signal)))
        pick = next(
            i
            for i in range(len(self.windows) - 1, -1, -1)
            if not self.windows[i][0] <= peak < self.windows[i][1]
        )
        return slice(int(starts[pick] + min(self.guard, lengths[pick])), int(starts[pick + 1]))

    def spans(self) -> list[list[int]]:
        return [[a, b] for a, b in self.windows]

    def longest(self) -> slice:
        """The rows of the longest window past its guard: where a spectrum of the sequence is
        not the joints' (ACPR of a round)."""
        at, best = 0, (0, 0)
        for a, b in self.windows:
            lo, hi = at + min(self.guard, b - a), at + b - a
            best = max(best, (hi - lo, lo))
            at += b - a
        return slice(best[1], best[1] + best[0])


class GMPStream:
    """A predistorter run chunk by chunk, its past samples carried between chunks.

    With leading taps (``lookahead`` L) the drive of a sample needs the L
    targets after it: `send` returns the drive of every sample whose L next
    targets have arrived (L fewer than sent, in all), `flush` the last L as
    at the end of a signal. That is the predistorter's latency.
    """

    def __init__(self, inverse: GMPInverse) -> None:
        self.inverse = inverse
        cfg = inverse.model.cfg
        self.history = np.zeros(cfg.depth, complex)
        self.pending = np.zeros(0, complex)  # targets received whose drive is not out yet

    def _run(self, z: np.ndarray, future: np.ndarray) -> np.ndarray:
        out = self.inverse.model(z, self.history, future)
        d = len(self.history)
        self.history = np.concatenate([self.history, z])[len(z) :] if d else self.history
        return iq(peak_limit(out, self.inverse.peak))

    def send(self, t: np.ndarray) -> np.ndarray:
        """Drive (m', 2) for the next target samples (m, 2): m' = m without leading taps."""
        look = self.inverse.model.cfg.lookahead
        z = np.concatenate([self.pending, cplx(t) if len(t) else np.zeros(0, complex)])
        ready = max(0, len(z) - look)
        self.pending = z[ready:]
        if not ready:
            return np.zeros((0, 2), np.float32)
        return self._run(z[:ready], z[ready:])

    def flush(self) -> np.ndarray:
        """The drive of the last samples sent, the targets after them taken as zero (the end)."""
        z, self.pending = self.pending, np.zeros(0, complex)
        return self._run(z, np.zeros(0, complex)) if len(z) else np.zeros((0, 2), np.float32)


@dataclass
class GMPInverse:
    """A causal GMP predistorter: target I/Q sequence (n, 2) -> drive (n, 2), |drive| <= peak.

    ``apply`` starts from a reset (zero past) and takes the targets after the
    end as zero; `stream` carries the past across chunks and gives the same
    samples (``lookahead`` of them later).
    """

    model: GMP
    peak: float = 1.0
    gain: complex = 1.0  # the linear gain G the inverse was trained to (target = G u)
    in_dim: int = 2
    out_dim: int = 2
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model.cfg.lead:
            raise UsageError("a streaming predistorter cannot use leading GMP terms (set lead=0)")
        if self.peak <= 0:
            raise UsageError(f"peak must be > 0, got {self.peak}")

    def stream(self) -> GMPStream:
        return GMPStream(self)

    @property
    def latency(self) -> int:
        """Samples a streamed drive lags its target by: the leading taps."""
        return self.model.cfg.lookahead

    def apply(self, t: np.ndarray) -> np.ndarray:
        stream = self.stream()
        x = stream.send(np.asarray(t, np.float64))
        return np.concatenate([x, stream.flush()]) if self.latency else x

    __call__ = apply
