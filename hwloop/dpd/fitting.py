"""Conditioned least squares for DPD fits: scaled columns, ridge chosen on held-out rows, row splits.

A GMP basis of orders to 7 on an oversampled signal is far from orthogonal:
its columns differ in power by orders of magnitude and neighbouring taps are
nearly collinear, so an undamped solve returns huge coefficients that cancel
on the rows they were fitted on and spike anywhere else. `ridge_fit` scales
every column to unit RMS (the Jacobi preconditioner; on the scaled basis a
ridge is a Levenberg-Marquardt damping in Marquardt's diagonal form), takes
one SVD of the fitting rows, and picks the ridge from a grid by the error on
rows the fit did not see; the final solve uses every row with that ridge.

Rows are split in blocks of consecutive samples (`row_split`), so each part
covers the whole stretch, and a block's samples, correlated by the signal's
oversampling, stay on one side of the split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from hwloop.errors import ShapeError, UsageError

log = logging.getLogger(__name__)

RIDGES = tuple(10.0 ** np.arange(-10.0, 0.5, 0.5))  # relative to unit-power columns
BLOCK = 128  # samples a block of the row split
TIE_SE = 1.0  # `least_tied`: hold-out errors within this many standard errors are tied


@dataclass(frozen=True)
class RidgeFit:
    """A conditioned least-squares solution and how it was chosen."""

    coeffs: np.ndarray
    ridge: float  # relative ridge on unit-RMS columns (lambda = ridge * rows)
    holdout_nmse_db: float  # error on the held-out rows at that ridge, relative to their target power
    condition: float  # condition number of the scaled fitting rows

    def info(self) -> dict:
        return {
            "ridge": float(f"{self.ridge:.3g}"),
            "holdout_nmse_db": round(self.holdout_nmse_db, 3),
            "condition": float(f"{self.condition:.3g}"),
        }


def row_split(n: int, parts: tuple[int, ...], block: int = BLOCK, valid: np.ndarray | None = None) -> list:
    """Boolean masks over n rows, blocks of ``block`` rows dealt round-robin by weight: ``(3, 1)``
    gives three blocks to the first mask, then one to the second, and again. Rows where ``valid``
    is False belong to no mask."""
    if n < 1 or not parts or min(parts) < 1:
        raise UsageError(f"row_split: need n >= 1 and positive weights, got {n}, {parts}")
    owner = np.repeat(np.arange(len(parts)), parts)
    which = owner[(np.arange(n) // block) % len(owner)]
    ok = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    return [(which == i) & ok for i in range(len(parts))]


def _eig(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of A^H A (the normal equations: a few times cheaper than an SVD of the
    tall A, and as accurate at the ridges of the grid on unit-RMS columns)."""
    w, v = np.linalg.eigh(a.conj().T @ a)
    return np.maximum(w, 0.0), v


