"""``hwloop track``: checks, recalibration on degradation, the history, and resuming after kill -9."""

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
from click.testing import CliRunner

import hwloop
from hwloop.cli import cli
from hwloop.device import BaseDevice, DeviceInfo
from hwloop.drivers.serve import serve_in_thread
from hwloop.errors import UsageError
from hwloop.rundir import TrainOptions
from hwloop.strategies.track import TrackSettings, check_stretch, degraded
from hwloop.tracking import _same_device

SIGNAL = "ofdm:n=8192,papr=8,seed=3"
PARENT_QUERIES = 6000
SESSION = ["--budget", "4000", "--check-queries", "512", "--adapt-queries", "1024"]
DRIFT = "drift=script:0:25,1:60&rate=4096"  # 35 K over the first 4,096 samples the amplifier sees


def test_a_figure_degrades_past_the_threshold_only() -> None:
    base = {"acpr_dbc": -58.0, "evm_db": -47.0, "nmse_db": -45.0}
    now = {"acpr_dbc": -56.9, "evm_db": -46.5, "nmse_db": -40.0}
    assert degraded(now, base, ("acpr", "evm"), 1.0) == ["acpr"]
    assert degraded(now, base, ("evm",), 1.0) == []
    assert degraded(now, base, ("acpr", "nmse"), 2.0) == ["nmse"]
    assert degraded(base, base, ("acpr", "evm", "nmse"), 0.1) == []


def test_a_check_sends_the_window_around_the_largest_sample() -> None:
    from hwloop.dpd.signals import cplx, load_signal

    t = load_signal(SIGNAL)
    s = check_stretch(t, 512)
    (a, b), *_ = s.windows
    assert b - a == 512 and a <= int(np.argmax(np.abs(cplx(t)))) < b
    assert check_stretch(t, 512).windows == s.windows  # the same every time


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"check_queries": 100}, "--check-queries"),
        ({"adapt_queries": 300}, "--adapt-queries"),
        ({"budget": 300}, "does not pay for one check"),
        ({"threshold_db": 0.0}, "--threshold-db"),
        ({"watch": ("acpr", "snr")}, "--watch"),
    ],
)
def test_settings_that_cannot_work_are_refused(kwargs: dict, match: str) -> None:
    settings = {"budget": 4000, "adapt_queries": 1024, "check_queries": 512, **kwargs}
    with pytest.raises(UsageError, match=match):
        TrackSettings(**settings).check()


def test_the_same_device_at_another_condition_is_accepted_another_device_is_not() -> None:
    trained = hwloop.open_device("sim:pa_wh?seed=1").info.to_dict()
    _same_device(trained, hwloop.open_device("sim:pa_wh?seed=1&temp=60&vdd=4.5").info, "run")
    _same_device(trained, hwloop.open_device(f"sim:pa_wh?seed=1&{DRIFT}").info, "run")
    for other in ("sim:pa_gmp?seed=1", "sim:pa_wh?seed=2&temp=60", "sim:pa_wh?seed=1&sat=0.9"):
        with pytest.raises(UsageError, match="another device"):
            _same_device(trained, hwloop.open_device(other).info, "run")


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("track") / "parent"
    opts = TrainOptions(signal=SIGNAL, gain=2.0)
    hwloop.train("sim:pa_wh?seed=1", strategy="ila", queries=PARENT_QUERIES, run_dir=run, options=opts)
    return run


def copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_track_refuses_a_run_without_a_predistorter_and_leaves_no_session(tmp_path: Path) -> None:
    opts = TrainOptions(fit_steps=50, eval_targets=32, noise_repeats=16)
    hwloop.train("sim:saleh_iq", strategy="ila", queries=300, run_dir=tmp_path / "p", options=opts)
    res = CliRunner().invoke(cli, ["track", "--run", str(tmp_path / "p"), "--device", "sim:saleh_iq"])
    assert res.exit_code == 2 and "holds no GMP predistorter" in res.output
    assert not (tmp_path / "p" / "track").exists()


