"""Digital predistortion: textbook GMP indirect learning against direct learning, same budget.

For each simulator (sim:pa_gmp, sim:pa_wh, sim:pa_wh?thermal=0.03; noise
1e-3, seed 0) and each signal, `hwloop.strategies.dpd.fit_predistorter`
gets 50,000 queries (each round one sequence sent after a reset) and a
training signal, twice:

- indirect learning, the textbook baseline (what ``--strategy ila`` runs):
  3 rounds of 16,000 samples, 48,000 queries;
- direct learning (what ``auto`` runs): 11 rounds of 4,545 samples, two of
  indirect learning, then nine measured rounds with Gauss-Newton steps
  through a GMP surrogate, the best measured round kept; 49,995 queries.

Each predistorter is then scored on a held-out signal the fit never saw:

- ``dpa``: train on the first 16,000 samples of DPA_200MHz's train input,
  score on its test input (7,680 samples);
- ``ofdm``: train on ``ofdm:n=16000,papr=8,seed=0``, score on
  ``ofdm:n=16384,papr=8,seed=1`` (200 MHz channel at 800 MS/s).

Scoring sends the held-out signal without and with predistortion (counted
apart as ``eval_queries``). ACPR of the measured (noisy) output; EVM and
NMSE against the least-squares linear gain (so no-DPD figures are not
penalised for a gain offset), and NMSE against the gain G the predistorter
was trained to (``nmse_target_db``). Also the noise-free output's ACPR.
GMP predistorter: `hwloop.dpd.gmp.GMPConfig` defaults (92 terms), peak |x| <= 1,
G from the peak gain of the first, undistorted round.

    python benchmarks/dpd.py [--sims pa_gmp,pa_wh,...] [--signals dpa,ofdm] [--force]
    python benchmarks/dpd.py --sweep   # direct learning: rounds against stretch length, GMP size
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
BUDGET = 50_000
SWEEP = (3, 5, 7, 9, 11)


def _signals(name: str) -> tuple[np.ndarray, np.ndarray]:
    from hwloop.dpd.signals import dpa200, load_signal

    if name == "dpa":
        return dpa200("train")[0][:N_TRAIN], dpa200("test")[0]
    if name == "ofdm":
        return load_signal(f"ofdm:n={N_TRAIN},papr=8,seed=0"), load_signal("ofdm:n=16384,papr=8,seed=1")
    raise SystemExit(f"unknown signal {name!r} (dpa, ofdm)")


def _score(dev, query_sequence, held: np.ndarray, x: np.ndarray, gain: complex) -> dict:
    from hwloop.dpd.metrics import acpr_db, dpd_report, nmse_db

    y = query_sequence(x)
    r = dpd_report(y, held)
    r["nmse_target_db"] = round(nmse_db(y, held, gain), 3)
    r["acpr_clean_dbc"] = round(acpr_db(dev.clean_sequence(x)), 3)
    return r


def run_method(
    sim: str, signal: str, direct: bool, rounds: int | None = None, textbook_gmp: bool = False
) -> dict:
    """One predistorter fit (``hwloop.strategies.dpd.fit_predistorter``) and its held-out score."""
    import hwloop
    from hwloop.dpd.gmp import GMPConfig
    from hwloop.strategies.dpd import fit_predistorter

    train, held = _signals(signal)
    dev = hwloop.open_device(f"sim:{sim}{'&' if '?' in sim else '?'}noise={NOISE}&seed=0")

    sent = [0]

    def query_sequence(x: np.ndarray) -> np.ndarray:
        sent[0] += len(x)
        dev.reset()
        return dev.query(x.astype(np.float32))

    t0 = time.perf_counter()
    inv, details = fit_predistorter(
        query_sequence,
        train,
        BUDGET,
        direct=direct,
        gain="peak",
        rounds=rounds,
        cfg=GMPConfig() if textbook_gmp else None,
    )
    wall = time.perf_counter() - t0
    queries = sent[0]
    x = inv.apply(held)
    out = _score(dev, query_sequence, held, x, inv.gain)
    out.update(
        queries_used=queries,
        eval_queries=2 * len(held),
        wall_s=round(wall, 2),
        gain=[round(abs(inv.gain), 4), round(float(np.degrees(np.angle(inv.gain))), 3)],
        drive_peak=round(float(np.abs(x[:, 0] + 1j * x[:, 1]).max()), 4),
        details=details,
    )
    return out


def run_cell(sim: str, signal: str) -> dict:
    """No predistortion, textbook indirect learning and auto's direct learning, on one amplifier/signal."""
    import hwloop
    from hwloop.dpd.metrics import acpr_db, dpd_report

    _, held = _signals(signal)
    dev = hwloop.open_device(f"sim:{sim}{'&' if '?' in sim else '?'}noise={NOISE}&seed=0")
    dev.reset()
    none = dpd_report(dev.query(held.astype(np.float32)), held)
    none["acpr_clean_dbc"] = round(acpr_db(dev.clean_sequence(held)), 3)
    ila, direct = run_method(sim, signal, False), run_method(sim, signal, True)
    return {
        "no_dpd": none,
        "gmp_ila": ila,
        "gmp_direct": direct,
        "acpr_improvement_db": round(none["acpr_dbc"] - direct["acpr_dbc"], 2),
        "direct_minus_ila_acpr_db": round(direct["acpr_dbc"] - ila["acpr_dbc"], 2),
        "input_acpr_dbc": round(acpr_db(held), 3),
        "n_eval": len(held),
        "date": today(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sims", default="pa_gmp,pa_wh,pa_wh?thermal=0.03")
    ap.add_argument("--signals", default="dpa,ofdm")
    ap.add_argument("--force", action="store_true", help="re-run cells already in the results file")
    ap.add_argument(
        "--sweep",
        action="store_true",
        help="direct learning's rounds (3, 5, 7, 9, 11), and 11 rounds with the textbook 92-term GMP",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = load(NAME)
    data.setdefault("cells", {})
    data.update(
        machine=machine(),
        date=today(),
        noise=NOISE,
        seed=0,
        method="GMP: indirect learning (3 rounds) and auto's direct learning (2 + 9 rounds)",
        command="python benchmarks/dpd.py",
    )
    if args.sweep:
        sweep = data.setdefault("rounds_sweep", {})
        for sim in args.sims.split(","):
            for rounds, textbook in [(r, False) for r in SWEEP] + [(11, True)]:
                cell = run_method(sim, "ofdm", True, rounds, textbook)
                cell["gmp_terms"] = 92 if textbook else 256
                cell.pop("details")
                sweep[f"{sim}/{rounds}{'/gmp92' if textbook else ''}"] = cell
                save(NAME, data)
                print(sim, rounds, cell, flush=True)
        return
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
