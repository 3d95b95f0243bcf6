"""Indirect learning of a GMP predistorter: fit a post-inverse of the amplifier, copy it in front.

A postdistorter fitted on the amplifier's normalised output y/G -> its input
x is copied in front of the amplifier as the predistorter (Eun and Powers
1997); rounds of drive, measure, refit close most of the gap that the first
round leaves, because each refit sees the amplifier where the predistorter
drives it. A round's sequence is a `hwloop.dpd.gmp.Stretch`. After the first
round, which drives the bare signal, `hwloop.dpd.align.choose_lookahead`
estimates the amplifier's delay and chooses the predistorter's leading taps
(0 for an amplifier whose inverse is causal).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hwloop.dpd.align import Alignment, choose_lookahead
from hwloop.dpd.fitting import ridge_fit, row_split
from hwloop.dpd.gmp import GMP, GMPConfig, GMPInverse, Stretch, features, fit_ls, peak_limit
from hwloop.dpd.metrics import acpr_db, linear_gain, nmse_db
from hwloop.dpd.signals import cplx, iq
from hwloop.errors import ShapeError, UsageError

log = logging.getLogger(__name__)

QuerySequence = Callable[[np.ndarray], np.ndarray]


@dataclass
class ILAResult:
    """What `indirect_learning` returns: the predistorter, the gain and each round's figures."""

    inverse: GMPInverse
    gain: complex
    rounds: list[dict] = field(default_factory=list)
    queries: int = 0
    pairs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (drive, answer) per round
    alignment: Alignment | None = None  # the delay and leading taps chosen after round 1 ("auto")


def resolve_gain(mode: str | float | complex, y: np.ndarray, u: np.ndarray) -> complex:
    """The target gain G from the amplifier's answer y to the undistorted signal u.

    ``peak``: |G| = max|y| / max|u|, the gain that keeps the output peak
    where the amplifier put it without predistortion, so the predistorter
    never needs more drive than u had; ``avg``: |G| = the least-squares gain;
    ``small``: |G| = the least-squares gain on samples below 10 % of the
    peak. The phase of G is always that of the least-squares gain (the
    predistorter is not asked to undo a constant rotation). A number is
    taken as G itself.
    """
    if not isinstance(mode, str):
        return complex(mode)
    yc, uc = cplx(y), cplx(u)
    g_ls = linear_gain(yc, uc)
    if mode == "peak":
        mag = float(np.abs(yc).max() / np.abs(uc).max())
    elif mode == "avg":
        mag = abs(g_ls)
    elif mode == "small":
        small = np.abs(uc) < 0.1 * np.abs(uc).max()
        if small.sum() < 16:
            raise UsageError("gain='small': fewer than 16 samples below 10 % of the peak")
        mag = abs(linear_gain(yc[small], uc[small]))
    else:
        raise UsageError(f"gain must be a number, 'peak', 'avg' or 'small', got {mode!r}")
    return mag * np.exp(1j * np.angle(g_ls))


