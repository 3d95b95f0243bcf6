"""Direct learning of a GMP predistorter: the amplifier forward, a learned GMP surrogate backward.

Indirect learning (`hwloop.dpd.gmp.indirect_learning`) fits a *post*-inverse of
the amplifier and copies it in front; where the GMP cannot invert the
amplifier exactly (a Wiener-Hammerstein chain, saturation, noise on the
regressors) the copied post-inverse is not the best pre-inverse. Direct
learning minimises what DPD is judged by, the amplifier's own output error
on the signal,

    min_c  | F(Phi(u) c) / G - u |^2      (u the target, Phi(u) the GMP basis, F the amplifier)

by Gauss-Newton steps. Each round drives the reset amplifier with the current
predistorter's whole drive x = Phi(u) c and measures its answer y: the
residual e = u - y / G comes from the device (the forward pass). The step
needs F's Jacobian, which no device has; it comes from a surrogate F_hat, a
forward GMP fitted by least squares on every (drive, answer) sequence the run
has measured (the backward pass), so

    delta_c = argmin | J_Fhat(x) Phi(u) delta_c / G - e |^2,   c <- c + step * delta_c.

A wrong surrogate only bends the step's direction; the residual it reduces is
the device's, and a step the device measures as worse is taken back and
halved (each step starts from the best round measured so far).

The Jacobian of a GMP in x is banded and not holomorphic (|x| enters), so it
is kept as two sets of Wirtinger coefficients,
delta_y[n] = sum_j alpha_j[n] delta_x[n-j] + beta_j[n] conj(delta_x[n-j])
(`gmp_jacobian`), checked against finite differences in the tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hwloop.dpd.fitting import BLOCK, RIDGES, Normal, RidgeFit, ridge_fit, row_split
from hwloop.dpd.gmp import GMP, GMPConfig, GMPInverse, Stretch, features, peak_limit
from hwloop.dpd.judge import Judgement, contenders, judge, keep_round
from hwloop.dpd.metrics import acpr_db, nmse_db
from hwloop.dpd.readings import OwnACPR
from hwloop.dpd.signals import cplx, iq
from hwloop.errors import ShapeError, UsageError

log = logging.getLogger(__name__)

# The surrogate: richer than the predistorter (orders to 7, longer envelope memory), fitted on every pair.
SURROGATE_CFG = GMPConfig(order=7, memory=12, cross_order=5, cross_memory=4, lag=4)
LM_DAMPING = tuple(10.0 ** np.arange(-8.0, 1.5, 0.5))  # Levenberg-Marquardt damping grid, scaled columns
GAIN_FLOOR = 0.05  # the drive gain is bounded where |u| >= 5 % of the peak target
GAIN_BOUND = 1.5  # ... to this many times the warm start's largest drive gain
OOB_WEIGHT = 1.0  # out-of-band error weight in steps and judge (1: plain NMSE; 10 lost 1.6 dB ACPR on pa_gmp)
SPLIT = (3, 1)  # row blocks outside the judged window: step fit, damping choice


def gmp_jacobian(model: GMP, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wirtinger Jacobian of ``model`` at the sequence z (from a reset): alpha, beta (depth+1, n).

    A perturbation dz changes the output by
    dy[n] = sum_j alpha[j, n] dz[n-j] + beta[j, n] conj(dz[n-j]).
    For a term c z[n-m] |z[n-m-l]|^(k-1): d/dz[n-m] = c |r|^(k-1); with r = z[n-m-l],
    d/dr = c z[n-m] (k-1)/2 |r|^(k-3) conj(r) and d/conj(r) = c z[n-m] (k-1)/2 |r|^(k-3) r.
    """
    cfg = model.cfg
    if cfg.lead:
        raise UsageError("gmp_jacobian: leading terms are not causal")
    z = np.asarray(z, np.complex128)
    d, n = cfg.depth, len(z)
    ext = np.concatenate([np.zeros(d, complex), z])
    mag = np.abs(ext)
    alpha = np.zeros((d + 1, n), complex)
    beta = np.zeros((d + 1, n), complex)

    def at(delay: int) -> slice:
        return slice(d - delay, d - delay + n)

    for c, (k, m, lag) in zip(model.coeffs, cfg.terms(), strict=True):
        if k == 1:
            alpha[m] += c
            continue
        s, r, a = ext[at(m)], ext[at(m + lag)], mag[at(m + lag)]
        alpha[m] += c * a ** (k - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            half = np.where(a > 0, c * s * 0.5 * (k - 1) * a ** (k - 3.0), 0.0)
        alpha[m + lag] += half * np.conj(r)
        beta[m + lag] += half * r
    return alpha, beta


def jacobian_times(alpha: np.ndarray, beta: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """J dz for a Wirtinger Jacobian (alpha, beta) and perturbations dz (n,) or (n, p)."""
    dz = np.asarray(dz, np.complex128)
    flat = dz.ndim == 1
    v = dz[:, None] if flat else dz
    out = np.zeros_like(v)
    for j in range(alpha.shape[0]):
        shifted = np.zeros_like(v)
        shifted[j:] = v[: len(v) - j]
        out += alpha[j][:, None] * shifted + beta[j][:, None] * np.conj(shifted)
    return out[:, 0] if flat else out


def _real_system(phi: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """J (phi dc) as a real matrix on [Re dc, Im dc]: J is real-linear, not complex-linear, so
    J(phi (a + i b)) = J(phi) a + J(i phi) b for real a, b."""
    return np.concatenate([jacobian_times(alpha, beta, phi), jacobian_times(alpha, beta, 1j * phi)], axis=1)


def damped_step(
    phi: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    e: np.ndarray,
    fit_rows: np.ndarray,
    hold_rows: np.ndarray,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, RidgeFit]:
    """Levenberg-Marquardt step: |W (J phi dc - e)|^2 + lam |D dc|^2 on ``fit_rows`` (D the column
    RMS of W J phi), lam the smallest on the grid whose prediction of the residual of ``hold_rows``
    is tied with the best's (`hwloop.dpd.fitting.least_tied`: within a standard error over blocks
    of rows). The step's gain is mostly out of band, where the held-out error, measured noise in
    band and out, barely sees it: the best by that error alone was a damping of 3e-4 on one noise
    seed of the non-minimum-phase amplifier with the measured signal (benchmarks/matrix.py), a
    step that left the adjacent power 5 dB above the 3e-8 and 1e-7 the other seeds chose. ``weight`` is
    W's frequency response on the FFT bins of the sequence (`band_weight`; None: W = 1)."""
    if phi.shape[0] != e.shape[0]:
        raise ShapeError(f"basis has {phi.shape[0]} rows, residual {e.shape[0]}")
    a = _real_system(phi, alpha, beta)
    if weight is not None:
        a, e = weighted(a, weight), weighted(e, weight)
    rows = np.concatenate([fit_rows, fit_rows]), np.concatenate([hold_rows, hold_rows])
    blocks = np.tile(np.arange(len(e)) // BLOCK, 2)  # a block's real and imaginary rows together
    rf = ridge_fit(np.vstack([a.real, a.imag]), np.concatenate([e.real, e.imag]), *rows, ridges=LM_DAMPING,
                   tie_blocks=blocks)  # fmt: skip
    p = phi.shape[1]
    return rf.coeffs[:p] + 1j * rf.coeffs[p:], rf


def band_weight(n: int, fs: float, bw: float, oob: float) -> np.ndarray:
    """Amplitude response of the error weighting W on an n-point FFT: 1 inside the channel
    (|f| <= bw / 2), sqrt(oob) outside, so out-of-band error, which ACPR and ACLR judge and
    in-band EVM does not, weighs ``oob`` times more in the step's least squares."""
    return np.where(np.abs(np.fft.fftfreq(n, 1.0 / fs)) <= bw / 2, 1.0, np.sqrt(oob))


def weighted(v: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """W v along time (axis 0), circularly: the sequence's FFT times ``weight``."""
    shape = (-1,) + (1,) * (v.ndim - 1)
    return np.fft.ifft(np.fft.fft(v, axis=0) * weight.reshape(shape), axis=0)


def drive_gain(x: np.ndarray, u: np.ndarray, floor: float = GAIN_FLOOR) -> float:
    """Largest |x[n]| / |u[n]| over targets above ``floor`` times the peak target: the
    predistorter's gain, whose bound keeps the drive from spiking where the target is small."""
    mag = np.abs(u)
    big = mag >= floor * mag.max()
    return float(np.max(np.abs(x[big]) / mag[big])) if big.any() else 0.0


@dataclass
class DirectResult:
    """What `direct_learning` returns: the predistorter kept, and every measured round."""

    inverse: GMPInverse
    kept_round: int
    rounds: list[dict] = field(default_factory=list)
    surrogate_nmse_db: float | None = None
    queries: int = 0
    gain_bound: float = 0.0  # the drive gain no step may exceed
    shrunk: int = 0  # steps halved to keep inside the gain bound
    damping: list[float] = field(default_factory=list)  # Levenberg-Marquardt damping chosen per step
    surrogate_ridge: float | None = None
    tied_with_best: list[int] = field(default_factory=list)  # rounds the keep rule could not tell apart


def fit_gmp_surrogate(
    bases: list[np.ndarray], answers: list[np.ndarray], cfg: GMPConfig, ridge: float | None = None
) -> tuple[GMP, RidgeFit]:
    """Forward GMP drive -> answer on every measured sequence (each from a reset), given each
    drive's basis ``features(drive, cfg)``, computed once per sequence by the caller. The ridge is
    chosen on a fifth of the rows held out (``ridge=None``) or given."""
    normal = Normal.empty(len(cfg.terms()))
    for a, b in zip(bases, answers, strict=True):
        normal.add(a, b)
    rf = normal.solve(RIDGES if ridge is None else (ridge,))
    return GMP(cfg, rf.coeffs), rf


def direct_learning(
    query_sequence: Callable[[np.ndarray], np.ndarray],
    u: np.ndarray | Stretch,
    start: GMPInverse,
    *,
    measurements: int,
    pairs: list[tuple[np.ndarray, np.ndarray]] | None = None,
    keep: str = "best",
    step: float = 1.0,
    surrogate_cfg: GMPConfig = SURROGATE_CFG,
    fs: float = 800e6,
    bw: float = 200e6,
    oob_weight: float | None = None,
    first_round: int = 0,
) -> DirectResult:
    """Refine the predistorter ``start`` for the target u (n, 2) or `Stretch`, in target units.

    ``measurements`` rounds each drive the reset amplifier with the current
    predistorter on the stretch; between rounds a damped Gauss-Newton
    (Levenberg-Marquardt) step through the surrogate moves the coefficients.
    Every round is judged (`hwloop.dpd.judge.judge`: ACPR, ACLR, EVM, NMSE and
    their uncertainty) on one window of the stretch that no step is fitted on
    (`Stretch.judged`); the other rows are dealt in blocks to the step's fit
    and to choosing its damping (`SPLIT`). Each step starts from the round
    the keep rule would keep so far (`hwloop.dpd.judge.keep_round`, latest
    first); a round that does not become it halves the step, one that does
    restores it. A step whose drive gain (`drive_gain`) exceeds `GAIN_BOUND`
    times the warm start's is halved before it is sent. ``keep="best"``
    returns the round the keep rule keeps (the latest of those whose ACPR,
    and then EVM, the figures cannot tell from the best); ``keep="last"`` the
    last one. Rounds are
    numbered from ``first_round`` (after the warm start's own rounds).
    """
    if measurements < 1 or keep not in ("best", "last"):
        raise UsageError(f"direct_learning: measurements >= 1 and keep best|last, got {measurements}, {keep}")
    stretch = u if isinstance(u, Stretch) else Stretch.whole(u)
    uc = stretch.u
    g, peak, cfg = complex(start.gain), start.peak, start.model.cfg
    phi = stretch.basis(cfg)
    judged_rows = stretch.judged()
    own = OwnACPR.of(stretch.signal, fs, bw)
    usable = stretch.rows(cold=True) & stretch.tails(cfg.future)
    usable[judged_rows] = False
    fit_rows, hold_rows = row_split(len(uc), SPLIT, valid=usable)
    oob = OOB_WEIGHT if oob_weight is None else oob_weight
    weight = None if oob == 1 else band_weight(len(uc), fs, bw, oob)
    normal = Normal.empty(len(surrogate_cfg.terms()))  # the surrogate's normal equations, per sequence
    answers = [cplx(y) for _, y in pairs or []]
    for (x_p, _), y_p in zip(pairs or [], answers, strict=True):
        normal.add(features(cplx(x_p), surrogate_cfg), y_p)
    coeffs = start.model.coeffs.copy()
    bound = GAIN_BOUND * drive_gain(peak_limit(phi @ coeffs, peak), uc)
    result = DirectResult(start, 0, gain_bound=round(bound, 4))
    tried: list[np.ndarray] = []
    judged: list[Judgement] = []
    best = 0
    size, sur_ridge = step, None
    for r in range(measurements):
        x = peak_limit(phi @ coeffs, peak)
        y = cplx(np.asarray(query_sequence(iq(x)), np.float64))
        result.queries += len(x)
        normal.add(features(x, surrogate_cfg), y)
        answers.append(y)
        judged.append(judge(y[judged_rows] / g, uc[judged_rows], fs=fs, bw=bw, own=own))
        tried.append(coeffs.copy())
        steady = stretch.valid
        result.rounds.append(
            {
                "round": first_round + r,
                "step": round(size, 4) if r else 0.0,
                "nmse_db": round(nmse_db(y, uc, g), 3),
                "nmse_steady_db": round(nmse_db(y[steady], uc[steady], g), 3),
                **judged[-1].info(),
                "acpr_dbc": round(acpr_db(y[stretch.longest()], fs, bw), 3),
                "clipped": int(np.sum(np.abs(x) >= peak * (1 - 1e-6))),
                "drive_gain": round(drive_gain(x, uc), 4),
            }
        )
        if r:  # the next step starts from the round kept so far; one that did not win halves it
            best = keep_round(judged)
            size = step if best == r else size * 0.5
        result.rounds[-1]["better_than_best"] = bool(best == r and r > 0)
        log.info("direct learning round %d: %s", first_round + r, result.rounds[-1])
        if r == measurements - 1:
            break
        base = tried[best]
        x_b, y_b = peak_limit(phi @ base, peak), answers[len(answers) - len(tried) + best]
        rf = normal.solve(RIDGES if sur_ridge is None else (sur_ridge,))
        surrogate, sur_ridge = GMP(surrogate_cfg, rf.coeffs), rf.ridge
        result.surrogate_nmse_db = round(nmse_db(surrogate(x_b), y_b, 1.0), 3)
        result.surrogate_ridge = sur_ridge
        alpha, beta = gmp_jacobian(surrogate, x_b)
        delta, lm = damped_step(phi, alpha / g, beta / g, uc - y_b / g, fit_rows, hold_rows, weight)
        result.damping.append(lm.ridge)
        for _ in range(8):  # the gain bound: a step that would spike the drive is shortened first
            coeffs = base + size * delta
            if drive_gain(peak_limit(phi @ coeffs, peak), uc) <= bound:
                break
            size *= 0.5
            result.shrunk += 1
        else:
            coeffs = base
    pick = len(tried) - 1 if keep == "last" else keep_round(judged)
    result.kept_round = pick
    result.tied_with_best = contenders(judged)
    result.inverse = GMPInverse(GMP(cfg, tried[pick].copy()), peak=peak, gain=g)
    return result
