"""DPD through the RF bench against DPD on the amplifier directly: same training, same budget.

For each amplifier simulator (``--pas``, noise 1e-3, seed 0), the same
predistorter fit (`hwloop.strategies.dpd.fit_predistorter`, direct learning
as ``auto`` runs it, G from the peak gain of the first round, 20,000
queries on ``ofdm:n=16000,papr=8,seed=0``) runs twice:

- ``direct``: on the simulator itself (reset, then one query per stretch);
- ``bench``: on ``bench:FILE.toml`` against a fake bench (`hwloop.simulators.fake_bench`)
  with the same simulator behind its generator and analyser: a random path
  delay (integer + fractional), gain and phase, analyser noise 75 dB below
  its reference level, a free-running capture start; each stretch one looped
  ARB period, captured, aligned and averaged over 4 periods by the driver.

Both predistorters are scored on the held-out ``ofdm:n=16384,papr=8,seed=1``
through the path they were trained on (ACPR of the measured output, worse
adjacent channel), and the bench's predistorter also on the amplifier
directly. Writes ``benchmarks/results/bench_dpd.json``, stamped with the date,
commit and code it measured (benchmarks/provenance.py). Target: the bench's
ACPR within 1 dB of the direct one.

    python benchmarks/bench_dpd.py [--pas pa_wh,pa_gmp] [--queries 20000]

The bench is armed inside this process (HWLOOP_ALLOW_RF=1, operator
"benchmarks/bench_dpd.py"): it talks to a fake bench only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save, stamp

NAME = "bench_dpd"
ROOTS = [
    "hwloop.drivers.bench.device",
    "hwloop.simulators.fake_bench.bench",
    "hwloop.strategies.dpd",
    "hwloop.run",
]
NOISE = 1e-3
TRAIN = "ofdm:n=16000,papr=8,seed=0"
HELD = "ofdm:n=16384,papr=8,seed=1"


def fit_and_score(dev, budget: int) -> dict:
    """The fit on ``dev`` and its held-out score through ``dev``; returns figures and the drive."""
    from hwloop.dpd.metrics import dpd_report
    from hwloop.dpd.signals import load_signal
    from hwloop.strategies.dpd import fit_predistorter

    train, held = load_signal(TRAIN), load_signal(HELD)
    sent = [0]

    def query_sequence(x: np.ndarray) -> np.ndarray:
        """Reset, then the whole drive, clipped onto the envelope's peak as the meter does."""
        x, _ = dev.info.envelope.clip(np.asarray(x, np.float32))
        sent[0] += len(x)
        dev.reset()
        return dev.query(x)

    t0 = time.perf_counter()
    inv, details = fit_predistorter(query_sequence, train, budget, direct=True, gain="peak")
    wall = time.perf_counter() - t0
    x = inv.apply(held).astype(np.float32)
    with_dpd = dpd_report(query_sequence(x), held)
    without = dpd_report(query_sequence(held.astype(np.float32)), held)
    return {
        "acpr_dbc": with_dpd["acpr_dbc"],
        "evm_db": with_dpd["evm_db"],
        "acpr_no_dpd_dbc": without["acpr_dbc"],
        "queries_used": sent[0] - 2 * len(held),
        "fit_wall_s": round(wall, 2),
        "kept_round": details.get("dpd_kept_round"),
        "drive": x,
    }


def run_pa(pa: str, budget: int, seed: int) -> dict:
    import hwloop
    from hwloop.dpd.metrics import dpd_report
    from hwloop.dpd.signals import load_signal
    from hwloop.drivers.bench.device import open_bench
    from hwloop.simulators.fake_bench.bench import FakeBench

    uri = f"sim:{pa}{'&' if '?' in pa else '?'}noise={NOISE}&seed=0"
    direct_dev = hwloop.open_device(uri)
    direct = fit_and_score(direct_dev, budget)
    with tempfile.TemporaryDirectory() as tmp, FakeBench(uri, seed=seed) as fb:
        bench_file = Path(tmp) / "lab.toml"
        bench_file.write_text(fb.toml())
        os.environ.update(HWLOOP_ALLOW_RF="1", HWLOOP_OPERATOR="benchmarks/bench_dpd.py")
        t0 = time.perf_counter()
        dev = open_bench(f"bench:{bench_file}")
        try:
            bench = fit_and_score(dev, budget)
            cal = dev.calibration
        finally:
            dev.close()
        bench["wall_s"] = round(time.perf_counter() - t0, 2)
        played = [p for p in fb.generator.played if p.on]
        path = {"delay": fb.path.delay, "gain_db": fb.path.gain_db, "phase": fb.path.phase}
    held = load_signal(HELD)
    direct_dev.reset()
    on_pa = dpd_report(direct_dev.query(direct_dev.info.envelope.clip(bench.pop("drive"))[0]), held)[
        "acpr_dbc"
    ]
    direct.pop("drive")
    return {
        "pa": uri,
        "direct": direct,
        "bench": {**bench, "acpr_on_pa_directly_dbc": on_pa},
        "acpr_bench_minus_direct_db": round(bench["acpr_dbc"] - direct["acpr_dbc"], 3),
        "fake_path": {k: round(float(v), 4) for k, v in path.items()},
        "calibration": {
            "fraction_samples": round(float(cal["fraction"]), 4),
            "gain_db": round(float(cal["gain_db"]), 3),
            "noise_dbc": None if cal["snr_db"] is None else round(-float(cal["snr_db"]), 2),
        },
        "generator_max": {
            "peak_dbm": round(max(p.peak_dbm for p in played), 4),
            "level_dbm": round(max(p.level_dbm for p in played), 4),
            "papr_db": round(max(p.papr_db for p in played), 3),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pas", default="pa_wh,pa_gmp")
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0, help="seed of the fake bench's path")
    args = ap.parse_args()
    cells = {pa: run_pa(pa, args.queries, args.seed) for pa in args.pas.split(",")}
    data = {
        "name": NAME,
        **stamp(ROOTS),
        "machine": machine(),
        "command": f"python benchmarks/bench_dpd.py --pas {args.pas} --queries {args.queries} "
        f"--seed {args.seed}",
        "train_signal": TRAIN,
        "held_out_signal": HELD,
        "target": "bench ACPR within 1 dB of the direct training",
        "cells": cells,
        "within_1db": all(c["acpr_bench_minus_direct_db"] <= 1.0 for c in cells.values()),
    }
    save(NAME, data)
    for pa, c in cells.items():
        print(
            f"{pa}: direct {c['direct']['acpr_dbc']} dBc, bench {c['bench']['acpr_dbc']} dBc "
            f"(difference {c['acpr_bench_minus_direct_db']:+.2f} dB)",
            flush=True,
        )


if __name__ == "__main__":
    main()
