"""One command for docs/BENCHMARKS.md: run every benchmark lacking results, then render the page.

Each benchmark is a separate script writing benchmarks/results/NAME.json
(see benchmarks/README.md); this runs, one after the other, those whose
results are missing, incomplete or stale (all of them with ``--force``),
each in its own interpreter so one crash or TensorFlow state cannot leak
into the next, then renders docs/BENCHMARKS.md from whatever results exist
and rewrites the figures the docs' prose quotes (`render_docs.py`).
A benchmark already running in another process is skipped, not doubled.

    python benchmarks/run_all.py                 # missing results only, then render
    python benchmarks/run_all.py --force         # re-measure everything (about two hours on 2 cores)
    python benchmarks/run_all.py --render-only   # just rewrite docs/BENCHMARKS.md and the docs' figures
    python benchmarks/run_all.py --only memory,serial
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fresh, load, stale

HERE = Path(__file__).resolve().parent
STRATEGY_BUDGETS = "10000,3000,1000"


@dataclass(frozen=True)
class Bench:
    """A benchmark script, its arguments, and how to tell its results are complete."""

    name: str
    script: str
    args: tuple[str, ...]
    complete: Callable[[dict], bool]
    force_flag: bool = True  # the script takes --force (re-run cells it already has)
    results: str = ""  # the results file's name when it is not the benchmark's

    @property
    def results_name(self) -> str:
        return self.results or self.name


def _strategies_complete(data: dict) -> bool:
    from hwloop.simulators.catalog import SIMULATORS
    from hwloop.strategies.registry import USER_CHOICES as STRATEGIES

    cells = data.get("cells", {})
    budgets = STRATEGY_BUDGETS.split(",")
    return all(fresh(cells, f"{s}/{st}/{b}") for s in SIMULATORS for st in STRATEGIES for b in budgets)


def _memory_complete(data: dict) -> bool:
    cells = data.get("cells", {})
    return all(fresh(cells, f"{s}/{d}/20000") for s in ("wh", "memory_poly") for d in (5, 0))


def _matrix_complete(data: dict) -> bool:
    from matrix_cells import GROUPS, SEEDS

    cells = data.get("cells", {})
    return all(
        fresh(cells, cell.key(m, s)) for make, methods in GROUPS.values() for cell in make() for m in methods
        for s in SEEDS
    )  # fmt: skip


def _budgets_complete(data: dict) -> bool:
    from dpd_budgets import key, plan

    cells = data.get("cells", {})
    return all(fresh(cells, key(*run)) for run in plan())


def _whole(key: str) -> Callable[[dict], bool]:
    """Complete when the file holds ``key`` and its stamp describes today's code."""
    return lambda d: bool(d.get(key)) and stale(d) is None


def _all_cells_fresh(data: dict) -> bool:
    cells = data.get("cells", {})
    return bool(cells) and all(stale(c) is None for c in cells.values())


def _nested_fresh(cells: dict, depth: int = 2) -> bool:
    """Every stamped figure in ``cells`` (cells of cells at depth 2) describes today's code."""
    records = list(cells.values()) if depth == 1 else [c for cell in cells.values() for c in cell.values()]
    return bool(records) and all(stale(r) is None for r in records)


DPD_NMP = "pa_wh?frac_delay=0.5&nmp_zero=1.5"  # the amplifier that is not minimum phase, in dpd.json
DPD_NMP_METHODS = "textbook/50000,textbook/20000,auto/50000,ila/20000,none"


def _dpd_cells(data: dict, nmp: bool) -> dict:
    """dpd.json's cells of the non-minimum-phase amplifier (``nmp``), or of the default run."""
    return {k: v for k, v in data.get("cells", {}).items() if k.startswith(f"{DPD_NMP}/") == nmp}


def _heldout_complete(pa: str) -> Callable[[dict], bool]:
    """Complete when dpd_heldout.json's cells of the amplifier ``pa`` describe today's code."""
    return lambda d: _nested_fresh(d.get(pa, {}).get("cells", {}), depth=1)


def _drift_complete(data: dict) -> bool:
    """Every amplifier's conditions, recalibrations and tracking measured by today's code."""
    blocks = [data.get(pa, {}) for pa in ("apa", "pa_wh", "pa_gmp")]
    return all(
        _nested_fresh({"c": b.get("conditions", {}), "r": b.get("recal", {})})
        and stale(b.get("track", {})) is None
        for b in blocks
    ) and all(b.get("track", {}).get("checkpoints") for b in blocks)