@pytest.mark.slow
def test_track_recalibrates_through_a_drift_and_keeps_every_version(parent: Path, tmp_path: Path) -> None:
    from hwloop.dpd.metrics import acpr_db, evm_db
    from hwloop.dpd.signals import load_signal

    run = copy_run(parent, tmp_path / "run")
    device = f"sim:pa_wh?seed=1&{DRIFT}"
    res = hwloop.track(run, device, budget=4000, check_queries=512, adapt_queries=1024)
    m = res.metrics
    assert m["stopped"] == "budget" and 4000 - 512 < m["queries_used"] <= 4000
    assert m["queries_used"] == m["check_queries_used"] + m["adapt_queries_used"]
    history = json.loads((run / "track" / "history.json").read_text())
    versions, checks = history["versions"], history["checks"]
    assert [v["version"] for v in versions] == list(range(len(versions))) and len(versions) >= 2
    trained = json.loads((run / "metrics.json").read_text())["queries_used"]
    assert versions[0]["reason"] == "trained" and versions[0]["queries"] == trained <= PARENT_QUERIES
    for v in versions:
        assert (run / "track" / f"v{v['version']:03d}" / "inverse.keras").is_file()
        assert (run / "track" / f"v{v['version']:03d}" / "surrogate_gmp.npz").is_file()
    for v in versions[1:]:  # what each cost: its recalibration and the check that started it
        assert v["queries"] == 1024 + 512 and "degraded" in v["reason"]
        assert checks[v["check"]]["adapted_to"] == v["version"]
    assert [c["check"] for c in checks] == list(range(len(checks))) == list(range(m["checks"]))
    temps = [c["condition"]["temp"] for c in checks]
    # the amplifier heated through the session: the last check starts past 4000 - 512 - 1024 samples sent
    assert temps == sorted(temps) and temps[-1] > 25 + 35 * (4000 - 512 - 1024) / 4096
    assert checks[0]["baseline"] and checks[0]["version"] == 0
    # the version in service is the run's inverse, loadable as ever, and the one the summary names
    current = hwloop.load_inverse(run)
    last = hwloop.load_inverse(run / "track" / f"v{m['current_version']:03d}")
    np.testing.assert_array_equal(current.model.coeffs, last.model.coeffs)
    assert json.loads((run / "metrics.json").read_text())["track"]["current_version"] == m["current_version"]
    with sqlite3.connect(run / "track" / "s001" / "queries.sqlite") as db:
        assert db.execute("SELECT count(*) FROM queries").fetchone()[0] == m["queries_used"]
    # the version in service is better than the trained one at the condition it was recalibrated at
    adopted = next(c for c in checks if c.get("adapted_to") == m["current_version"])["condition"]["temp"]
    hot = hwloop.open_device(f"sim:pa_wh?noise=0&temp={adopted:.3f}")
    t = 2 * load_signal("ofdm:n=4096,papr=8,seed=9")
    first = hwloop.load_inverse(run / "track" / "v000")
    y_now, y_first = hot.clean_sequence(current.apply(t)), hot.clean_sequence(first.apply(t))
    assert acpr_db(y_now) < acpr_db(y_first)
    assert evm_db(y_now, t, 1.0) < evm_db(y_first, t, 1.0) - 6  # the gain it lost, restored
    # a second session starts from the version in service
    again = hwloop.track(run, device, budget=600, check_queries=512, adapt_queries=1024)
    assert again.metrics["session"] == "s002" and again.metrics["checks"] == 1
    assert (
        json.loads((run / "track" / "history.json").read_text())["checks"][-1]["version"]
        == m["current_version"]
    )


class Counting(BaseDevice):
    """The served amplifier: counts every row it really answers; its memory resets with it."""

    def __init__(self, uri: str) -> None:
        self.inner = hwloop.open_device(uri)
        super().__init__(DeviceInfo(**{**self.inner.info.to_dict(), "envelope": None}))

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        return self.inner.query(x)

    def _reset(self) -> None:
        self.inner.reset()


def session_rows(run: Path) -> int:
    path = run / "track" / "s001" / "queries.sqlite"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM queries").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def session_stopped(run: Path) -> bool:
    path = run / "track" / "s001" / "state.json"
    return path.is_file() and json.loads(path.read_text()).get("stopped") is not None


def hwloop_cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "hwloop.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


WINDOW = 2


