"""The robustness matrix's DPD rows at other budgets: do the methods hold where the matrix does not look?

The matrix (`matrix.py`) runs its DPD cells at one budget, 20,000 queries.
This runs the same cells (`matrix_cells.dpd_cells`: three linear responses x
two drives x two signals), the same methods (the textbook GMP-ILA, ila, iila,
surrogate, auto), seeds and noise-free out-of-sample scoring at other
budgets, and checks the matrix's own rules (`matrix_rules.evaluate`) at each
one. Each run also records the leading taps its predistorter chose
(``dpd_alignment``, `hwloop.dpd.align`). Results go to
benchmarks/results/dpd_budgets.json, each run stamped with its code; an
interrupted run resumes.

    python benchmarks/dpd_budgets.py [--budgets 12000,30000,50000] [--jobs 2] [--cells TEXT] [--force]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matrix_cells
from common import fresh, load, machine, save, stamp
from matrix import ROOTS, _init_worker
from matrix_cells import DPD_METHODS, SEEDS, Cell, dpd_cells, run
from matrix_rules import current, evaluate

NAME = "dpd_budgets"
BUDGETS = (12_000, 30_000, 50_000)  # the matrix's own 20,000 is in matrix.json


def key(cell: Cell, budget: int, method: str, seed: int) -> str:
    """``dpd/<cell> @ <budget>/<method>/<seed>``: the matrix's key with the budget in the cell, so
    `matrix_rules` judges each budget's cells as the matrix judges its own."""
    return f"{cell.group}/{cell.name} @ {budget}/{method}/{seed}"


def plan(budgets: tuple[int, ...] = BUDGETS, match: str = "") -> list[tuple[Cell, int, str, int]]:
    """Every (cell, budget, method, seed) of the sweep, in `key`'s order; ``match``: cells whose
    name contains it."""
    cells = [c for c in dpd_cells() if match in c.name]
    return [(c, b, m, s) for b in budgets for c in cells for s in SEEDS for m in DPD_METHODS]


def by_budget(cells: dict) -> dict[int, dict]:
    """{budget: its fresh runs, keyed as the matrix keys its own (the budget taken off the cell)}."""
    out: dict[int, dict] = {}
    for k, rec in current(cells).items():
        where, method, seed = k.rsplit("/", 2)
        cell, budget = where.rsplit(" @ ", 1)
        out.setdefault(int(budget), {})[f"{cell}/{method}/{seed}"] = rec
    return out


def _run(cell: Cell, budget: int, method: str, seed: int) -> dict:
    """One run at ``budget`` queries, stamped when it ends. `matrix_cells` reads its budget from
    DPD_QUERIES at each run; it is set here, in the worker, so the matrix's cells stay as they are."""
    matrix_cells.DPD_QUERIES = budget
    try:
        return {**run(cell, method, seed), "budget": budget, **stamp(ROOTS["dpd"])}
    except Exception as exc:  # one failed run is recorded and the sweep goes on
        error = f"{type(exc).__name__}: {exc}"
        return {"score": None, "error": error, "trace": traceback.format_exc()[-2000:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="comma-separated query budgets")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--cells", default="", help="only cells whose name contains this")
    ap.add_argument("--force", action="store_true", help="measure runs whose record is still fresh")
    args = ap.parse_args()
    budgets = tuple(int(b) for b in args.budgets.split(",") if b)
    data = load(NAME) or {}
    cells = data.setdefault("cells", {})
    todo = [job for job in plan(budgets, args.cells) if args.force or not fresh(cells, key(*job))]
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # workers inherit it
        os.environ.setdefault(var, "1")
    print(f"{len(todo)} runs to measure on {args.jobs} worker(s)", flush=True)
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_init_worker) as pool:
        futures = {pool.submit(_run, *job): job for job in todo}
        for fut in cf.as_completed(futures):
            rec = fut.result()
            cells[key(*futures[fut])] = rec
            print(f"{key(*futures[fut])}: {rec.get('score')} {rec.get('error', '')}", flush=True)
            save(NAME, data)
    data.update(
        command="python benchmarks/dpd_budgets.py",
        machine=machine(),
        seeds=list(SEEDS),
        run={
            "elapsed_s": round(time.perf_counter() - t0, 1),
            "runs": len(todo),
            "jobs": args.jobs,
            "date": time.strftime("%Y-%m-%d"),
        },
    )
    save(NAME, data)
    for budget in budgets:  # as BENCHMARKS.md judges them
        for v in rules_at(data["cells"], budget):
            print(f"{budget}: {v.rule}: {v.status} ({v.checked} checked) {'; '.join(v.broken)}", flush=True)


def rules_at(cells: dict, budget: int) -> list:
    """The matrix's rules (`matrix_rules.evaluate`) on one budget's fresh runs."""
    return evaluate(by_budget(cells).get(budget, {}), SEEDS)


if __name__ == "__main__":
    main()