BENCHES = (
    Bench("strategies", "strategies.py", ("--budgets", STRATEGY_BUDGETS), _strategies_complete),
    Bench("input_noise", "input_noise.py", (), _all_cells_fresh),
    Bench("matrix", "matrix.py", (), _matrix_complete),
    Bench("dpd_budgets", "dpd_budgets.py", (), _budgets_complete),
    Bench("memory", "memory.py", (), _memory_complete),
    Bench("overhead", "overhead.py", ("--profile",), _whole("runs"), force_flag=False),
    Bench("serial", "serial_throughput.py", (), _whole("results"), force_flag=False),
    Bench("farm", "farm.py", (), _whole("farms"), force_flag=False),
    Bench("default_run", "default_run.py", (), _whole("runs"), force_flag=False),
    Bench("pa_fit", "fit_pa.py", (), _whole("gmp"), force_flag=False),
    Bench("dpd", "dpd.py", (), lambda d: _nested_fresh(_dpd_cells(d, nmp=False))),
    Bench(
        "dpd_nmp",
        "dpd.py",
        ("--sims", DPD_NMP, "--signals", "ofdm", "--methods", DPD_NMP_METHODS),
        lambda d: _nested_fresh(_dpd_cells(d, nmp=True)),
        results="dpd",
    ),
    Bench(
        "dpd_sweep",
        "dpd.py",
        ("--sweep", "--sims", "pa_gmp,pa_wh"),
        lambda d: _nested_fresh(d.get("rounds_sweep", {}), depth=1),
        force_flag=False,
        results="dpd",
    ),
    Bench(
        "dpd_families", "dpd_families.py", (), lambda d: len(d.get("cells", {})) >= 21 and _all_cells_fresh(d)
    ),
    Bench("dpd_heldout", "dpd_heldout.py", (), _heldout_complete("apa")),
    Bench(
        "dpd_heldout_nmp",
        "dpd_heldout.py",
        ("--pa", "apa_nmp"),
        _heldout_complete("apa_nmp"),
        results="dpd_heldout",
    ),
    Bench("calibrate_units", "calibrate_units.py", (), _all_cells_fresh),
    Bench("export", "export.py", (), _whole("gmp"), force_flag=False),
    Bench("bench_dpd", "bench_dpd.py", (), _whole("cells"), force_flag=False),
    Bench("drift", "drift.py", (), _drift_complete),
    Bench("radio_dpd", "radio_dpd.py", (), _whole("cells"), force_flag=False),
)


def already_running(script: str) -> int | None:
    """The pid of another process running ``script`` (Linux /proc), so it is not started twice."""
    me = os.getpid()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(proc.name) != me and any(
            a.decode(errors="replace").endswith(f"benchmarks/{script}") for a in argv
        ):
            return int(proc.name)
    return None


def run(bench: Bench, force: bool) -> bool:
    """Run one benchmark in a fresh interpreter; False if it failed or was skipped."""
    pid = already_running(bench.script)  # dpd.py and its --sweep share a results file: one at a time
    if pid is not None:
        print(f"{bench.name}: already running (pid {pid}); rendering what it has written so far")
        return False
    cmd = [
        sys.executable,
        str(HERE / bench.script),
        *bench.args,
        *(["--force"] if force and bench.force_flag else []),
    ]
    print(f"{bench.name}: {' '.join(cmd)}", flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    rc = subprocess.run(cmd, env=env, check=False).returncode
    if rc != 0:
        print(f"{bench.name}: failed with exit code {rc}", file=sys.stderr)
    return rc == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="re-run every benchmark, even those with results")
    ap.add_argument(
        "--render-only", action="store_true", help="only render docs/BENCHMARKS.md and the docs' figures"
    )
    ap.add_argument(
        "--only", default="", help="comma-separated benchmark names: " + ",".join(b.name for b in BENCHES)
    )
    args = ap.parse_args()
    chosen = set(args.only.split(",")) - {""}
    unknown = chosen - {b.name for b in BENCHES}
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    failed = []
    if not args.render_only:
        for bench in BENCHES:
            if chosen and bench.name not in chosen:
                continue
            if not args.force and bench.complete(load(bench.results_name)):
                print(f"{bench.name}: results complete, skipped (--force re-runs)")
                continue
            if not run(bench, args.force):
                failed.append(bench.name)
    from render import main as render
    from render_docs import main as render_docs

    if render_docs([]) != 0:  # the docs' prose figures, rewritten from the same results
        failed.append("render_docs (unmarked figures in the docs)")
    render()  # refuses, naming them, while any figure is stale
    if failed:
        sys.exit(f"not (re)measured: {', '.join(failed)}")


if __name__ == "__main__":
    main()
