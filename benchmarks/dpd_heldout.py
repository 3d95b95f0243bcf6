"""Predistortion on a held-out amplifier and signal, the way issue 22 was measured from outside.

The amplifier is `heldout_pa.HeldOutPA` (a neural memory model fitted to
OpenDPD's APA_200MHz measurements, or to DPA_200MHz: a structure neither
hwloop's simulators nor its predistorter share; ``apa_nmp``: the APA model
behind filters whose response is not minimum phase). Training targets are
the dataset's train split as given (gain 1, output units), sent through
``hwloop.train`` with the strategy and budget of the cell; the predistorter
is then scored on the test split, which the fit never saw, on a fresh device
(seed 5): ACPR (Welch, worse side) and ACLR (TS 38.104 channel filter),
in-band EVM and NMSE against the targets (gain 1, one for all), and the
peak drive; beside them the bare test signal at that drive's average power
(``*_no_dpd``, EVM and NMSE against the least-squares gain, time-aligned).
The textbook reference (`dpd_textbook.TextbookILA`, GMP K7 M4 L2, ridge,
three rounds) gets the same targets and queries. ``none``: the bare signal
at the average power of the first of `NONE_AT`'s drives measured.

    python benchmarks/dpd_heldout.py [--pa apa|apa_nmp] [--cells textbook/50000,auto/50000,...,none] [--force]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fresh, load, machine, save
from dpd_common import safe
from dpd_textbook import TextbookILA
from heldout_pa import HeldOutPA, signals, spec
from provenance import stamp

ROOTS = ["hwloop.run", "hwloop.strategies.dpd", "hwloop.evaluate"]  # the code a cell measures, for its stamp
NAME = "dpd_heldout"
NOISE = 3e-4  # -61 dB below the output RMS, the SNR of sim:pa_gmp and sim:pa_wh at their default noise
CELLS = (
    "textbook/50000",
    "textbook/20000",
    "auto/50000",
    "ila/50000",
    "surrogate/20000",
    "ila/20000",
    "iila/20000",
    "auto/20000",
    "none",
)
NONE_AT = ("auto/50000", "ila/50000", "ila/20000", "textbook/50000")  # whose drive power "none" takes


def _device_answer(pa: str, x: np.ndarray) -> np.ndarray:
    dev = HeldOutPA(pa, NOISE, seed=5)
    dev.reset()
    y = dev.query(safe(x))
    return y[:, 0] + 1j * y[:, 1]


def score(pa: str, x: np.ndarray, t: np.ndarray) -> dict:
    """Figures of the drive x for targets t on a fresh held-out amplifier (seed 5), and of the bare
    signal at the drive's average power."""
    from hwloop.dpd.metrics import aclr_db, acpr_db, evm_db, nmse_db
    from hwloop.dpd.scoring import STEADY_SKIP

    meta = spec(pa)
    x = safe(x)
    z, tz = _device_answer(pa, x), t[:, 0] + 1j * t[:, 1]
    out = {
        "acpr_dbc": round(acpr_db(z, meta["fs"], meta["bw"]), 2),
        "evm_db": round(evm_db(z, tz, 1.0, meta["fs"], meta["bw"]), 2),
        "nmse_db": round(nmse_db(z, tz, 1.0), 2),
        "nmse_steady_db": round(nmse_db(z[STEADY_SKIP:], tz[STEADY_SKIP:], 1.0), 2),
        "drive_peak": round(float(np.abs(x[:, 0] + 1j * x[:, 1]).max()), 4),
        "drive_rms": round(float(np.sqrt(np.mean(np.sum(x.astype(np.float64) ** 2, 1)))), 5),
    }
    out["aclr_db"] = round(aclr_db(z, meta["fs"], meta["bw"]), 2)
    small = np.abs(tz) < 0.4 * np.abs(tz).max()
    out["nmse_small_db"] = round(nmse_db(z[small], tz[small], 1.0), 2)
    out["nmse_large_db"] = round(nmse_db(z[~small], tz[~small], 1.0), 2)
    bare = bare_signal(pa, t, out["drive_rms"])
    out.update({f"{k}_no_dpd": bare[k] for k in ("acpr_dbc", "aclr_db", "evm_db", "nmse_db")})
    return out


