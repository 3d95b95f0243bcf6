"""The signal path of a DPD run: the signal, its crest factor reduction, and the part held out.

signal (times the gain) -> CFR (`hwloop.dpd.cfr`, optional) -> the training
targets and, apart, the targets the predistorter is scored on: the end of
the signal (``holdout``) or another signal (``eval_signal``, through the
same CFR). For a generated OFDM signal the path also says which symbols the
scored targets are (`origin`), so the evaluation can demodulate them
(`hwloop.dpd.demod`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwloop.dpd.cfr import apply_cfr
from hwloop.dpd.signals import OFDMSpec, holdout_split, load_signal, parse_ofdm


@dataclass
class SignalPath:
    """Training targets, scored targets (None: score on the training ones), and what was done."""

    train: np.ndarray
    held: np.ndarray | None
    origin: tuple[OFDMSpec, int] | None = None  # generated signal the scored targets start in, and where
    info: dict = field(default_factory=dict)


def ofdm_spec(text: str | None) -> OFDMSpec | None:
    """The generator spec of ``--signal ofdm:...``, None for files and datasets."""
    if text is None:
        return None
    low = text.strip().lower()
    return parse_ofdm(text if ":" in text else "ofdm:") if low.startswith("ofdm") else None


def signal_path(
    targets: np.ndarray,
    *,
    signal: str,
    gain: float,
    holdout: float,
    eval_signal: str | None = None,
    cfr: str = "none",
    cfr_papr: float = 8.0,
    fs: float,
    bw: float,
) -> SignalPath:
    """The path for ``targets`` (the signal ``signal`` times ``gain``, already loaded)."""
    t, info = apply_cfr(targets, cfr, cfr_papr, fs, bw)
    if eval_signal is not None:
        held, _ = apply_cfr(gain * load_signal(eval_signal), cfr, cfr_papr, fs, bw)
        spec, offset, train = ofdm_spec(eval_signal), 0, t
    else:
        train, held = holdout_split(t, holdout)
        spec, offset = ofdm_spec(signal), len(train) if held is not None else 0
    info = {**info, "eval_held_out": held is not None}
    return SignalPath(train, held, None if spec is None else (spec, offset), info)


def run_signal(opts: Any) -> np.ndarray:
    """The targets to linearise (the signal times --gain), its band checked: before any device.

    ``opts`` is a run's `hwloop.rundir.TrainOptions` (read by attribute: dpd stays below rundir)."""
    from hwloop.dpd.metrics import check_band
    from hwloop.dpd.signals import resolve_fs

    check_band(resolve_fs(opts.fs, opts.signal), opts.bw)
    return opts.gain * load_signal(opts.signal)


def run_signal_path(opts: Any, signal: np.ndarray) -> SignalPath:
    """Training and scored targets: --cfr, then --eval-signal or the end of --signal (--holdout)."""
    from hwloop.dpd.signals import resolve_fs

    fs = resolve_fs(opts.fs, opts.signal)
    keys = ("signal", "gain", "holdout", "eval_signal", "cfr", "cfr_papr")
    return signal_path(signal, **{k: getattr(opts, k) for k in keys}, fs=fs, bw=opts.bw)
