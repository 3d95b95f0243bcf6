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
  `hwloop.dpd.readings`), which says how far a short
  stretch can be trusted;
- the no-DPD reference is one thing everywhere: the bare signal at the
  predistorted drive's average power (``*_no_dpd``), its EVM and NMSE against
  the least-squares gain once its answer is time-aligned with the targets
  (the amplifier's delay, `hwloop.dpd.align.estimate_delay`, in
  ``no_dpd_delay_samples``): the amplifier's distortion, not its latency,
  which a predistorter with leading taps takes out and a bare signal cannot;
- ACPR and ACLR are read through the output's error against its target
  (`hwloop.dpd.readings.acpr_reading`), plus the target signal's own
  adjacent power read on all the scored targets (``acpr_floor_dbc``: a
  measured signal's is not nil, and no output reads below it): the ratio a
  Welch estimate of the output reads on a long stretch, without the window's
  leakage of the main channel that floors it on a short one (about -34 dBc on
  350 samples of a generated 200 MHz OFDM signal at 800 MS/s);
- EVM by demodulation needs `hwloop.dpd.demod.MIN_SYMBOLS` whole symbols: with
  fewer it is None and ``evm_demod_note`` says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwloop.dpd.align import delayed, estimate_delay
from hwloop.dpd.demod import MIN_SYMBOLS, demod_evm_db, whole_symbols
from hwloop.dpd.metrics import evm_db, linear_gain, nmse_db
from hwloop.dpd.readings import OwnACPR, aclr_by_error_db, acpr_by_error, evm_se_db, nmse_se_db
from hwloop.dpd.signals import cplx

STEADY_SKIP = 32  # samples after a reset left out of the steady figures (predistorter and amplifier memory)


def _r(v: float) -> float:
    return round(float(v), 3)


def figures(
    y: np.ndarray,
    t: np.ndarray,
    gain: float | None,
    fs: float,
    bw: float,
    skip: int,
    own: OwnACPR | None = None,
) -> dict:
    """ACPR and ACLR (read through the error, `hwloop.dpd.readings.acpr_reading`, with the
    signal's ``own`` share), EVM (steady part) and NMSE (all samples and steady), each with its
    standard error, of the answer y to the targets t (complex); ``gain`` None: against the
    least-squares gain (the bare signal), else that gain."""
    ys, ts = y[skip:], t[skip:]
    g = linear_gain(ys, ts) if gain is None else complex(gain)
    acpr, acpr_se = acpr_by_error(ys, g * ts, fs, bw, None if own is None else own.sides)
    return {
        "acpr_dbc": _r(acpr),
        "acpr_se_db": _r(acpr_se),
        "aclr_db": _r(aclr_by_error_db(ys, g * ts, fs, bw, None if own is None else own.aclr_db)),
        "evm_db": _r(evm_db(ys, ts, gain, fs, bw)),
        "evm_se_db": _r(evm_se_db(ys, ts, gain, fs, bw)),
        "nmse_db": _r(nmse_db(y, t, gain)),
        "nmse_steady_db": _r(nmse_db(ys, ts, gain)),
        "nmse_steady_se_db": _r(nmse_se_db(ys, ts, gain)),
    }


def bare_signal_figures(
    y: np.ndarray, u: np.ndarray, fs: float, bw: float, skip: int = STEADY_SKIP, own: OwnACPR | None = None
) -> dict:
    """`figures` of the answer y to the bare signal u (complex), the answer time-aligned with u first
    (its delay in ``delay_samples``) and scored against the least-squares gain."""
    late = estimate_delay(u, y, fs, bw)
    end = len(u) - int(np.ceil(abs(late)))  # the circular shift wraps these onto the start
    return {**figures(delayed(y, -late)[:end], u[:end], None, fs, bw, skip, own), "delay_samples": late}


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
    signal: np.ndarray | None = None,
) -> tuple[dict, dict]:
    """(scores, details) of the drive x (n, 2) and answer y for the targets t (output units, gain
    1), and of the bare signal's answer ``y_none`` when measured; ``origin`` (an `OFDMSpec` and
    the sample of that generated signal t starts at) adds EVM by demodulation; ``signal``: all the
    targets the stretch was cut from, whose own ACPR is read on them (default: t)."""
    tc, xc, yc = cplx(t), cplx(x), cplx(y)
    skip = min(skip, len(tc) // 4)
    own = OwnACPR.of(tc if signal is None else signal, fs, bw)
    big = np.abs(tc) >= 0.05 * np.abs(tc).max()
    scores: dict[str, Any] = {
        **figures(yc, tc, 1.0, fs, bw, skip, own),
        "acpr_floor_dbc": _r(own.acpr_dbc),
        "drive_peak": round(float(np.abs(xc).max()), 4),
        "drive_gain_max": round(float(np.max(np.abs(xc[big]) / np.abs(tc[big]))), 4),
    }
    details: dict[str, Any] = {"eval_steady_skip": skip}
    if y_none is not None:
        none = bare_signal_figures(cplx(y_none), tc, fs, bw, skip, own)
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