@pytest.mark.slow
def test_killed_tracking_resumes_without_paying_a_logged_query_twice(tmp_path: Path) -> None:
    run = tmp_path / "run"
    nominal = Counting("sim:pa_wh?seed=1")
    with serve_in_thread(nominal, pty=True, window=WINDOW) as server:  # the parent, trained on the link
        opts = TrainOptions(signal=SIGNAL, gain=2.0)
        hwloop.train(
            f"serial://{server.url}", strategy="ila", queries=PARENT_QUERIES, run_dir=run, options=opts
        )
    drifting = Counting(f"sim:pa_wh?seed=1&{DRIFT}")
    rng = np.random.default_rng(3)
    kills = 0
    with serve_in_thread(drifting, pty=True, window=WINDOW) as server:
        url = f"serial://{server.url}"
        probe = hwloop.open_device(url)
        max_batch = probe.info.max_batch
        probe.close()
        command = ["track", "--run", str(run), "--device", url, *SESSION, "--json"]
        for rows in (600, 1500, 2300):  # mid-check, mid-recalibration, wherever the rows land
            proc = hwloop_cli(command)
            deadline = time.monotonic() + 900
            while proc.poll() is None and session_rows(run) < rows and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(float(rng.uniform(0.0, 0.5)))
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            if session_stopped(run):  # it had finished its session: a kill of nothing that matters
                break
            kills += 1
        proc = hwloop_cli(command)
        out, err = proc.communicate(timeout=1800)
        assert proc.returncode == 0, err
        final = json.loads(out)
        served = drifting.stats.queries
    assert kills >= 2 and final["resumed"] and final["stopped"] == "budget"
    logged = session_rows(run)
    assert logged == final["queries_used"]
    with sqlite3.connect(run / "track" / "s001" / "queries.sqlite") as db:
        ids = [r[0] for r in db.execute("SELECT id FROM queries ORDER BY id")]
    assert ids == list(range(1, len(ids) + 1))  # no gap, nothing logged twice
    # Every row the amplifier answered is in the log, but the chunks in flight at each kill and the
    # re-warm of the sequence a resumed process found half sent (at most one 512-sample stretch).
    assert served <= logged + kills * (WINDOW * max_batch + 512), (served, logged, kills)
    history = json.loads((run / "track" / "history.json").read_text())
    versions, checks = history["versions"], history["checks"]
    assert [v["version"] for v in versions] == list(range(len(versions)))
    assert len(versions) == 1 + sum(1 for c in checks if c.get("adapted_to") is not None) >= 2
    assert [c["check"] for c in checks] == list(range(final["checks"]))
    for v in versions:
        assert (run / "track" / f"v{v['version']:03d}" / "inverse.keras").is_file()


@pytest.mark.slow
def test_cli_track_json_and_the_settings_of_an_unfinished_session(parent: Path, tmp_path: Path) -> None:
    run = copy_run(parent, tmp_path / "run")
    device = "sim:pa_wh?seed=1&temp=40"
    args = ["track", "--run", str(run), "--device", device, "--max-checks", "1", "--check-queries", "512"]
    res = CliRunner().invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["checks"] == 1 and m["stopped"] == "max_checks" and m["queries_used"] == 512
    assert m["session"] == "s001" and not m["resumed"] and m["last_check"]["acpr_dbc"] < -40
    assert m["budget"] == json.loads((run / "metrics.json").read_text())["queries_used"]  # the default
    # as if killed: the session has not stopped; other settings given again are refused
    state = json.loads((run / "track" / "s001" / "state.json").read_text())
    (run / "track" / "s001" / "state.json").write_text(json.dumps({**state, "stopped": None}))
    res = CliRunner().invoke(cli, ["track", "--run", str(run), "--device", device, "--threshold-db", "3"])
    assert res.exit_code == 2 and "unfinished tracking session (s001)" in res.output
    res = CliRunner().invoke(cli, ["track", "--run", str(run), "--device", device, "--json"])
    assert res.exit_code == 0, res.output
    again = json.loads(res.stdout)
    assert again["resumed"] and again["session"] == "s001" and again["stopped"] == "max_checks"
    res = CliRunner().invoke(cli, ["track", "--run", str(run), "--device", "sim:pa_gmp?seed=1"])
    assert res.exit_code == 2 and "another device" in res.output
