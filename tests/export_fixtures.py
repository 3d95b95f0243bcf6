"""Small but honest trained runs for the export tests, each trained once per session.

Test modules call ``trained(NAME, tmp_path_factory)``; a module-level cache shares the runs.
Every run is a real `hwloop.train` on a simulator with a modest budget, so
an export test exercises exactly what a user's run directory holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from serial_fixtures import require_toolchain

import hwloop
from hwloop.rundir import TrainOptions

SIGNAL = "ofdm:bw=200e6,fs=800e6,n=8192,papr=8,seed=3"
HELDOUT = "ofdm:bw=200e6,fs=800e6,n=16384,papr=8,seed=11"
GAIN = 2.0

RUNS: dict[str, dict[str, Any]] = {
    "mlp": {"device": "sim:rapp?noise=1e-3&seed=0", "strategy": "ila", "queries": 3000, "fit_steps": 2000},
    "tapped": {"device": "sim:wh?noise=1e-3&seed=0", "strategy": "ila", "queries": 6000, "fit_steps": 2000},
    "gmp_pa_gmp": {"device": "sim:pa_gmp?seed=1", "strategy": "ila", "queries": 12000, "signal": SIGNAL},
    "gmp_pa_wh": {"device": "sim:pa_wh?seed=1", "strategy": "ila", "queries": 12000, "signal": SIGNAL},
}
_trained: dict[str, Path] = {}


def trained(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of ``RUNS[name]``, trained on first use."""
    if name in _trained:
        return _trained[name]
    spec = dict(RUNS[name])
    device, strategy, queries = spec.pop("device"), spec.pop("strategy"), spec.pop("queries")
    if "signal" in spec:
        spec |= {"gain": GAIN, "fs": 800e6, "bw": 200e6}
    out = tmp_path_factory.mktemp(f"run_{name}") / "run"
    hwloop.train(
        device, strategy=strategy, queries=queries, seed=0, run_dir=out, options=TrainOptions(**spec)
    )
    _trained[name] = out
    return out


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
