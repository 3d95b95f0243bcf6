"""Training without the device from a log or a data file, then refining on the device."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

import hwloop
from hwloop.cli import cli
from hwloop.querylog import open_run_log
from hwloop.run import TrainOptions


def test_from_log_offline_then_refine_on_the_device(tmp_path: Path) -> None:
    opts = TrainOptions(fit_steps=400, eval_targets=200, noise_repeats=32)
    hwloop.train("sim:rapp", strategy="ila", queries=2000, seed=0, run_dir=tmp_path / "a", options=opts)
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "train",
            "--from-log",
            str(tmp_path / "a"),
            "--out",
            str(tmp_path / "b"),
            "--fit-steps",
            "400",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["device"] is None and m["queries_used"] == 0 and m["prior_pairs"] == 2000
    assert m["closed_loop_nmse_db"] is None and m["surrogate_closed_loop_nmse_db"] < -30
    for name in ["inverse.keras", "surrogate.keras", "queries.sqlite", "config.toml", "metrics.json"]:
        assert (tmp_path / "b" / name).is_file()
    assert open_run_log(tmp_path / "b").count("train") == 2000
    inv = hwloop.load_inverse(tmp_path / "b")
    dev = hwloop.open_device("sim:rapp?seed=5")
    t = dev.query(np.linspace(-1.1, 1.1, 200, dtype=np.float32)[:, None])
    assert 10 * np.log10(np.sum((dev.query(inv.apply(t)) - t) ** 2) / np.sum(t**2)) < -30

    res = runner.invoke(
        cli,
        [
            "train",
            "--device",
            "sim:rapp?seed=6",
            "--from-log",
            str(tmp_path / "b"),
            "--strategy",
            "ila",
            "--queries",
            "500",
            "--fit-steps",
            "400",
            "--eval-targets",
            "200",
            "--out",
            str(tmp_path / "c"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["prior_pairs"] == 2000 and m["queries_used"] == 500 and m["closed_loop_nmse_db"] < -35


def test_from_data_csv_like_a_published_measurement(tmp_path: Path) -> None:
    dev = hwloop.open_device("sim:saleh_iq?noise=0")
    x = dev.info.uniform(np.random.default_rng(0), 1500)  # inside the amplifier's I/Q envelope
    y = dev.clean(x)
    lines = ["x0,x1,y0,y1"] + [f"{a},{b},{c},{d}" for (a, b), (c, d) in zip(x, y, strict=True)]
    (tmp_path / "pa.csv").write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "--from-data",
            str(tmp_path / "pa.csv"),
            "--strategy",
            "ila",
            "--fit-steps",
            "600",
            "--out",
            str(tmp_path / "r"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["prior_pairs"] == 1500 and m["surrogate_holdout_nmse_db"] < -30
    info = json.loads((tmp_path / "r" / "device.json").read_text())
    assert info["in_dim"] == 2 and info["out_dim"] == 2
    np.testing.assert_allclose(info["low"], x.min(axis=0), rtol=1e-5)
