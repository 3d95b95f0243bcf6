"""Farm wall time against the number of latency-bound units, vs one `hwloop train` per unit.

Every unit is a Rapp simulator that takes a fixed time per device call
(``latency``, seconds) and answers at most ``max_batch`` rows per call, so a
unit spends most of its run waiting for its device, as real bench hardware
does. For each unit K (seed K) one ``hwloop train`` subprocess is timed
alone; then ``hwloop farm`` subprocesses with the first 1, 2, 4 and 8 of
those units are timed. Both are whole commands in a fresh interpreter
(imports, Ray start-up and shut-down included), with the same training
options and seed, so each farm unit's closed-loop NMSE can be compared with
its own single run. The figures go to benchmarks/results/farm.json.

    python benchmarks/farm.py [--latency 0.1] [--max-batch 16] [--queries 1000] [--repeats 2]

What limits it: each unit's run is a fresh Ray worker process that imports
TensorFlow (CPU-bound, a few seconds each), and Ray's own start and stop are
paid once per farm; only the device waits overlap. So the ratio falls with
the share of a unit's time spent waiting for its device, and the CPU-bound
part is shared by the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save, stamp

NAME = "farm"
ROOT = Path(__file__).resolve().parents[1]
COUNTS = (1, 2, 4, 8)


def uri(k: int, latency: float, max_batch: int) -> str:
    return f"sim:rapp?seed={k}&latency={latency:g}&max_batch={max_batch}"


def hwloop(args: list[str]) -> tuple[float, dict]:
    """Run ``python -m hwloop.cli ARGS --json`` from the checkout; (wall seconds, JSON)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "hwloop.cli", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"hwloop {' '.join(args)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return wall, json.loads(res.stdout)


def measure_singles(uris: list[str], opts: list[str], tmp: str, rep: int) -> list[dict]:
    """One `hwloop train` command per unit."""
    out = []
    for k, u in enumerate(uris):
        wall, m = hwloop(["train", "--device", u, *opts, "--out", f"{tmp}/r{rep}-single{k}"])
        out.append(
            {
                "device": u,
                "process_wall_s": round(wall, 2),
                "wall_s": m["wall_s"],
                "device_s": m["device_s"],
                "closed_loop_nmse_db": m["closed_loop_nmse_db"],
            }
        )
        print(
            f"[{rep}] single {k}: {wall:.1f} s, device {m['device_s']:.1f} s, {m['closed_loop_nmse_db']} dB"
        )
    return out


def measure_farm(n: int, uris: list[str], opts: list[str], tmp: str, rep: int, singles: list[dict]) -> dict:
    """One `hwloop farm` command on the first ``n`` units, against their single runs."""
    devs = [a for u in uris[:n] for a in ("--device", u)]
    wall, f = hwloop(["farm", *devs, *opts, "--out", f"{tmp}/r{rep}-farm{n}"])
    units = f["units"]
    sum_single = sum(s["process_wall_s"] for s in singles[:n])
    delta = [
        round(u["closed_loop_nmse_db"] - s["closed_loop_nmse_db"], 3)
        for u, s in zip(units, singles[:n], strict=True)
    ]
    row = {
        "units": n,
        "repeat": rep,
        "process_wall_s": round(wall, 2),
        "farm_loop_s": f[
            "wall_s"
        ],  # inside hwloop.run_farm: from the first unit started to the last finished
        "sum_single_process_wall_s": round(sum_single, 2),
        "ratio": round(wall / sum_single, 3),
        "all_ok": f["failed"] == 0,
        "max_unit_wall_s": max(u["unit_wall_s"] for u in units),
        "max_unit_train_wall_s": max(u["wall_s"] for u in units),
        "max_unit_device_s": max(u["device_s"] for u in units),
        "nmse_minus_single_db": delta,
    }
    print(
        f"[{rep}] farm of {n}: {wall:.1f} s vs {sum_single:.1f} s of single runs (x{wall / sum_single:.2f}); "
        f"slowest unit {row['max_unit_wall_s']:.1f} s, training {row['max_unit_train_wall_s']:.1f} s; "
        f"max |dNMSE| {max(abs(d) for d in delta):.2f} dB",
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--latency", type=float, default=0.1, help="seconds per device call")
    ap.add_argument("--max-batch", type=int, default=16, help="rows per device call")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--fit-steps", type=int, default=300)
    ap.add_argument("--eval-targets", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2, help="alternate singles and farms this many times")
    args = ap.parse_args()
    opts = ["--strategy", "ila", "--queries", str(args.queries), "--fit-steps", str(args.fit_steps)]
    opts += ["--eval-targets", str(args.eval_targets), "--seed", "0"]
    uris = [uri(k, args.latency, args.max_batch) for k in range(max(COUNTS))]
    singles: list[list[dict]] = []
    farms: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="hwloop-farm-bench-") as tmp:
        for rep in range(args.repeats):
            singles.append(measure_singles(uris, opts, tmp, rep))
            farms += [measure_farm(n, uris, opts, tmp, rep, singles[rep]) for n in COUNTS]
    summary = []
    for n in COUNTS:
        rows = [r for r in farms if r["units"] == n]
        summary.append(
            {
                "units": n,
                "process_wall_s": round(mean(r["process_wall_s"] for r in rows), 2),
                "sum_single_process_wall_s": round(mean(r["sum_single_process_wall_s"] for r in rows), 2),
                "ratio": round(mean(r["ratio"] for r in rows), 3),
                "ratios": [r["ratio"] for r in rows],
                "max_unit_wall_s": round(mean(r["max_unit_wall_s"] for r in rows), 2),
                "max_unit_train_wall_s": round(mean(r["max_unit_train_wall_s"] for r in rows), 2),
                "max_abs_nmse_delta_db": max(abs(d) for r in rows for d in r["nmse_minus_single_db"]),
            }
        )
    four = next(r for r in summary if r["units"] == 4)
    deltas = [abs(d) for r in farms for d in r["nmse_minus_single_db"]]
    save(
        NAME,
        {
            "machine": machine(),
            **stamp(["hwloop.cli.app", "hwloop.farm.api", "hwloop.farm.driver", "hwloop.strategies.ila"]),
            "command": (
                f"python benchmarks/farm.py --latency {args.latency:g} --max-batch {args.max_batch} "
                f"--queries {args.queries} --fit-steps {args.fit_steps} --eval-targets {args.eval_targets} "
                f"--repeats {args.repeats}"
            ),
            "device": uri(0, args.latency, args.max_batch).replace("seed=0", "seed=K"),
            "train_options": opts,
            "singles": singles,
            "runs": farms,
            "farms": summary,
            "acceptance": {
                "four_units_ratio": four["ratio"],
                "four_units_ratio_ok": four["ratio"] <= 0.6,
                "max_abs_nmse_delta_db": max(deltas),
                "nmse_within_1_5_db": max(deltas) <= 1.5,
            },
        },
    )


if __name__ == "__main__":
    main()
