"""The main job as a user runs it: `hwloop train --device sim --json`, whole command, wall time.

Each repeat is a fresh process in a fresh run directory (imports included);
the closed-loop figures are those the command prints. Results go to
benchmarks/results/default_run.json.

    python benchmarks/default_run.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save, stamp

NAME = "default_run"
COMMAND = ["hwloop", "train", "--device", "sim", "--json"]


def one_run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "hwloop.cli", *COMMAND[1:], "--out", str(Path(tmp) / "run")],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - t0
    m = json.loads(proc.stdout)
    keep = (
        "closed_loop_nmse_db",
        "noise_floor_db",
        "queries_used",
        "eval_queries",
        "wall_s",
        "refinement_stopped",
    )
    return {"process_wall_s": round(wall, 1), **{k: m.get(k) for k in keep}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    runs = [one_run() for _ in range(args.repeats)]
    for r in runs:
        print(r)
    stamped = stamp(["hwloop.cli.app", "hwloop.run", "hwloop.strategies.auto", "hwloop.simulators.catalog"])
    save(NAME, {"machine": machine(), **stamped, "command": " ".join(COMMAND), "runs": runs})


if __name__ == "__main__":
    main()
