"""Calibrating a new unit from an earlier run: --init-from through train(), end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hwloop
from hwloop.cli import cli
from hwloop.run import TrainOptions
from hwloop.simulators.catalog import make_sim

FAST = TrainOptions(fit_steps=600, eval_queries=400, noise_repeats=32)


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Unit 0 by plain ILA: a parent without a surrogate, so one is fitted from its log."""
    run = tmp_path_factory.mktemp("golden") / "u0"
    hwloop.train("sim:iqpa?unit=0", strategy="ila", queries=3000, seed=0, run_dir=run, options=FAST)
    assert not (run / "surrogate.keras").exists()
    return run


def _clean_nmse(inv, unit: int) -> float:
    dev = make_sim("iqpa", unit=unit, noise=0.0)
    x = dev.info.uniform(np.random.default_rng(5), 1000)
    t = dev.clean(x)
    y = dev.clean(inv.apply(t))
    return float(10 * np.log10(np.sum((y - t) ** 2) / np.sum(t**2)))


def test_init_from_calibrates_a_new_unit_and_names_its_parent(golden: Path, tmp_path: Path) -> None:
    out = tmp_path / "u7"
    args = ["train", "--device", "sim:iqpa?unit=7", "--init-from", str(golden), "--queries", "150"]
    res = CliRunner().invoke(
        cli, [*args, "--fit-steps", "600", "--eval-queries", "200", "--out", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["strategy_run"] == "calibrate" and m["parent_run"] == str(golden)
    assert m["surrogate_refitted_from_log"] is True
    assert m["queries_used"] == 150 and m["eval_queries"] == 200 + 2 * (150 // 8)  # default noise repeats
    assert "parent_run" in (out / "config.toml").read_text()
    parent_score = _clean_nmse(hwloop.load_inverse(golden), 7)
    child_score = _clean_nmse(hwloop.load_inverse(out), 7)
    assert child_score < parent_score - 10, (parent_score, child_score)
    from hwloop.querylog import open_run_log

    x, _ = open_run_log(out).arrays(None)
    info = make_sim("iqpa").info
    assert np.all(x >= info.low_array) and np.all(x <= info.high_array)


def test_a_parent_for_another_device_is_refused_before_anything_is_sent(golden: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli, ["train", "--device", "sim:rapp", "--init-from", str(golden), "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2 and "inverts a 2->2 device" in res.stderr
    assert not (tmp_path / "x").exists()
