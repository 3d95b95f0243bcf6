"""Digital predistortion baseline: GMP indirect learning on the I/Q amplifier simulators.

For each simulator (sim:pa_gmp, sim:pa_wh; noise 1e-3, seed 0) and each
signal, `hwloop.gmp.indirect_learning` spends 3 rounds of 16,000 samples
(48,000 training queries, each round one sequence sent after a reset) on a
training stretch of the signal; the predistorter is then scored on a
held-out stretch the fit never saw:

- ``dpa``: train on the first 16,000 samples of DPA_200MHz's train input,
  score on its test input (7,680 samples);
- ``ofdm``: train on ``ofdm:n=16000,papr=8,seed=0``, score on
  ``ofdm:n=16384,papr=8,seed=1`` (200 MHz channel at 800 MS/s).

Scoring sends the held-out signal without and with predistortion (counted
apart as ``eval_queries``). ACPR of the measured (noisy) output; EVM and
NMSE against the least-squares linear gain (so no-DPD figures are not
penalised for a gain offset), and NMSE against the gain G the predistorter
was trained to (``nmse_target_db``). Also the noise-free output's ACPR.
GMP predistorter: `hwloop.gmp.GMPConfig` defaults (92 terms), peak |x| <= 1,
G from the peak gain of the first, undistorted round.

    python benchmarks/dpd.py [--sims pa_gmp,pa_wh] [--signals dpa,ofdm] [--force]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load, machine, save, today

NAME = "dpd"
NOISE = 1e-3
N_TRAIN = 16_000
ROUNDS = 3


def _signals(name: str) -> tuple[np.ndarray, np.ndarray]:
    from hwloop.signals import dpa200, load_signal

    if name == "dpa":
        return dpa200("train")[0][:N_TRAIN], dpa200("test")[0]
    if name == "ofdm":
        return load_signal(f"ofdm:n={N_TRAIN},papr=8,seed=0"), load_signal("ofdm:n=16384,papr=8,seed=1")
    raise SystemExit(f"unknown signal {name!r} (dpa, ofdm)")


def run_cell(sim: str, signal: str) -> dict:
    """One indirect-learning run and its held-out score."""
    import hwloop
    from hwloop.dpd_metrics import acpr_db, dpd_report, nmse_db
    from hwloop.gmp import GMPConfig, indirect_learning

    train, held = _signals(signal)
    dev = hwloop.open_device(f"sim:{sim}?noise={NOISE}&seed=0")

    def query_sequence(x: np.ndarray) -> np.ndarray:
        dev.reset()
        return dev.query(x.astype(np.float32))

    t0 = time.perf_counter()
    res = indirect_learning(query_sequence, train, GMPConfig(), iterations=ROUNDS)
    wall = time.perf_counter() - t0
    x = res.inverse.apply(held)
    y_none, y_dpd = query_sequence(held), query_sequence(x)
    none, dpd = dpd_report(y_none, held), dpd_report(y_dpd, held)
    dpd["nmse_target_db"] = round(nmse_db(y_dpd, held, res.gain), 3)
    none["acpr_clean_dbc"] = round(acpr_db(dev.clean_sequence(held)), 3)
    dpd["acpr_clean_dbc"] = round(acpr_db(dev.clean_sequence(x)), 3)
    return {
        "no_dpd": none,
        "gmp_ila": dpd,
        "acpr_improvement_db": round(none["acpr_dbc"] - dpd["acpr_dbc"], 2),
        "input_acpr_dbc": round(acpr_db(held), 3),
        "rounds": res.rounds,
        "gain": [round(abs(res.gain), 4), round(float(np.degrees(np.angle(res.gain))), 3)],
        "queries_used": res.queries,
        "eval_queries": 2 * len(held),
        "n_train": len(train),
        "n_eval": len(held),
        "drive_peak": round(float(np.abs(x[:, 0] + 1j * x[:, 1]).max()), 4),
        "wall_s": round(wall, 2),
        "date": today(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sims", default="pa_gmp,pa_wh")
    ap.add_argument("--signals", default="dpa,ofdm")
    ap.add_argument("--force", action="store_true", help="re-run cells already in the results file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = load(NAME)
    data.setdefault("cells", {})
    data.update(
        machine=machine(),
        date=today(),
        noise=NOISE,
        seed=0,
        method="GMP indirect learning, 3 rounds",
        command="python benchmarks/dpd.py",
    )
    for sim in args.sims.split(","):
        for signal in args.signals.split(","):
            key = f"{sim}/{signal}"
            if key in data["cells"] and not args.force:
                continue
            data["cells"][key] = run_cell(sim, signal)
            save(NAME, data)
            print(key, data["cells"][key], flush=True)


if __name__ == "__main__":
    main()
