"""Predistortion as a job, end to end through the CLI: train --signal, eval --signal, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hwloop
from hwloop.cli import cli
from hwloop.signals import dpa200, load_signal

SIGNAL = "ofdm:bw=200e6,fs=800e6,n=8192,papr=8,seed=3"


@pytest.fixture(scope="module")
def dpd_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("dpd") / "run"
    args = ["train", "--device", "sim:pa_wh?seed=1", "--signal", SIGNAL, "--gain", "2", "--queries", "24000"]
    res = CliRunner().invoke(cli, [*args, "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    return out, json.loads(res.stdout)


def test_train_with_a_signal_linearises_the_amplifier(dpd_run: tuple[Path, dict]) -> None:
    out, m = dpd_run
    assert m["strategy_run"] == "dpd" and m["inverse_kind"] == "gmp"
    assert m["queries_used"] <= 24000 and len(m["dpd_rounds"]) == 3
    # Predistortion must beat the amplifier driven with the bare signal at the same drive power.
    assert m["acpr_dbc"] < m["acpr_dbc_no_dpd"] - 5 and m["evm_db"] < m["evm_db_no_dpd"] - 10
    assert m["nmse_db"] == m["closed_loop_nmse_db"] < -30
    assert json.loads((out / "metrics.json").read_text())["acpr_dbc"] == m["acpr_dbc"]


def test_the_saved_predistorter_applies_to_a_whole_signal_in_a_fresh_load(dpd_run: tuple[Path, dict]) -> None:
    out, _ = dpd_run
    inv = hwloop.load_inverse(out)
    t = 2.0 * load_signal(SIGNAL)[:3000]
    x = inv.apply(t)
    assert x.shape == t.shape and np.all(np.hypot(x[:, 0], x[:, 1]) <= 1.0 + 1e-6)
    stream = inv.stream()
    chunked = np.concatenate([stream.send(t[i : i + 700]) for i in range(0, len(t), 700)])
    np.testing.assert_allclose(chunked, x, atol=1e-5)


def test_eval_with_a_signal_reports_and_records_dpd_figures(dpd_run: tuple[Path, dict]) -> None:
    out, _ = dpd_run
    other = "ofdm:bw=200e6,fs=800e6,n=8192,papr=8,seed=11"
    res = CliRunner().invoke(
        cli,
        [
            "eval",
            "--run",
            str(out),
            "--device",
            "sim:pa_wh?seed=5",
            "--signal",
            other,
            "--gain",
            "2",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    for key in ("acpr_dbc", "evm_db", "nmse_db", "acpr_dbc_no_dpd"):
        assert isinstance(ev[key], float)
    assert ev["acpr_dbc"] < ev["acpr_dbc_no_dpd"]
    recorded = json.loads((out / "metrics.json").read_text())
    assert recorded["eval_signal"]["signal"] == other and recorded["acpr_dbc"] == ev["acpr_dbc"]


def test_report_of_an_iq_run_draws(dpd_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = dpd_run
    res = CliRunner().invoke(cli, ["report", "--run", str(out), "--out", str(tmp_path / "r.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r.png").stat().st_size > 50_000


def test_bundled_measurement_is_a_signal_and_a_data_directory(tmp_path: Path) -> None:
    x, y = dpa200("train")
    np.testing.assert_array_equal(load_signal("dpa200:train"), x)
    for name, arr in (("train_input.csv", x), ("train_output.csv", y)):
        np.savetxt(tmp_path / name, arr, delimiter=",", header="I,Q", comments="", fmt="%.9g")
    from hwloop.data import load_data_file

    pairs = load_data_file(tmp_path)
    assert pairs.x.shape == x.shape and np.allclose(pairs.y, y, atol=1e-6)
