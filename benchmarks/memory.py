"""Devices with memory: a tapped-delay inverse (memory depth 5) against a memoryless one (depth 0).

A stateful simulator's output depends on past inputs, so an inverse that sees
only the current target leaves the memory uncorrected; this measures how much
the tapped-delay inverse of `hwloop.strategies.sequence` recovers. Every cell is one
``hwloop.train(sim, strategy="ila", queries=20000, seed=0,
options=TrainOptions(memory_depth=D))``: `hwloop.run` routes a stateful
device to sequence ILA, and ``memory_depth=0`` gives the same regressor fed
with the current target only. Results accumulate in
benchmarks/results/memory.json, so an interrupted run resumes.

    python benchmarks/memory.py [--sims wh,memory_poly] [--depths 5,0] [--queries 20000] [--force]
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

NAME = "memory"
ROOTS = ["hwloop.run", "hwloop.strategies.sequence", "hwloop.simulators.catalog"]
NOISE = 1e-3


def run_cell(sim: str, depth: int, queries: int) -> dict:
    """One sequence-ILA run; wall time covers training, evaluation and saving."""
    import hwloop
    from hwloop.run import TrainOptions

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        m = hwloop.train(
            f"sim:{sim}?noise={NOISE}",
            strategy="ila",
            queries=queries,
            seed=0,
            run_dir=tmp,
            options=TrainOptions(memory_depth=depth),
        ).metrics
        wall = time.perf_counter() - t0
    keep = ["closed_loop_nmse_db", "closed_loop_nmse_clean_db", "noise_floor_db", "queries_used"]
    return {
        **{k: m.get(k) for k in keep},
        "eval_queries": m.get("eval_queries"),
        "memory_depth": depth,
        "wall_s": round(wall, 1),
        **stamp(ROOTS),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sims", default="wh,memory_poly")
    ap.add_argument("--depths", default="5,0")
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--force", action="store_true", help="re-run cells already in the results file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = load(NAME)
    data.setdefault("cells", {})
    data.update(machine=machine(), noise=NOISE, seed=0, strategy="ila")
    data["command"] = "python benchmarks/memory.py"
    for sim in args.sims.split(","):
        for depth in (int(d) for d in args.depths.split(",")):
            key = f"{sim}/{depth}/{args.queries}"
            if fresh(data["cells"], key) and not args.force:
                continue
            data["cells"][key] = run_cell(sim, depth, args.queries)
            save(NAME, data)
            print(key, data["cells"][key], flush=True)


if __name__ == "__main__":
    main()
