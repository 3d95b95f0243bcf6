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

from hwloop.dpd.gmp import GMP, GMPConfig, GMPInverse, features, fit_ls, peak_limit
from hwloop.dpd.metrics import acpr_db, nmse_db
from hwloop.dpd.signals import cplx, iq
from hwloop.errors import ShapeError, UsageError

log = logging.getLogger(__name__)

# The surrogate: richer than the predistorter (orders to 7, longer envelope memory), fitted on every pair.
SURROGATE_CFG = GMPConfig(order=7, memory=12, cross_order=5, cross_memory=4, lag=4)
SURROGATE_RIDGE = 1e-6


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


def gauss_newton_step(phi: np.ndarray, alpha: np.ndarray, beta: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Complex coefficient step dc minimising |J (phi dc) - e|^2 (real and imaginary parts free)."""
    if phi.shape[0] != e.shape[0]:
        raise ShapeError(f"basis has {phi.shape[0]} rows, residual {e.shape[0]}")
    # J(phi (a + i b)) = J(phi) a + J(i phi) b for real a, b: J is real-linear, not complex-linear.
    a = np.concatenate([jacobian_times(alpha, beta, phi), jacobian_times(alpha, beta, 1j * phi)], axis=1)
    real = np.vstack([a.real, a.imag])
    sol, *_ = np.linalg.lstsq(real, np.concatenate([e.real, e.imag]), rcond=None)
    p = phi.shape[1]
    return sol[:p] + 1j * sol[p:]


@dataclass
class DirectResult:
    """What `direct_learning` returns: the predistorter kept, and every measured round."""

    inverse: GMPInverse
    kept_round: int
    rounds: list[dict] = field(default_factory=list)
    surrogate_nmse_db: float | None = None
    queries: int = 0


def fit_gmp_surrogate(bases: list[np.ndarray], answers: list[np.ndarray], cfg: GMPConfig) -> GMP:
    """Forward GMP drive -> answer on every measured sequence (each from a reset), given each
    drive's basis ``features(drive, cfg)``, computed once per sequence by the caller."""
    return GMP(cfg, fit_ls(np.vstack(bases), np.concatenate(answers), SURROGATE_RIDGE))


def direct_learning(
    query_sequence: Callable[[np.ndarray], np.ndarray],
    u: np.ndarray,
    start: GMPInverse,
    *,
    measurements: int,
    pairs: list[tuple[np.ndarray, np.ndarray]] | None = None,
    keep: str = "best",
    step: float = 1.0,
    surrogate_cfg: GMPConfig = SURROGATE_CFG,
    fs: float = 800e6,
    bw: float = 200e6,
) -> DirectResult:
    """Refine the predistorter ``start`` for the target u (n, 2), in target units, by direct learning.

    ``measurements`` rounds each drive the reset amplifier with the current
    predistorter on u (n queries); between rounds a Gauss-Newton step through
    the surrogate moves the coefficients, so the first round measures
    ``start`` itself and the last the final step. Each step starts from the
    best round measured so far; a round that measured worse halves the step
    (a backtracking line search on the device's own error), a better one
    restores it. ``pairs`` are sequences measured earlier (drive, answer as
    I/Q arrays), which the surrogate also learns from. ``keep="best"``
    returns the round with the lowest measured error (``start`` if no step
    helped), ``keep="last"`` the last one measured.
    """
    if measurements < 1 or keep not in ("best", "last"):
        raise UsageError(f"direct_learning: measurements >= 1 and keep best|last, got {measurements}, {keep}")
    uc = cplx(np.asarray(u, np.float64))
    g, peak, cfg = complex(start.gain), start.peak, start.model.cfg
    phi = features(uc, cfg)
    bases = [features(cplx(x), surrogate_cfg) for x, _ in pairs or []]  # the surrogate's, per sequence
    answers = [cplx(y) for _, y in pairs or []]
    coeffs = start.model.coeffs.copy()
    result = DirectResult(start, 0)
    best = (np.inf, coeffs, None, None)  # (measured error, coefficients, drive, answer) of the best round
    size = step
    for r in range(measurements):
        x = peak_limit(phi @ coeffs, peak)
        y = cplx(np.asarray(query_sequence(iq(x)), np.float64))
        result.queries += len(x)
        bases.append(features(x, surrogate_cfg))
        answers.append(y)
        err = nmse_db(y, uc, g)
        result.rounds.append(
            {
                "round": r,
                "step": round(size, 4) if r else 0.0,
                "nmse_db": round(err, 3),
                "acpr_dbc": round(acpr_db(y, fs, bw), 3),
                "clipped": int(np.sum(np.abs(x) >= peak * (1 - 1e-9))),
            }
        )
        log.info("direct learning round %d: %s", r, result.rounds[-1])
        improved = err < best[0]
        if keep == "last" or improved:
            result.kept_round = r
            result.inverse = GMPInverse(GMP(cfg, coeffs.copy()), peak=peak, gain=g)
        if improved:
            best, size = (err, coeffs, x, y), step
        elif r:
            size *= 0.5  # the step overshot: a shorter one from the best round
        if r == measurements - 1:
            break
        _, base, x_b, y_b = best
        surrogate = fit_gmp_surrogate(bases, answers, surrogate_cfg)
        result.surrogate_nmse_db = round(nmse_db(surrogate(x_b), y_b, 1.0), 3)
        alpha, beta = gmp_jacobian(surrogate, x_b)
        coeffs = base + size * gauss_newton_step(phi, alpha / g, beta / g, uc - y_b / g)
    return result
