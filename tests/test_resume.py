"""Durable runs: kill -9 at random moments, resume, and lose or repeat no measurement."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import hwloop
from hwloop.device import BaseDevice
from hwloop.drivers.serve import serve_in_thread
from hwloop.querylog import open_run_log
from hwloop.run import TrainOptions
from hwloop.simulators.catalog import make_sim

BUDGET = 2000
TRAIN_ARGS = ["--strategy", "iila", "--queries", str(BUDGET), "--fit-steps", "300", "--eval-targets", "200"]


class Counting(BaseDevice):
    """The served device: counts every row it really answers."""

    def __init__(self) -> None:
        self.inner = make_sim("tanh", seed=3)
        super().__init__(self.inner.info)

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        return self.inner.query(x)


def hwloop_cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "hwloop.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(out)


def logged_train_rows(run: Path) -> int:
    """Train rows committed so far, read the way a second process would (read-only)."""
    try:
        with sqlite3.connect(f"file:{run / 'queries.sqlite'}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM queries WHERE kind = 'train'").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet, or its schema is not written yet
        return 0


def kill_after(proc: subprocess.Popen, run: Path, rows: int, extra_s: float) -> bool:
    """SIGKILL `proc` `extra_s` seconds after the log holds `rows` train rows; False if it ended first.

    Killing on progress rather than on a wall-clock sleep makes the test mean the
    same on a fast machine and a slow one; the extra delay lands the kill at an
    arbitrary moment: mid-chunk, mid-fit or mid-commit.
    """
    deadline = time.monotonic() + 300
    while proc.poll() is None and logged_train_rows(run) < rows and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(extra_s)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return True


WINDOW = 2


@pytest.mark.slow
def test_kill_nine_five_times_then_resume(tmp_path: Path) -> None:
    """A supervisor restarts the same command line, ``--resume`` included from the first try:
    the first attempt is killed in its first second (nothing written yet), four more at
    jittered row counts, and the sixth finishes."""
    rng = np.random.default_rng(7)
    device = Counting()
    run = tmp_path / "run"
    targets = [0, *((np.array([0.15, 0.4, 0.6, 0.8]) + rng.uniform(-0.05, 0.05, 4)) * BUDGET)]
    delays = [float(rng.uniform(0.1, 1.0)), *rng.uniform(0.0, 0.8, 4)]
    with serve_in_thread(device, pty=True, window=WINDOW) as server:
        url = f"serial://{server.url}"
        probe = hwloop.open_device(url)
        max_batch = probe.info.max_batch
        probe.close()
        rows_before = device.stats.queries
        command = ["train", "--resume", "--device", url, *TRAIN_ARGS, "--out", str(run), "--json"]
        kills = 0
        for target, delay in zip(targets, delays, strict=True):
            kills += kill_after(hwloop_cli(command), run, int(target), delay)
            if kills == 1:
                assert not (run / "config.toml").exists() or logged_train_rows(run) == 0
        metrics = finish(hwloop_cli(command))
        served = device.stats.queries - rows_before
    assert kills >= 4  # the attempts really were killed mid-run
    assert metrics["queries_used"] == BUDGET
    # Every row the device answered is logged, but for the chunks in flight at each kill: the
    # meter hands the driver whole batches and the driver keeps up to WINDOW chunks on the wire.
    assert served <= BUDGET + metrics["eval_queries"] + kills * WINDOW * max_batch, (served, kills, max_batch)
    log = open_run_log(run)
    with sqlite3.connect(run / "queries.sqlite") as db:
        ids = [r[0] for r in db.execute("SELECT id FROM queries ORDER BY id")]
    assert ids == list(range(1, len(ids) + 1))  # no gap
    assert len(ids) == BUDGET + metrics["eval_queries"]  # nothing logged twice, nothing missing
    x_train, _ = log.arrays("train")
    # No measurement logged twice: every input away from the clip bounds occurs once.
    inner = x_train[np.abs(x_train[:, 0]) < 1.0]
    assert len({row.tobytes() for row in inner}) == len(inner) > BUDGET * 0.9
    assert metrics["replayed_rows"] > 0

    # Comparable to an uninterrupted run with the same seed (fresh noise, same plan).
    straight = hwloop.train(
        "sim:tanh?seed=3",
        strategy="iila",
        queries=BUDGET,
        seed=0,
        run_dir=tmp_path / "s",
        options=TrainOptions(fit_steps=300, eval_targets=200),
    )
    assert abs(straight.metrics["closed_loop_nmse_db"] - metrics["closed_loop_nmse_db"]) < 3.0


def test_resume_replays_instead_of_requerying(tmp_path: Path) -> None:
    """A finished run resumed again is answered entirely from its log."""
    opts = TrainOptions(fit_steps=100, eval_targets=64, noise_repeats=16)
    first = hwloop.train("sim:saleh", strategy="auto", queries=800, seed=1, run_dir=tmp_path, options=opts)
    dev = make_sim("saleh")  # the same device (a run is bound to it), opened anew
    again = hwloop.train(dev, run_dir=tmp_path, resume=True)
    assert dev.stats.queries == 0
    assert again.metrics["replayed_rows"] == first.metrics["queries_used"] + first.metrics["eval_queries"]
    assert again.metrics["closed_loop_nmse_db"] == first.metrics["closed_loop_nmse_db"]


def test_resume_on_a_directory_without_a_run_starts_it(tmp_path: Path) -> None:
    opts = TrainOptions(fit_steps=50, eval_targets=32, noise_repeats=16)
    for where in (tmp_path / "missing", tmp_path / "empty"):
        if where.name == "empty":
            where.mkdir()
        res = hwloop.train("sim:tanh", strategy="ila", queries=200, run_dir=where, options=opts, resume=True)
        assert res.metrics["queries_used"] == 200 and res.metrics["replayed_rows"] == 0
        assert (where / "config.toml").is_file()


def test_resume_refuses_a_log_without_its_plan(tmp_path: Path) -> None:
    from hwloop.errors import RunDirError
    from hwloop.querylog import QueryLog

    QueryLog(tmp_path / "queries.sqlite", 1, 1).close()
    with pytest.raises(RunDirError, match=r"no config\.toml"):
        hwloop.train("sim:tanh", run_dir=tmp_path, resume=True)


def test_resume_on_another_device_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    """A run is bound to its device by INFO, not by its URI: another simulator, or the same one
    with other parameters (its identity is in INFO's firmware string), is a usage error."""
    from hwloop.errors import UsageError

    opts = TrainOptions(fit_steps=50, eval_targets=32, noise_repeats=16)
    hwloop.train("sim:tanh?seed=3", strategy="ila", queries=300, run_dir=tmp_path, options=opts)
    config = (tmp_path / "config.toml").read_text()
    for other in (make_sim("rapp"), make_sim("tanh", seed=4), make_sim("tanh", gain=2.0, seed=3)):
        with pytest.raises(UsageError, match="trained on another device"):
            hwloop.train(other, run_dir=tmp_path, resume=True)
        assert other.stats.queries == 0
    assert (tmp_path / "config.toml").read_text() == config  # not rewritten to the other device
    same = make_sim("tanh", seed=3, max_batch=64)  # another transport limit, the same device
    again = hwloop.train(same, run_dir=tmp_path, resume=True)
    assert same.stats.queries == 0  # the finished run is answered from its log, in smaller chunks
    assert again.metrics["replayed_rows"] > 300 and open_run_log(tmp_path).count("train") == 300


def test_the_cap_holds_across_five_resumes_of_a_diverged_run(tmp_path: Path) -> None:
    """A run whose replay diverges from its log (here: one logged input changed, as a
    non-deterministic step would) may not measure past its budget, however often it is resumed."""
    opts = TrainOptions(fit_steps=50, eval_targets=32, noise_repeats=16)
    hwloop.train("sim:tanh", strategy="iila", queries=600, run_dir=tmp_path, options=opts)
    with sqlite3.connect(tmp_path / "queries.sqlite") as db:
        row_id, blob = db.execute(
            "SELECT id, x FROM queries WHERE kind = 'train' ORDER BY id LIMIT 1"
        ).fetchone()
        changed = np.frombuffer(blob, "<f4").copy()
        changed[0] = -changed[0] if changed[0] else 0.5
        db.execute("UPDATE queries SET x = ? WHERE id = ?", (changed.tobytes(), row_id))
    for _ in range(5):
        dev = make_sim("tanh")
        try:
            hwloop.train(dev, run_dir=tmp_path, resume=True)
        except hwloop.HwloopError as exc:
            assert "the cap holds across resumes" in str(exc)
        assert open_run_log(tmp_path).count("train") <= 600


def test_a_resume_keeps_the_figures_hwloop_eval_wrote(tmp_path: Path) -> None:
    """metrics.json's ``eval`` (hwloop eval's latest, as eval.json holds it) survives a resume,
    which rewrites training's figures from the replayed run."""
    from click.testing import CliRunner

    from hwloop.cli import cli

    opts = TrainOptions(fit_steps=50, eval_targets=32, noise_repeats=16)
    hwloop.train("sim:tanh?seed=3", strategy="ila", queries=200, run_dir=tmp_path, options=opts)
    res = CliRunner().invoke(cli, ["eval", "--run", str(tmp_path), "--device", "sim:tanh?seed=3"])
    assert res.exit_code == 0, res.output
    figures = json.loads((tmp_path / "eval.json").read_text())
    assert json.loads((tmp_path / "metrics.json").read_text())["eval"] == figures
    hwloop.train(make_sim("tanh", seed=3), run_dir=tmp_path, resume=True)
    after = json.loads((tmp_path / "metrics.json").read_text())
    assert after["eval"] == figures and after["replayed_rows"] > 200