def ridge_fit(
    a: np.ndarray,
    b: np.ndarray,
    fit_rows: np.ndarray,
    hold_rows: np.ndarray,
    ridges: tuple[float, ...] = RIDGES,
    refit: bool = True,
    tie_blocks: np.ndarray | None = None,
) -> RidgeFit:
    """x minimising |A x - b|^2 + lam |D x|^2 (D the column RMS), lam chosen on ``hold_rows``.

    Real or complex A (n, p) and b (n,). The ridge is the grid value whose
    solution on ``fit_rows`` predicts ``hold_rows`` best; with ``refit`` the
    returned coefficients are solved on both row sets with that ridge.
    ``tie_blocks`` (a block number per row): the smallest ridge whose
    hold-out error the rows cannot tell from the best's (`least_tied`)
    instead, for a Levenberg-Marquardt step whose gain the hold-out error
    barely sees.
    """
    if a.ndim != 2 or b.shape != (a.shape[0],):
        raise ShapeError(f"ridge_fit: A (n, p) and b (n,), got {a.shape} and {b.shape}")
    fit_rows, hold_rows = np.asarray(fit_rows, bool), np.asarray(hold_rows, bool)
    if fit_rows.sum() < a.shape[1]:
        raise UsageError(f"ridge_fit: {int(fit_rows.sum())} rows cannot fit {a.shape[1]} coefficients")
    scale = np.sqrt(np.mean(np.abs(a[fit_rows | hold_rows]) ** 2, axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    sa = a / scale
    w, v = _eig(sa[fit_rows])
    vb = v.conj().T @ (sa[fit_rows].conj().T @ b[fit_rows])
    n_fit = int(fit_rows.sum())
    hb, ha = b[hold_rows], sa[hold_rows]
    power = max(float(np.sum(np.abs(hb) ** 2)), 1e-300)
    per_row = np.array([np.abs(ha @ (v @ (vb / (w + r * n_fit))) - hb) ** 2 for r in ridges])
    errs = per_row.sum(axis=1)
    pick = int(np.argmin(errs)) if hold_rows.any() else 0
    if tie_blocks is not None and hold_rows.any():
        blocks = np.unique(np.asarray(tie_blocks)[hold_rows], return_inverse=True)[1]
        per_block = np.stack([np.bincount(blocks, e) for e in per_row])
        pick = least_tied(per_block, pick)
    err, r = float(errs[pick]) if hold_rows.any() else 0.0, ridges[pick]
    cond = float(np.sqrt(w[-1] / max(w[0], 1e-300)))
    if refit:
        both = fit_rows | hold_rows
        w, v = _eig(sa[both])
        x = v @ ((v.conj().T @ (sa[both].conj().T @ b[both])) / (w + r * int(both.sum())))
    else:
        x = v @ (vb / (w + r * n_fit))
    nmse = 10 * np.log10(max(err, 1e-300) / power) if hold_rows.any() else float("nan")
    log.debug("ridge_fit: ridge %.1e, hold-out %.2f dB, condition %.2e", r, nmse, cond)
    return RidgeFit(x / scale, float(r), float(nmse), cond)


def least_tied(per_block: np.ndarray, best: int, tie_se: float = TIE_SE) -> int:
    """The first row of ``per_block`` (candidates x blocks of hold-out error, ordered least damped
    first) whose total exceeds row ``best``'s by no more than ``tie_se`` standard errors of the
    blocks' paired difference: the boldest candidate the held-out rows cannot tell from the best."""
    for i in range(best):
        d = per_block[i] - per_block[best]
        if d.size > 1 and d.sum() <= tie_se * np.sqrt(d.size) * d.std(ddof=1):
            return i
    return best


def spread_windows(n: int, length: int, count: int, must: int | None = None) -> list[tuple[int, int]]:
    """``count`` windows of ``length`` samples spread evenly over [0, n), no overlap, one of them
    centred on sample ``must`` (the signal's peak, so the fit sees the whole amplitude range)."""
    if length * count > n:
        count = max(1, n // length)
    if count < 1 or length < 1:
        raise UsageError(f"spread_windows: {count} windows of {length} samples do not fit in {n}")
    starts = list(np.linspace(0, n - length, count).round().astype(int))
    if must is not None:
        centred = int(np.clip(must - length // 2, 0, n - length))
        nearest = int(np.argmin([abs(s - centred) for s in starts]))
        starts[nearest] = centred
        starts = sorted(starts)
        for i in range(1, count):  # push apart what the move made overlap, then pull back inside
            starts[i] = max(starts[i], starts[i - 1] + length)
        for i in range(count - 1, -1, -1):
            starts[i] = min(starts[i], n - length * (count - i))
    return [(int(s), int(s) + length) for s in starts]


@dataclass
class Normal:
    """Normal equations of a least-squares problem, summed over blocks of rows as they arrive:
    the fitting rows' and the held-out rows' Gram matrices kept apart, so `solve` can choose the
    ridge on the held-out ones without the rows themselves (the surrogate's log only grows)."""

    gram_fit: np.ndarray
    rhs_fit: np.ndarray
    gram_hold: np.ndarray
    rhs_hold: np.ndarray
    power_hold: float = 0.0
    rows: int = 0

    @classmethod
    def empty(cls, p: int) -> Normal:
        z = np.zeros((p, p), complex)
        return cls(z, np.zeros(p, complex), z.copy(), np.zeros(p, complex))

    def add(self, a: np.ndarray, b: np.ndarray, hold_every: int = 5) -> None:
        """Rows a (n, p), b (n,): every ``hold_every``-th block of `BLOCK` rows is held out."""
        fit, hold = row_split(len(b), (hold_every - 1, 1))
        for rows, gram, rhs in ((fit, self.gram_fit, self.rhs_fit), (hold, self.gram_hold, self.rhs_hold)):
            ar = a[rows]
            gram += ar.conj().T @ ar
            rhs += ar.conj().T @ b[rows]
        self.power_hold += float(np.sum(np.abs(b[hold]) ** 2))
        self.rows += len(b)

    def solve(self, ridges: tuple[float, ...] = RIDGES) -> RidgeFit:
        """As `ridge_fit` (unit-RMS columns, ridge chosen on the held-out rows, refit on all)."""
        gram = self.gram_fit + self.gram_hold
        scale = np.sqrt(np.maximum(np.real(np.diag(gram)) / max(self.rows, 1), 1e-300))
        outer = np.outer(scale, scale)
        gf, gh = self.gram_fit / outer, self.gram_hold / outer
        bf, bh = self.rhs_fit / scale, self.rhs_hold / scale
        w, v = np.linalg.eigh(gf)
        n_fit = np.real(np.trace(gf)) / len(scale)  # unit-RMS columns: about the fitting rows
        best = (np.inf, ridges[0])
        vb = v.conj().T @ bf
        for r in ridges:
            x = v @ (vb / (w + r * n_fit))
            err = float(np.real(x.conj() @ gh @ x) - 2 * np.real(x.conj() @ bh)) + self.power_hold
            if err < best[0]:
                best = (err, r)
        err, r = best
        eye = np.eye(len(scale))
        x = np.linalg.solve(gram / outer + r * self.rows * eye, (self.rhs_fit + self.rhs_hold) / scale)
        cond = float(np.sqrt(max(w.max(), 1e-300) / max(w.min(), 1e-300)))
        nmse = 10 * np.log10(max(err, 1e-300) / max(self.power_hold, 1e-300))
        return RidgeFit(x / scale, float(r), float(nmse), cond)
