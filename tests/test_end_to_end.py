"""The foundation's promises at full size (slow: run in CI with the rest)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import hwloop
from hwloop.cli import cli
from hwloop.simulators.catalog import SIMULATORS

pytestmark = pytest.mark.slow


def test_default_train_reaches_the_noise_floor_and_reloads(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", "--device", "sim", "--json", "--out", str(out)])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["queries_used"] <= 10_000
    assert m["closed_loop_nmse_db"] - m["noise_floor_db"] <= 6.0, m

    # A fresh interpreter loads the inverse and, querying the device, reproduces the figure.
    code = textwrap.dedent(f"""
        import json, numpy as np, hwloop
        from hwloop.metrics import nmse_db
        inv = hwloop.load_inverse({str(out)!r})
        dev = hwloop.open_device("sim?seed=11")
        rng = np.random.default_rng(5)
        t = dev.query(rng.uniform(dev.info.low, dev.info.high, (4000, 1)))
        x = inv.apply(t)
        assert np.all(x >= dev.info.low_array) and np.all(x <= dev.info.high_array)
        print(json.dumps(nmse_db(dev.query(x), t)))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert abs(json.loads(proc.stdout) - m["closed_loop_nmse_db"]) < 1.5


@pytest.mark.parametrize("name", [n for n, s in SIMULATORS.items() if s.one_to_one])
def test_ila_reaches_within_6_db_of_the_floor(name: str, tmp_path: Path) -> None:
    res = hwloop.train(f"sim:{name}", strategy="ila", queries=10_000, seed=0, run_dir=tmp_path)
    m = res.metrics
    assert m["closed_loop_nmse_db"] - m["noise_floor_db"] <= 6.0, m
