"""Predistortion on a held-out amplifier and signal, the way issue 22 was measured from outside.

The amplifier is `heldout_pa.HeldOutPA` (a neural memory model fitted to
OpenDPD's APA_200MHz measurements, or to DPA_200MHz: a structure neither
hwloop's simulators nor its predistorter share; noise 1e-3). Training
targets are the dataset's train split as given (gain 1, output units), sent
through ``hwloop.train`` with defaults and the budget of the cell; the
predistorter is then scored on the test split, which the fit never saw,
on a fresh device (seed 5): ACPR (Welch, worse side) and ACLR (TS 38.104
channel filter), in-band EVM and NMSE against the targets, and the peak
drive. The textbook reference (`dpd_textbook.TextbookILA`, GMP K7 M4 L2,
ridge, three rounds) gets the same targets and queries.

    python benchmarks/dpd_heldout.py [--pa apa] [--cells none,textbook/50000,auto/50000,...] [--force]
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
    "none",
    "textbook/50000",
    "textbook/20000",
    "auto/50000",
    "ila/50000",
    "surrogate/20000",
    "ila/20000",
    "auto/20000",
)


def score(pa: str, x: np.ndarray, t: np.ndarray) -> dict:
    """Figures of the drive x for targets t on a fresh held-out amplifier (seed 5)."""
    from hwloop.dpd.metrics import aclr_db, acpr_db, evm_db, nmse_db

    meta = spec(pa)
    dev = HeldOutPA(pa, NOISE, seed=5)
    x = safe(x)
    dev.reset()
    y = dev.query(x)
    z, tz = y[:, 0] + 1j * y[:, 1], t[:, 0] + 1j * t[:, 1]
    out = {
        "acpr_dbc": round(acpr_db(z, meta["fs"], meta["bw"]), 2),
        "evm_db": round(evm_db(z, tz, 1.0, meta["fs"], meta["bw"]), 2),
        "nmse_db": round(nmse_db(z, tz, 1.0), 2),
        "drive_peak": round(float(np.abs(x[:, 0] + 1j * x[:, 1]).max()), 4),
    }
    out["aclr_db"] = round(aclr_db(z, meta["fs"], meta["bw"]), 2)
    small = np.abs(tz) < 0.4 * np.abs(tz).max()
    out["nmse_small_db"] = round(nmse_db(z[small], tz[small], 1.0), 2)
    out["nmse_large_db"] = round(nmse_db(z[~small], tz[~small], 1.0), 2)
    return out


def run_cell(pa: str, cell: str) -> dict:
    sig = signals(pa)
    train, test = sig["train"], sig["test"]
    if cell == "none":
        # The signal itself as the drive, at the targets' level (gain 1): what the amplifier does alone.
        r = score(pa, test, test)
        return {**r, "queries_used": 0, "terms": 0}
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
        keys = ("queries_used", "eval_queries", "acpr_dbc", "evm_db", "nmse_db", "fs")
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
        block["cells"][cell] = {**run_cell(args.pa, cell), **stamp(ROOTS)}
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