def _rows(stretch: Stretch, cfg: GMPConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows a post-inverse in ``cfg`` may fit (past each joint's guard, and with leading taps
    not reading across the next joint), dealt four to the fit, one to choosing its ridge."""
    valid = stretch.valid & stretch.tails(cfg.future)
    fit_rows, hold_rows = row_split(len(valid), (4, 1), valid=valid)
    return valid, fit_rows, hold_rows


def _post_inverse(
    stretch: Stretch, cfg: GMPConfig, y: np.ndarray, x: np.ndarray, ridge: float | None
) -> tuple[np.ndarray, dict]:
    """Coefficients of the post-inverse y -> x in ``cfg`` (y the answer over the gain), and how its
    ridge was chosen (a fixed ``ridge``: none)."""
    valid, fit_rows, hold_rows = _rows(stretch, cfg)
    post = features(y, cfg)
    if ridge is not None:
        return fit_ls(post[valid], x[valid], ridge), {}
    rf = ridge_fit(post, x, fit_rows, hold_rows)
    return rf.coeffs, rf.info()


def indirect_learning(
    query_sequence: QuerySequence,
    u: np.ndarray | Stretch,
    cfg: GMPConfig | None = None,
    *,
    gain: str | float | complex = "peak",
    start_gain: complex = 1.0,
    iterations: int = 3,
    ridge: float | None = None,
    peak: float = 1.0,
    fs: float = 800e6,
    bw: float = 200e6,
    lookahead: int | str = 0,
) -> ILAResult:
    """Fit a GMP predistorter for target signal u (n, 2), or a `Stretch`, by indirect learning.

    ``query_sequence(x)`` resets the amplifier and returns its answer (n, 2)
    to the whole drive x; it is called ``iterations`` times with n rows each.
    Round 1 drives u / start_gain (the predistorter starts as a scaled
    identity), which is also where the gain G is measured (see `resolve_gain`).
    ``ridge=None`` chooses each post-inverse's ridge on a fifth of the rows
    held out of its fit (`hwloop.dpd.fitting.ridge_fit`); a number is a fixed
    ridge (`fit_ls`). ``lookahead``: the predistorter's leading taps, or
    ``"auto"``: chosen after round 1 (`hwloop.dpd.align.choose_lookahead`).
    """
    cfg = cfg or GMPConfig()
    if lookahead != "auto":
        cfg = cfg.with_lookahead(int(lookahead))
    stretch = u if isinstance(u, Stretch) else Stretch.whole(u)
    uc = stretch.u
    if iterations < 1:
        raise UsageError(f"iterations must be >= 1, got {iterations}")
    phi = stretch.basis(cfg)
    coeffs = GMP.identity(cfg, 1.0 / complex(start_gain)).coeffs
    g: complex | None = None
    result = ILAResult(GMPInverse(GMP(cfg, coeffs), peak=peak), 1.0)
    main = stretch.longest()
    for it in range(iterations):
        xc = peak_limit(phi @ coeffs, peak)
        x = iq(xc).astype(np.float64)
        y = np.asarray(query_sequence(x), np.float64)
        if y.shape != x.shape:
            raise ShapeError(f"query_sequence returned shape {y.shape} for a drive of shape {x.shape}")
        result.queries += len(x)
        result.pairs.append((x, y))
        if g is None:
            g = resolve_gain(gain, y, iq(uc))
            log.info("ILA: target gain G = %.4f at %.2f deg (%s)", abs(g), np.degrees(np.angle(g)), gain)
        yc = cplx(y)
        steady = stretch.valid
        row = {
            "round": it + 1,
            "acpr_dbc": round(acpr_db(yc[main], fs, bw), 3),
            "nmse_db": round(nmse_db(yc, uc, g), 3),
            "nmse_steady_db": round(nmse_db(yc[steady], uc[steady], g), 3),
            "clipped": int(np.sum(np.abs(xc) >= peak * (1 - 1e-6))),
        }

        def fit_post(c: GMPConfig, yc: np.ndarray = yc / g, xc: np.ndarray = xc) -> np.ndarray:
            return _post_inverse(stretch, c, yc, xc, ridge)[0]

        if it == 0 and lookahead == "auto":
            assert g is not None
            result.alignment = choose_lookahead(
                stretch, xc, yc, cfg, fit_post, peak=peak, gain=g, fs=fs, bw=bw
            )
            cfg = cfg.with_lookahead(result.alignment.lookahead)
            phi = stretch.basis(cfg)
        coeffs, info = _post_inverse(stretch, cfg, yc / g, xc, ridge)
        row.update(info)
        result.rounds.append(row)
        log.info("ILA round %d: %s", it + 1, row)
        result.inverse = GMPInverse(GMP(cfg, coeffs.copy()), peak=peak, gain=g)
    result.gain = complex(g)
    return result
