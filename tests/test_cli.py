"""The click app end to end on a small budget, its config sources and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hwloop.cli import cli

FAST = ["--queries", "600", "--fit-steps", "150", "--eval-targets", "200"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run") / "r"
    res = CliRunner().invoke(
        cli, ["train", "--device", "sim:tanh?seed=2", *FAST, "--out", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output
    return out, json.loads(res.stdout)


def test_train_json_contract(small_run: tuple[Path, dict]) -> None:
    out, m = small_run
    for key in [
        "device",
        "strategy",
        "queries_used",
        "eval_queries",
        "closed_loop_nmse_db",
        "noise_floor_db",
        "wall_s",
        "run_dir",
    ]:
        assert key in m
    # targets + closed loop, the noise floor's repeats (600 // 8 by default: the evaluation budget
    # follows the training budget), and grad_cosine's probes (32 points x 2 x 4)
    assert m["queries_used"] == 600 and m["eval_queries"] == 200 * 2 + 75 * 2 + 32 * 2 * 4
    assert m["closed_loop_nmse_db"] < -20 and m["noise_floor_db"] < -50
    for name in ["config.toml", "queries.sqlite", "inverse.keras", "metrics.json"]:
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text())["closed_loop_nmse_db"] == m["closed_loop_nmse_db"]


def test_train_refuses_to_overwrite_a_run(runner: CliRunner, small_run: tuple[Path, dict]) -> None:
    res = runner.invoke(cli, ["train", "--device", "sim", "--out", str(small_run[0])])
    assert res.exit_code == 2 and "already holds a run" in res.stderr


def test_apply_eval_and_log(runner: CliRunner, small_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = small_run
    t = np.linspace(-0.8, 0.8, 9, dtype=np.float32)[:, None]
    np.save(tmp_path / "t.npy", t)
    res = runner.invoke(
        cli, ["apply", "--run", str(out), "--in", str(tmp_path / "t.npy"), "--out", str(tmp_path / "x.npy")]
    )
    assert res.exit_code == 0, res.output
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (9, 1) and np.all(np.abs(x) <= 1.0)
    np.testing.assert_allclose(np.tanh(1.5 * x), t, atol=0.03)

    res = runner.invoke(
        cli, ["eval", "--run", str(out), "--device", "sim:tanh?seed=9", "--eval-targets", "100", "--json"]
    )
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    # 100 targets, twice; the noise floor's default repeats for a run that used 600 queries: 600 // 8
    assert ev["closed_loop_nmse_db"] < -20 and ev["eval_queries"] == 100 * 2 + 75 * 2

    res = runner.invoke(cli, ["log", "--run", str(out), "--export", str(tmp_path / "log.npz")])
    assert res.exit_code == 0, res.output
    data = np.load(tmp_path / "log.npz")
    _, m = small_run
    logged = 600 + m["eval_queries"]  # training and evaluation rows, every one of them
    assert data["x"].shape == (logged, 1) and data["y"].shape == (logged, 1)


def test_devices_and_probe(runner: CliRunner) -> None:
    res = runner.invoke(cli, ["devices", "--json"])
    assert res.exit_code == 0
    listed = json.loads(res.stdout)
    assert "sim" in listed["schemes"] and any(d["uri"] == "sim:saleh_iq" for d in listed["devices"])
    res = runner.invoke(
        cli, ["probe", "--device", "sim:saleh_iq?noise=0.002", "--points", "5", "--repeats", "400", "--json"]
    )
    assert res.exit_code == 0, res.output
    p = json.loads(res.stdout)
    assert p["info"]["in_dim"] == 2 and len(p["sweeps"]) == 2 and len(p["sweeps"][0]["x"]) == 5
    np.testing.assert_allclose(p["noise_std"], [0.002, 0.002], rtol=0.15)


def test_config_file_and_environment(runner: CliRunner, tmp_path: Path) -> None:
    cfg = tmp_path / "hw.toml"
    cfg.write_text('[probe]\ndevice = "sim:cubic"\npoints = 3\n')
    res = runner.invoke(cli, ["probe", "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    p = json.loads(res.stdout)
    assert p["info"]["name"] == "cubic" and len(p["sweeps"][0]["x"]) == 3
    # The environment beats the file; the command line beats both.
    res = runner.invoke(cli, ["probe", "--config", str(cfg), "--json"], env={"HWLOOP_DEVICE": "sim:tanh"})
    assert json.loads(res.stdout)["info"]["name"] == "tanh"
    res = runner.invoke(
        cli, ["probe", "--config", str(cfg), "--json", "--points", "4"], env={"HWLOOP_PROBE_POINTS": "6"}
    )
    assert len(json.loads(res.stdout)["sweeps"][0]["x"]) == 4
    res = runner.invoke(cli, ["probe", "--config", str(cfg), "--json"], env={"HWLOOP_PROBE_POINTS": "6"})
    assert len(json.loads(res.stdout)["sweeps"][0]["x"]) == 6


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["train", "--device", "nosuch:x"], 2, "unknown device scheme 'nosuch'"),
        (["train", "--device", "sim:rapp?noise=loud"], 2, "not a valid float"),
        (["train", "--device", "sim:nosuch"], 2, "unknown simulator"),
        (["train", "--device", "sim", "--strategy", "magic"], 2, "Invalid value for '--strategy'"),
        (["train", "--device", "sim", "--queries", "3"], 2, "--queries"),
        (["train"], 2, "give --device URI"),
        (["apply", "--run", "/nonexistent/run", "--in", "t.npy", "--out", "x.npy"], 2, "does not exist"),
        (["eval", "--run", "/nonexistent/run", "--device", "sim"], 2, "does not exist"),
        (["log", "--run", "/nonexistent/run", "--export", "x.npz"], 2, "does not exist"),
        (["probe", "--device", "sim", "--config", "/nonexistent.toml"], 2, "does not exist"),
        (["nosuchcommand"], 2, "No such command"),
    ],
)
def test_bad_invocations_give_one_clear_line(
    runner: CliRunner, args: list[str], code: int, fragment: str
) -> None:
    res = runner.invoke(cli, args)
    assert res.exit_code == code, res.output
    assert fragment in res.stderr
    assert "Traceback" not in res.output


def test_bad_toml_and_wrong_shapes(runner: CliRunner, small_run: tuple[Path, dict], tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("device = [unclosed\n")
    res = runner.invoke(cli, ["probe", "--config", str(cfg)])
    assert res.exit_code == 2 and "not valid TOML" in res.stderr
    np.save(tmp_path / "t2.npy", np.zeros((4, 3), np.float32))
    res = runner.invoke(
        cli,
        [
            "apply",
            "--run",
            str(small_run[0]),
            "--in",
            str(tmp_path / "t2.npy"),
            "--out",
            str(tmp_path / "x.npy"),
        ],
    )
    assert res.exit_code == 2 and "shape (n, 1)" in res.stderr
    res = runner.invoke(cli, ["eval", "--run", str(small_run[0]), "--device", "sim:saleh_iq"])
    assert res.exit_code == 2 and "1->1 device" in res.stderr


def test_help_and_devices_do_not_import_tensorflow() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from hwloop.cli import cli; "
        "r = CliRunner().invoke(cli, ['devices']); assert r.exit_code == 0; "
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0; "
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_print_config_shows_the_effective_settings(runner: CliRunner, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[train]\ndevice = "sim:cubic"\nqueries = 4000\n')
    res = runner.invoke(
        cli,
        ["train", "--config", str(cfg), "--seed", "7", "--print-config"],
        env={"HWLOOP_TRAIN_STRATEGY": "ila"},
    )
    assert res.exit_code == 0, res.output
    import tomllib

    shown = tomllib.loads(res.stdout)["train"]
    assert shown["device"] == "sim:cubic" and shown["queries"] == 4000  # from the file
    assert shown["strategy"] == "ila" and shown["seed"] == 7  # from the environment, the command line


def test_tensorboard_scalars_are_written(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(
        cli,
        [
            "train",
            "--device",
            "sim:tanh",
            "--strategy",
            "ila",
            "--queries",
            "300",
            "--fit-steps",
            "250",
            "--eval-targets",
            "50",
            "--out",
            str(tmp_path / "r"),
            "--tensorboard",
            str(tmp_path / "tb"),
        ],
    )
    assert res.exit_code == 0, res.output
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 100
    from tensorflow.core.util import event_pb2
    from tensorflow.python.lib.io import tf_record

    tags = set()
    for raw in tf_record.tf_record_iterator(str(events[0])):
        ev = event_pb2.Event.FromString(raw)
        tags |= {v.tag for v in ev.summary.value}
    assert {"fit/loss", "queries/train"} <= tags
