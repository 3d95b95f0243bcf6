"""The robustness matrix: every method across the operating envelope, checked against its rules.

Row groups (`matrix_cells`): ``memoryless`` (one-to-one or folded devices
with 1 to 3 outputs, noise at the output, at the input or both: ila, iila,
surrogate, auto at 5,000 queries), ``heldout`` (folded devices outside the
catalogue with input noise: ila, surrogate, auto), ``dpd`` (the I/Q
amplifier with three linear responses x three drives x two signals: the
textbook GMP-ILA, ila, iila, surrogate, auto at 20,000 queries). Every
cell runs with seeds 0, 1 and 2 (the device's noise and the training seed)
and is scored noise-free and out of sample. The rules (`matrix_rules`) are
rendered as a pass/fail table in docs/BENCHMARKS.md (`render_matrix`).

Runs go to a pool of ``--jobs`` worker processes (one TensorFlow thread
each); where auto takes its surrogate path, its run is recorded for
``surrogate`` too (`same_run`); results accumulate in benchmarks/results/matrix.json, each run
stamped with its code, so an interrupted matrix resumes and only runs whose
code changed are measured again.

    python benchmarks/matrix.py                       # every row group
    python benchmarks/matrix.py --rows memoryless     # one group (memoryless, heldout, dpd)
    python benchmarks/matrix.py --rows dpd --cells "minimum phase" --seeds 0
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import fcntl
import logging
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fresh, load, machine, save, stamp
from matrix_cells import GROUPS, SEEDS, Cell, run
from matrix_rules import current, evaluate

NAME = "matrix"
ROOTS = {  # the code a run measures, for its stamp
    "memoryless": ["hwloop.run", "hwloop.simulators.catalog"],
    "heldout": ["hwloop.run", "hwloop.simulators.base"],
    "dpd": ["hwloop.run", "hwloop.strategies.dpd", "hwloop.simulators.pa"],
}
STRATEGY_ROOT = "hwloop.strategies.{}"


def roots(group: str, method: str) -> tuple[str, ...]:
    extra = [] if method == "textbook" or group == "dpd" else [STRATEGY_ROOT.format(method)]
    return tuple(ROOTS[group] + extra)


def _init_worker() -> None:
    """One TensorFlow thread per worker process (the pool, not TensorFlow, uses the cores)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    logging.basicConfig(level=logging.WARNING)


def _run(cell: Cell, method: str, seed: int) -> dict:
    """One run, stamped when it ends: the stamp hashes every file the run could depend on and is
    never fresh if they changed while this worker lived (benchmarks/provenance.py)."""
    try:
        return {**run(cell, method, seed), **stamp(roots(cell.group, method))}
    except Exception as exc:  # one failed run is recorded and the matrix goes on
        error = f"{type(exc).__name__}: {exc}"
        return {"score": None, "error": error, "trace": traceback.format_exc()[-2000:]}


def plan(
    groups: list[str], seeds: tuple[int, ...], match: str = "", only: tuple[str, ...] = ()
) -> list[tuple[Cell, str, int]]:
    """Every (cell, method, seed) of the groups; ``match``: cells whose name contains one of its
    ";"-separated parts, run in the parts' order (the most wanted first); ``only``: these methods."""
    parts = [p for p in match.split(";") if p] or [""]
    todo = []
    for group in groups:
        cells, methods = GROUPS[group]
        chosen: list[Cell] = []
        for part in parts:
            chosen += [c for c in cells() if part in c.name and c not in chosen]
        for cell in chosen:
            todo += [(cell, m, s) for s in seeds for m in methods if not only or m in only]
    return todo


