"""Strategies x simulators x budgets: final closed-loop NMSE and queries to reach -40 dB.

Every cell is one `hwloop.train` run (seed 0, default options) on a fresh
simulator; results accumulate in benchmarks/results/strategies.json so an
interrupted sweep resumes where it stopped. Simulators are scored twice: as
measured on the noisy device (the contract's closed_loop_nmse_db) and
against the noise-free answer (closed_loop_nmse_clean_db), which is what
"reaching -40 dB" uses, since a noisy device's measured floor can sit above it.

    python benchmarks/strategies.py [--budgets 1000,3000,10000] [--strategies ...] [--sims ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fresh, load, machine, save, stamp

import hwloop
from hwloop.simulators.catalog import SIMULATORS
from hwloop.strategies.registry import USER_CHOICES as STRATEGIES

NAME = "strategies"
ROOTS = ["hwloop.run", "hwloop.simulators.catalog"]  # with the cell's strategy: the code a cell measures


def run_cell(sim: str, strategy: str, budget: int) -> dict:
    """One training run on a fresh simulator; the date is kept per cell, as a sweep can span days."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        m = hwloop.train(f"sim:{sim}", strategy=strategy, queries=budget, seed=0, run_dir=tmp).metrics
        wall = time.perf_counter() - t0
    keep = [
        "closed_loop_nmse_db",
        "closed_loop_nmse_clean_db",
        "noise_floor_db",
        "queries_used",
        "eval_queries",
        "grad_cosine",
        "strategy_run",
        "device_weight",
        "refinement_stopped",
        "best_round",
    ]
    return {
        **{k: m.get(k) for k in keep},
        "wall_s": round(wall, 1),
        **stamp([*ROOTS, f"hwloop.strategies.{strategy}"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", default="10000,3000,1000")
    ap.add_argument("--strategies", default=",".join(s for s in STRATEGIES))
    ap.add_argument("--sims", default=",".join(SIMULATORS))
    ap.add_argument("--force", action="store_true", help="re-run cells already in the results file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = load(NAME)
    data.setdefault("cells", {})
    data["machine"] = machine()
    for budget in (int(b) for b in args.budgets.split(",")):
        for sim in args.sims.split(","):
            for strategy in args.strategies.split(","):
                key = f"{sim}/{strategy}/{budget}"
                if fresh(data["cells"], key) and not args.force:
                    continue
                data["cells"][key] = run_cell(sim, strategy, budget)
                save(NAME, data)
                print(key, data["cells"][key], flush=True)


if __name__ == "__main__":
    main()
