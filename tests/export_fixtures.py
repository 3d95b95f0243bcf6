"""Trained runs for the export tests at the quality of the benchmark's, each trained once per session.

Test modules call ``trained(NAME, tmp_path_factory)``; the runs are shared by every module and,
under pytest-xdist, by every worker of the session (a file lock lets one train while the others wait).
Every run is a real `hwloop.train` with the budget benchmarks/export.py gives
the same family (an export's loss grows with the inverse's quality: a weaker
fixture would pass where the benchmark's inverse fails), so an export test
exercises exactly what a user's run directory holds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock
from serial_fixtures import require_toolchain

import hwloop
from hwloop.rundir import TrainOptions

SIGNAL = "ofdm:bw=200e6,fs=800e6,n=8192,papr=8,seed=3"
HELDOUT = "ofdm:bw=200e6,fs=800e6,n=16384,papr=8,seed=11"
GAIN = 2.0

RUNS: dict[str, dict[str, Any]] = {
    "mlp": {"device": "sim:rapp?noise=1e-3&seed=0", "strategy": "ila", "queries": 5000, "fit_steps": 4000},
    # The benchmark trains this device with `auto` at 10,000 (closed loop -59 dB noise-free, 2.5 min);
    # iterative ILA at 5,000 reaches -56 dB in 12 s, ILA -52 (too weak to show an 8-bit loss).
    "iq": {
        "device": "sim:saleh_iq?noise=1e-3&seed=0",
        "strategy": "iila",
        "queries": 5000,
        "fit_steps": 4000,
    },
    "tapped": {"device": "sim:wh?noise=1e-3&seed=0", "strategy": "ila", "queries": 10000, "fit_steps": 4000},
    "gmp_pa_gmp": {"device": "sim:pa_gmp?seed=1", "strategy": "ila", "queries": 24000, "signal": SIGNAL},
    "gmp_pa_wh": {"device": "sim:pa_wh?seed=1", "strategy": "ila", "queries": 24000, "signal": SIGNAL},
    # The benchmark's budget, half its fit steps: a GRU that predistorts (12,000 queries and 2,000
    # steps left the ACPR within 0.6 dB of no predistortion), in minutes rather than a quarter hour.
    "gru": {
        "device": "sim:pa_gmp?seed=1",
        "strategy": "ila",
        "queries": 24000,
        "fit_steps": 4000,
        "signal": SIGNAL,
        "inverse": "gru",
    },
}


def _session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This session's temporary root: under xdist each worker's basetemp sits in it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def trained(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of ``RUNS[name]``, trained on first use in this session."""
    out = _session_dir(tmp_path_factory) / f"shared_run_{name}"
    done = out / "trained"
    with FileLock(f"{out}.lock"):
        if not done.exists():
            spec = dict(RUNS[name])
            device, strategy, queries = spec.pop("device"), spec.pop("strategy"), spec.pop("queries")
            if "signal" in spec:
                spec |= {"gain": GAIN, "fs": 800e6, "bw": 200e6}
            shutil.rmtree(out, ignore_errors=True)  # a worker that died mid-run left it half-written
            hwloop.train(
                device,
                strategy=strategy,
                queries=queries,
                seed=0,
                run_dir=out / "run",
                options=TrainOptions(**spec),
            )
            done.touch()
    return out / "run"


def own_copy(name: str, tmp_path_factory: pytest.TempPathFactory, dest: Path) -> Path:
    """A private copy of the shared trained run ``name``: the shared one is evaluated (eval.json,
    metrics.json and its query log written) by tests on the other xdist worker at any moment, so
    a test that writes into a run, or compares its files before and after a command, uses a copy
    no other test knows of."""
    return Path(shutil.copytree(trained(name, tmp_path_factory), dest))


def cli(*args: str) -> tuple[int, str, str]:
    """``python -m hwloop.cli ARGS`` in a fresh interpreter: (exit code, stdout, stderr)."""
    res = subprocess.run(
        [sys.executable, "-m", "hwloop.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    return res.returncode, res.stdout, res.stderr


def cli_json(*args: str) -> dict:
    """``hwloop ARGS --json`` in this interpreter (TensorFlow is already loaded): the JSON object."""
    from click.testing import CliRunner

    from hwloop.cli import cli as group

    res = CliRunner().invoke(group, [*args, "--json"])
    assert res.exit_code == 0, f"exit {res.exit_code}\noutput:\n{res.output}\n{res.exception!r}"
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, f"--json must print one line, got:\n{res.stdout}"
    return json.loads(lines[0])


def compile_and_check(export: Path, cc: str = "cc") -> subprocess.CompletedProcess[str]:
    """Compile PREFIX.c with PREFIX_check.c strictly (C99, pedantic, warnings as errors) and run it."""
    require_toolchain(cc)
    build = subprocess.run(
        [
            cc,
            "-std=c99",
            "-O2",
            "-Wall",
            "-Wextra",
            "-pedantic",
            "-Werror",
            "-o",
            "check",
            "hwl_inv.c",
            "hwl_inv_check.c",
        ],
        cwd=export,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, f"the generated C does not compile:\n{build.stderr}"
    return subprocess.run(["./check"], cwd=export, capture_output=True, text=True, timeout=120)
