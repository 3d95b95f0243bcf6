"""auto against ila and iila on one-to-one devices whose noise enters at their input.

Where the noise is input-referred, no device round beats it; `auto` tells it
from a quick surrogate's residuals and, on a device it measures one-to-one,
spends its budget as `ila` does where that noise is heavy against iterative
ILA's jitter (``auto_path`` "ila"), as `iila` does where it is light
(``auto_path`` "iila"). Each cell is one
`hwloop.train` at 10,000 queries, seed 0, scored on the noisy device and
against the noise-free one. Target: auto at most 0.5 dB worse than the
better of ila and iila on every device.

    python benchmarks/input_noise.py [--force]
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

NAME = "input_noise"
DEVICES = (
    "sim:rapp?input_noise=0.02",
    "sim:tanh?input_noise=0.02",
    "sim:saleh?input_noise=0.02",
    "sim:cubic?input_noise=0.02",
    "sim:mimo3?input_noise=0.02",
    "sim:saleh_iq?input_noise=0.01",
)
QUERIES = 10_000
ROOTS = [
    "hwloop.run",
    "hwloop.simulators.catalog",
    "hwloop.strategies.auto",
    "hwloop.strategies.ila",
    "hwloop.strategies.iila",
]


def run_cell(uri: str, strategy: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        m = hwloop.train(uri, strategy=strategy, queries=QUERIES, seed=0, run_dir=tmp).metrics
        wall = time.perf_counter() - t0
    keep = ("closed_loop_nmse_db", "closed_loop_nmse_clean_db", "noise_floor_db", "queries_used", "auto_path",
            "noise_of_jitter")  # fmt: skip
    return {**{k: m.get(k) for k in keep}, "noise_split": m.get("noise_split"), "wall_s": round(wall, 1),
            **stamp(ROOTS)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="re-run cells already in the results file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = load(NAME)
    data.setdefault("cells", {})
    data.update(machine=machine(), queries=QUERIES, seed=0, command="python benchmarks/input_noise.py")
    for uri in DEVICES:
        for strategy in ("ila", "iila", "auto"):
            key = f"{uri}/{strategy}"
            if fresh(data["cells"], key) and not args.force:
                continue
            data["cells"][key] = run_cell(uri, strategy)
            save(NAME, data)
            print(key, data["cells"][key], flush=True)


if __name__ == "__main__":
    main()
