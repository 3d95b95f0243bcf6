"""A predistorter's figures on a scored stretch, and the bare signal's beside them at equal power.

What `hwloop.evaluate.evaluate_signal` measured (the targets t, the drive x,
the answer y, and the answer to the bare signal sent at the drive's average
power) turned into the figures a DPD engineer reads, in numpy:

- the stretch was sent after a reset, so its first samples are a cold
  start (neither the amplifier nor the predistorter has the signal's past):
  ``nmse_db`` counts them, ``nmse_steady_db`` (the headline) does not, and
  ACPR, ACLR and EVM are read on the steady part too (without the first
  ``skip`` samples);
- every figure has its standard error (``*_se_db``,
  `hwloop.dpd.metrics.acpr_se_db` and friends), which says how far a short
  stretch can be trusted;
- the no-DPD reference is one thing everywhere: the bare signal at the
  predistorted drive's average power (``*_no_dpd``), its EVM and NMSE against
  the least-squares gain once its answer is time-aligned with the targets
  (the amplifier's delay, `hwloop.dpd.align.estimate_delay`, in
  ``no_dpd_delay_samples``): the amplifier's distortion, not its latency,
  which a predistorter with leading taps takes out and a bare signal cannot;
- ``acpr_floor_dbc``: the targets' own ACPR on the same stretch, read the same
  way: what no predistorter's output can read below there, the signal's own
  adjacent-channel power (a measured signal's is not nil) plus the window's
  leakage on a stretch shorter than a Welch segment (on 350 samples at 800
  MS/s, about -44 dBc for a generated OFDM signal: there an ACPR near the
  floor says the stretch is too short to tell, not that the amplifier is
  linear);
- EVM by demodulation needs `hwloop.dpd.demod.MIN_SYMBOLS` whole symbols: with
  fewer it is None and ``evm_demod_note`` says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwloop.dpd.align import delayed, estimate_delay
from hwloop.dpd.demod import MIN_SYMBOLS, demod_evm_db, whole_symbols
from hwloop.dpd.metrics import aclr_db, acpr_db, acpr_se_db, evm_db, evm_se_db, nmse_db, nmse_se_db
from hwloop.dpd.signals import cplx

STEADY_SKIP = 32  # samples after a reset left out of the steady figures (predistorter and amplifier memory)


def _r(v: float) -> float:
    return round(float(v), 3)


def figures(y: np.ndarray, t: np.ndarray, gain: float | None, fs: float, bw: float, skip: int) -> dict:
    """ACPR, ACLR, EVM (steady part) and NMSE (all samples and steady), each with its standard
    error, of the answer y to the targets t (complex); ``gain`` None: against the least-squares
    gain (the bare signal), else that gain."""
    ys, ts = y[skip:], t[skip:]
    return {
        "acpr_dbc": _r(acpr_db(ys, fs, bw)),
        "acpr_se_db": _r(acpr_se_db(ys, fs, bw)),
        "aclr_db": _r(aclr_db(ys, fs, bw)),
        "evm_db": _r(evm_db(ys, ts, gain, fs, bw)),
        "evm_se_db": _r(evm_se_db(ys, ts, gain, fs, bw)),
        "nmse_db": _r(nmse_db(y, t, gain)),
        "nmse_steady_db": _r(nmse_db(ys, ts, gain)),
        "nmse_steady_se_db": _r(nmse_se_db(ys, ts, gain)),
    }


def bare_signal_figures(y: np.ndarray, u: np.ndarray, fs: float, bw: float, skip: int = STEADY_SKIP) -> dict:
    """`figures` of the answer y to the bare signal u (complex), the answer time-aligned with u first
    (its delay in ``delay_samples``) and scored against the least-squares gain."""
    late = estimate_delay(u, y, fs, bw)
    end = len(u) - int(np.ceil(abs(late)))  # the circular shift wraps these onto the start
    return {**figures(delayed(y, -late)[:end], u[:end], None, fs, bw, skip), "delay_samples": late}


def signal_scores(
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    y_none: np.ndarray | None,
    *,
    fs: float,
    bw: float,
    skip: int = STEADY_SKIP,
    origin: tuple[Any, int] | None = None,
) -> tuple[dict, dict]:
    """(scores, details) of the drive x (n, 2) and answer y for the targets t (output units, gain
    1), and of the bare signal's answer ``y_none`` when measured; ``origin`` (an `OFDMSpec` and
    the sample of that generated signal t starts at) adds EVM by demodulation."""
    tc, xc, yc = cplx(t), cplx(x), cplx(y)
    skip = min(skip, len(tc) // 4)
    big = np.abs(tc) >= 0.05 * np.abs(tc).max()
    scores: dict[str, Any] = {
        **figures(yc, tc, 1.0, fs, bw, skip),
        "acpr_floor_dbc": _r(acpr_db(tc[skip:], fs, bw)),
        "drive_peak": round(float(np.abs(xc).max()), 4),
        "drive_gain_max": round(float(np.max(np.abs(xc[big]) / np.abs(tc[big]))), 4),
    }
    details: dict[str, Any] = {"eval_steady_skip": skip}
    if y_none is not None:
        none = bare_signal_figures(cplx(y_none), tc, fs, bw, skip)
        details["no_dpd_delay_samples"] = none.pop("delay_samples")
        scores.update({f"{k}_no_dpd": v for k, v in none.items() if not k.endswith("_se_db")})
        scores["acpr_se_db_no_dpd"] = none["acpr_se_db"]
    if origin is not None:
        spec, at = origin
        count = whole_symbols(len(tc), spec, at)
        found = {
            "evm_demod_db": demod_evm_db(yc, spec, at, tc),
            "signal_evm_demod_db": demod_evm_db(tc, spec, at),
        }
        if y_none is not None:
            found["evm_demod_db_no_dpd"] = demod_evm_db(cplx(y_none), spec, at, tc)
        scores.update({k: None if got is None else _r(got[0]) for k, got in found.items()})
        details["evm_demod_symbols"] = count
        if count < MIN_SYMBOLS:
            details["evm_demod_note"] = (
                f"not reported: {count} whole OFDM symbols in the scored stretch, EVM by demodulation "
                f"needs {MIN_SYMBOLS} (give --eval-queries for a longer stretch)"
            )
    return scores, details
