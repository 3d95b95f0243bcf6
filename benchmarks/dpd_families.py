"""Predistortion per inverse family and strategy, whole commands, on the I/Q amplifier simulators.

Each cell is one ``hwloop train`` command with 50,000 training queries on
``sim:AMP?seed=0`` (noise 1e-3), then one ``hwloop eval --signal`` on the
same amplifier model with another seed, scoring a held-out OFDM signal
(``ofdm:n=16384,papr=8,seed=1``, 200 MHz at 800 MS/s) at ``--gain 2``:

- ``gmp``: ``--signal ofdm:n=16000,papr=8,seed=0 --gain 2``; ``ila`` is the
  textbook indirect learning, ``surrogate`` and ``auto`` add direct learning
  with the amplifier in the loop (hwloop/strategies/dpd.py);
- ``tapped`` and ``gru``: ``--inverse tapped|gru`` with the same signal:
  sequence ILA on stretches of the signal, three rounds;
- ``tapped (no signal)``: the tapped-delay MLP trained without a signal, on
  random target sequences (``ila``: sequence ILA; ``surrogate``: direct
  learning through a tapped surrogate), as a run on a device with memory
  does by default.

Wall time is the train command's, imports included; eval queries are counted
apart.

    python benchmarks/dpd_families.py [--amps pa_gmp,pa_wh] [--cells gmp/ila,...] [--force]
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

from common import fresh, load, machine, save
from provenance import stamp

ROOTS = ["hwloop.cli.app", "hwloop.run", "hwloop.strategies.dpd", "hwloop.strategies.sequence"]
NAME = "dpd_families"
QUERIES = 50_000
GAIN = 2.0
TRAIN_SIGNAL = "ofdm:n=16000,papr=8,seed=0"
HELD_SIGNAL = "ofdm:n=16384,papr=8,seed=1"
AMPS = ("pa_gmp", "pa_wh", "pa_wh?thermal=0.03")
SIGNAL = ["--signal", TRAIN_SIGNAL, "--gain", str(GAIN)]
CELLS = {
    "gmp/ila": ["--strategy", "ila", *SIGNAL],
    "gmp/surrogate": ["--strategy", "surrogate", *SIGNAL],
    "gmp/auto": ["--strategy", "auto", *SIGNAL],
    "tapped/ila": ["--strategy", "ila", "--inverse", "tapped", *SIGNAL],
    "gru/ila": ["--strategy", "ila", "--inverse", "gru", *SIGNAL],
    "tapped (no signal)/ila": ["--strategy", "ila"],
    "tapped (no signal)/surrogate": ["--strategy", "surrogate"],
}


def _device(amp: str, seed: int) -> str:
    return f"sim:{amp}{'&' if '?' in amp else '?'}seed={seed}"


def _hwloop(*args: str) -> dict:
    cmd = [sys.executable, "-m", "hwloop.cli", *args, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def run_cell(amp: str, cell: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = str(Path(tmp) / "run")
        t0 = time.perf_counter()
        train = _hwloop(
            "train", "--device", _device(amp, 0), "--queries", str(QUERIES), "--out", run, *CELLS[cell]
        )
        wall = time.perf_counter() - t0
        ev = _hwloop(
            "eval", "--run", run, "--device", _device(amp, 5), "--signal", HELD_SIGNAL, "--gain", str(GAIN)
        )
    keep = ("acpr_dbc", "evm_db", "nmse_db", "acpr_dbc_no_dpd", "evm_db_no_dpd", "nmse_db_no_dpd")
    return {
        "args": CELLS[cell],
        **{k: ev[k] for k in keep},
        "noise_floor_db": ev.get("noise_floor_db"),
        "queries_used": train["queries_used"],
        "eval_queries": ev["eval_queries"],
        "strategy_run": train["strategy_run"],
        "inverse_kind": train.get("inverse_kind"),
        "dpd_kept_round": train.get("dpd_kept_round"),
        "terms": _terms(train),
        "wall_s": round(wall, 1),
        **stamp(ROOTS),
    }


def _terms(train: dict) -> int | None:
    """The GMP predistorter's coefficient count (complex); None for the neural inverses."""
    from hwloop.dpd.gmp import GMPConfig

    return len(GMPConfig(**train["gmp"]).terms()) if train.get("gmp") else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--amps", default=",".join(AMPS))
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--force", action="store_true", help="re-run cells already in the results file")
    args = ap.parse_args()
    data = load(NAME)
    data.setdefault("cells", {})
    data.update(
        machine=machine(),
        queries=QUERIES,
        gain=GAIN,
        train_signal=TRAIN_SIGNAL,
        held_signal=HELD_SIGNAL,
        command="python benchmarks/dpd_families.py",
    )
    for amp in args.amps.split(","):
        for cell in args.cells.split(","):
            key = f"{amp}/{cell}"
            if fresh(data["cells"], key) and not args.force:
                continue
            data["cells"][key] = run_cell(amp, cell)
            save(NAME, data)
            print(key, data["cells"][key], flush=True)


if __name__ == "__main__":
    main()
