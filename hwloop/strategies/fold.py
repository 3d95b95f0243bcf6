"""Whether ILA can work: is the device one-to-one over its safe range? Measured from a surrogate.

ILA regresses inputs on outputs; where two inputs give the same output it
fits their average, which the device maps elsewhere (`sim:saleh_folded`: the
ILA inverse stalls at -26 dB whatever the budget). A smooth map that is not
one-to-one on a connected range folds: the sign of its Jacobian determinant
det J = det dF/dx changes. A surrogate F_hat fitted on uniform pairs gives J
at each of them (no query spent), and

    fold_share = (sum of |det J| over the rows with the minority sign) / (sum of |det J|)

is the share of the reachable output volume, counted with multiplicity, that
the device covers a second time with its orientation reversed: about 0 on a
one-to-one device, 0.17 on `saleh_folded` (its falling branch covers [0.8, 1]
of the rising branch's [0, 1]). Weighting by |det J| keeps the wiggles of a
surrogate on a flat, saturated stretch (|det J| near 0) from reading as a fold.

What it cannot see: a map that is many-to-one without folding (one that wraps
an annulus twice, like z^2 on I/Q) keeps the sign of det J. A device with
more inputs than outputs is never one-to-one (its preimages are continua);
with more outputs than inputs the determinant is not defined and the check
reports nothing (``one_to_one`` None: ILA is not ruled out).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

FOLD_SHARE = 0.02  # folded above this share of |det J| with the minority sign, by more than 2 SE
NEIGHBOURS = 8  # the rows `branch_rows` may join each row to
FOLD_DIP = 0.2  # ... when det J between them stays above this share of the smaller end's
# ... checked at this many points between them. At 8, on three of the nine sim:mimo3_folded runs
# of benchmarks/matrix.py the piece kept took 44 to 173 rows past two folds (a segment crossing
# two folds close together has its negative stretch between two checked points) and the run
# ended 16 to 19 dB behind the others; at 32 it kept 0 to 6 such rows.
SEGMENT_POINTS = 32


@dataclass(frozen=True)
class FoldCheck:
    """The Jacobian-sign measurement on ``pairs`` uniform inputs."""

    pairs: int
    fold_share: float | None  # None: not measurable (more outputs than inputs)
    fold_share_se: float
    reason: str = ""  # why the answer needs no measurement, if it does not

    @property
    def one_to_one(self) -> bool | None:
        if self.reason == "more inputs than outputs":
            return False
        if self.fold_share is None:
            return None
        return not (self.fold_share > FOLD_SHARE and self.fold_share > 2 * self.fold_share_se)

    def to_dict(self) -> dict:
        share = None if self.fold_share is None else round(self.fold_share, 4)
        out = {
            "pairs": self.pairs,
            "fold_share": share,
            "fold_share_se": None if self.fold_share is None else float(f"{self.fold_share_se:.3g}"),
            "threshold": FOLD_SHARE,
            "one_to_one": self.one_to_one,
        }
        return {**out, "reason": self.reason} if self.reason else out


def jacobian_det(surrogate: keras.Model, x: np.ndarray) -> np.ndarray:
    """det dF_hat/dx per row (square Jacobians only)."""
    xs = tf.constant(np.asarray(x, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(xs)
        ys = surrogate(xs)
    jac = tape.batch_jacobian(ys, xs).numpy().astype(np.float64)
    return np.linalg.det(jac)


def share_with_minority_sign(det: np.ndarray) -> tuple[float, float]:
    """(fold share, its standard error): the ratio estimator sum(a) / sum(b) with a = |det| on
    the minority sign, b = |det|, and its delta-method standard error."""
    b = np.abs(np.asarray(det, np.float64))
    n, total = len(b), float(np.sum(b))
    if n < 8 or total <= 0:
        return 0.0, float("inf")
    pos = float(np.sum(b[det > 0]))
    a = np.where(det > 0, b, 0.0) if pos <= total - pos else np.where(det < 0, b, 0.0)
    share = float(np.sum(a)) / total
    se = float(np.std(a - share * b) / (np.mean(b) * np.sqrt(n)))
    return share, se


def check_fold(x: np.ndarray, surrogate: keras.Model) -> FoldCheck:
    """Whether the surrogate, fitted on the uniform inputs x, folds over them."""
    return _determinant(x, surrogate)[1]


def _determinant(x: np.ndarray, surrogate: keras.Model) -> tuple[np.ndarray | None, FoldCheck]:
    """det J of the surrogate at the rows of x (None where it is not defined), and the fold check."""
    n, in_dim = np.shape(x)
    out_dim = int(surrogate.output_shape[-1])
    if in_dim > out_dim:
        return None, FoldCheck(n, None, 0.0, "more inputs than outputs")
    if out_dim > in_dim:
        return None, FoldCheck(n, None, 0.0, "more outputs than inputs: the Jacobian has no determinant")
    det = jacobian_det(surrogate, x)
    return det, FoldCheck(n, *share_with_minority_sign(det))


def main_branch(x: np.ndarray, surrogate: keras.Model) -> tuple[np.ndarray, FoldCheck]:
    """The rows of x on the device's main branch, and the fold check they come from.

    On a folded device, the connected piece of the rows where det J has the majority sign (by
    |det J|) that holds the most |det J| (`branch_rows`): the orientation that covers most of
    the reachable outputs, one branch of it. On the folded devices measured (`saleh_folded`,
    `saleh_iq_folded`, the held-out folds of benchmarks/matrix_devices.py) that branch alone
    reaches every output, so ILA on its pairs alone is one-to-one: a start on one branch, where
    ILA on all pairs averages the preimages. Every row when the device is not measured folded,
    or the determinant is not defined.
    """
    det, check = _determinant(x, surrogate)
    if det is None or check.one_to_one is not False:
        return np.ones(len(x), bool), check
    return branch_rows(x, det, surrogate), check


def branch_rows(x: np.ndarray, det: np.ndarray, surrogate: keras.Model) -> np.ndarray:
    """Of the rows where det J has the majority sign (by |det J|), the connected piece holding
    the most |det J|.

    One sign can span several branches: with three folded channels, the rows past two of their
    peaks keep the sign of the rows past none (`sim:mimo3_folded`: ILA on the sign's 1,022 of
    2,000 pairs -14.5 dB closed loop, on the piece's 379 -38.1; on the other folded devices the
    piece is the sign's rows, within a row). Two rows are joined when they are neighbours
    (`neighbour_pairs`, in the box scaled to the unit cube) and det J along the segment between
    them stays above `FOLD_DIP` times the smaller of its ends (at `SEGMENT_POINTS` points): a
    fold, det J = 0, lies between two rows it does not join, even when the segment crosses two
    folds and comes back to the same sign.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    x = np.asarray(x, np.float64)
    n = len(x)
    sign = 1.0 if float(np.sum(np.abs(det[det > 0]))) >= float(np.sum(np.abs(det[det < 0]))) else -1.0
    oriented = sign * det
    span = np.ptp(x, axis=0)
    rows, cols = neighbour_pairs((x - x.min(axis=0)) / np.where(span > 0, span, 1.0)).T
    keep = (oriented[rows] > 0) & (oriented[cols] > 0)
    rows, cols = rows[keep], cols[keep]
    floor = FOLD_DIP * np.minimum(oriented[rows], oriented[cols])
    for f in np.linspace(0.0, 1.0, SEGMENT_POINTS + 2)[1:-1]:
        along = sign * _det_in_chunks(surrogate, x[rows] + f * (x[cols] - x[rows]))
        joined = along >= floor
        rows, cols, floor = rows[joined], cols[joined], floor[joined]
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    mass = np.bincount(label, weights=np.clip(oriented, 0.0, None))
    return (label == int(np.argmax(mass))) & (oriented > 0)


def neighbour_pairs(unit: np.ndarray) -> np.ndarray:
    """Pairs (i, j), i < j, of rows that may be joined: each row's `NEIGHBOURS` nearest and, with
    one input, each row and the next along it, which joins rows across a gap in the sampling
    (nearest neighbours alone split a branch there: on `sim:saleh_folded` with 1,080 uniform
    rows a gap of 0.021 in x cut [0, 1] in two). With more inputs the nearest neighbours of
    uniform rows join across their gaps (Delaunay edges were tried: their long edges skipped
    the folds between the branches of `sim:mimo3_folded`)."""
    from scipy.spatial import cKDTree

    n, dims = unit.shape
    k = min(NEIGHBOURS, n - 1)
    _, near = cKDTree(unit).query(unit, k + 1)
    pairs = [np.stack([np.repeat(np.arange(n), k), near[:, 1:].ravel()], axis=1)]
    if dims == 1:
        order = np.argsort(unit[:, 0])
        pairs.append(np.stack([order[:-1], order[1:]], axis=1))
    return np.unique(np.sort(np.concatenate(pairs), axis=1), axis=0)


def _det_in_chunks(surrogate: keras.Model, x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    if len(x) == 0:
        return np.zeros(0)
    return np.concatenate([jacobian_det(surrogate, x[i : i + chunk]) for i in range(0, len(x), chunk)])