def bare_signal(pa: str, t: np.ndarray, rms: float) -> dict:
    """The bare signal t sent at average drive power rms^2: ACPR, ACLR, and EVM and NMSE against the
    least-squares gain once the answer is time-aligned (the page's no-DPD convention)."""
    from hwloop.dpd.scoring import bare_signal_figures

    meta = spec(pa)
    tz = t[:, 0] + 1j * t[:, 1]
    x = t * (rms / float(np.sqrt(np.mean(np.abs(tz) ** 2))))
    fig = bare_signal_figures(_device_answer(pa, x), tz, meta["fs"], meta["bw"])
    return {k: round(float(v), 2) for k, v in fig.items() if not k.endswith("_se_db")}


def run_cell(pa: str, cell: str, cells: dict) -> dict:
    sig = signals(pa)
    train, test = sig["train"], sig["test"]
    if cell == "none":
        ref = next((k for k in NONE_AT if k in cells), None)
        if ref is None:
            raise SystemExit(
                f"'none' takes the drive power of one of {', '.join(NONE_AT)}: measure one first"
            )
        rms = cells[ref]["drive_rms"]
        tz = test[:, 0] + 1j * test[:, 1]
        x = test * (rms / float(np.sqrt(np.mean(np.abs(tz) ** 2))))
        r = bare_signal(pa, test, rms)
        peak = round(float(np.abs(x[:, 0] + 1j * x[:, 1]).max()), 4)
        return {**r, "drive_peak": peak, "drive_rms": rms, "drive_of": ref, "queries_used": 0, "terms": 0}
    method, budget = cell.split("/")
    budget = int(budget)
    dev = HeldOutPA(pa, NOISE, seed=0)
    t0 = time.perf_counter()
    if method == "textbook":

        def query_sequence(x: np.ndarray) -> np.ndarray:
            dev.reset()
            return dev.query(safe(x))

        pd = TextbookILA()
        used = pd.fit(query_sequence, train, budget)
        apply, extra = pd.apply, {"terms": pd.terms, "queries_used": used}
    else:
        import hwloop
        from hwloop.rundir import TrainOptions

        meta = spec(pa)
        with tempfile.TemporaryDirectory() as tmp:
            sig_file = Path(tmp) / "train.npz"
            np.savez(sig_file, x=train, fs=meta["fs"])
            res = hwloop.train(
                dev,
                strategy=method,
                queries=budget,
                seed=0,
                run_dir=Path(tmp) / "run",
                options=TrainOptions(signal=str(sig_file), bw=meta["bw"]),
            )
        m = res.metrics
        apply = res.inverse.apply
        keys = (
            "queries_used",
            "eval_queries",
            "acpr_dbc",
            "acpr_se_db",
            "aclr_db",
            "evm_db",
            "nmse_db",
            "nmse_steady_db",
            "acpr_dbc_no_dpd",
            "eval_samples",
            "fs",
        )
        extra = {
            "queries_used": m["queries_used"],
            "eval_queries": m["eval_queries"],
            "terms": len(res.inverse.model.cfg.terms()),
            "hwloop_metrics": {k: m.get(k) for k in keys},
            "dpd": {k: v for k, v in m.items() if k.startswith("dpd_") and k not in ("dpd_rounds",)},
        }
    wall = time.perf_counter() - t0
    x = apply(test)
    return {**score(pa, x, test), **extra, "wall_s": round(wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pa", default="apa")
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--tag", default="", help="store the cells under this name (a comparison run)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = load(NAME)
    key = args.pa + (f"@{args.tag}" if args.tag else "")
    block = data.setdefault(key, {"cells": {}})
    for cell in args.cells.split(","):
        if fresh(block["cells"], cell) and not args.force:
            continue
        block["cells"][cell] = {**run_cell(args.pa, cell, block["cells"]), **stamp(ROOTS)}
        block.update(
            machine=machine(),
            measured_at=block["cells"][cell]["measured_at"],
            commit=block["cells"][cell]["commit"],
            noise=NOISE,
            command=f"python benchmarks/dpd_heldout.py --pa {args.pa}",
        )
        save(NAME, data)
        print(key, cell, block["cells"][cell], flush=True)


if __name__ == "__main__":
    main()