def _save(data: dict, new: dict) -> None:
    """Write the results, merged with what other matrix runs wrote meanwhile (under a lock): this
    run's new cells and group times win, every other cell on disk is kept."""
    with open(Path(tempfile.gettempdir()) / f"hwloop-{NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        disk = load(NAME)
        data["cells"] = {**disk.get("cells", {}), **new}
        for key in ("runs", "partial_runs"):
            data[key] = {**disk.get(key, {}), **data.get(key, {})}
        save(NAME, data)


def same_run(auto: dict, key: str) -> dict | None:
    """The surrogate run a cell's auto run already is, or None.

    On a device auto finds not one-to-one it spends the budget exactly as `surrogate` does, query
    for query (`hwloop.strategies.auto._as_surrogate`; tests/test_matrix.py checks the two runs
    agree): that run is recorded for both methods rather than measured twice (about a third of
    the matrix's time), marked ``same_run_as``, its time counted once."""
    if auto.get("auto_path") != "surrogate" or auto.get("score") is None:
        return None
    return {**auto, "same_run_as": key, "wall_s": 0.0, "cpu_s": 0.0}


def _measure(pool: cf.Executor, todo: list[tuple[Cell, str, int]], data: dict, jobs: int) -> None:
    """Run one group's runs in the pool, saving each result as it arrives, then its elapsed time.
    A surrogate run waits for auto's run of its cell and seed (`same_run`)."""
    t0 = time.perf_counter()
    autos = {(c, s) for c, m, s in todo if m == "auto"}
    waiting = {(c, s) for c, m, s in todo if m == "surrogate" and (c, s) in autos}
    futures = {
        pool.submit(_run, c, m, s): (c, m, s)
        for c, m, s in todo
        if (m != "surrogate" or (c, s) not in waiting)
    }
    pending = set(futures)
    while pending:
        done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        for fut in done:
            cell, method, seed = futures[fut]
            rec = fut.result()
            _record(data, cell.key(method, seed), rec)
            if method != "auto" or (cell, seed) not in waiting:
                continue
            copy = same_run(rec, cell.key(method, seed))
            if copy is not None:
                _record(data, cell.key("surrogate", seed), copy)
            else:
                later = pool.submit(_run, cell, "surrogate", seed)
                futures[later] = (cell, "surrogate", seed)
                pending.add(later)
    group = todo[0][0].group
    whole = len(todo) == len(plan([group], SEEDS))  # a whole group's time is what the docs show
    data["runs" if whole else "partial_runs"][group] = {
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "runs": len(todo),
        "jobs": jobs,
        "date": time.strftime("%Y-%m-%d"),
        "cpu_s": round(sum(data["cells"][c.key(m, s)].get("cpu_s") or 0 for c, m, s in todo), 1),
    }
    _save(data, {})


def _record(data: dict, key: str, rec: dict) -> None:
    data["cells"][key] = rec
    _save(data, {key: rec})
    took = (
        "same run" if "same_run_as" in rec else f"{rec.get('wall_s', '-')} s, cpu {rec.get('cpu_s', '-')} s"
    )
    print(f"{key}: {rec.get('score')} ({took}) {rec.get('error', '')}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default=",".join(GROUPS), help="row groups: " + ", ".join(GROUPS))
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    ap.add_argument("--cells", default="", help="cells named with this (a;b: either, in that order)")
    ap.add_argument("--methods", default="", help="only these methods, e.g. auto or ila,iila")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--force", action="store_true", help="re-run cells already in the results file")
    args = ap.parse_args()
    groups = [g for g in args.rows.split(",") if g]
    unknown = set(groups) - set(GROUPS)
    if unknown:
        ap.error(f"unknown row group(s) {', '.join(sorted(unknown))} (known: {', '.join(GROUPS)})")
    seeds = tuple(int(s) for s in args.seeds.split(","))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # workers inherit it
        os.environ.setdefault(var, "1")
    data = load(NAME)
    data.setdefault("cells", {})
    data.setdefault("runs", {})
    data.setdefault("partial_runs", {})
    data.update(machine=machine(), seeds=list(SEEDS), command="python benchmarks/matrix.py")
    todo = [
        (c, m, s)
        for c, m, s in plan(groups, seeds, args.cells, tuple(m for m in args.methods.split(",") if m))
        if args.force or not fresh(data["cells"], c.key(m, s))
    ]
    print(f"{len(todo)} runs to measure on {args.jobs} worker(s)", flush=True)
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_init_worker) as pool:
        for group in groups:  # one group at a time, so each group's elapsed time is its own
            mine = [(c, m, s) for c, m, s in todo if c.group == group]
            if mine:
                _measure(pool, mine, data, args.jobs)
    for v in evaluate(current(data["cells"]), SEEDS, tuple(groups)):  # as BENCHMARKS.md judges them
        print(f"rule {v.rule}: {v.status} ({v.checked} checked)", *(f"  {b}" for b in v.broken), sep="\n")


if __name__ == "__main__":
    main()
