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
