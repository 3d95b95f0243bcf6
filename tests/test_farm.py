"""Device farms on a real Ray cluster (two nodes on loopback, see ray_fixtures.py).

Units are simulators with a latency per call, so runs overlap the way
latency-bound hardware does; budgets are small to keep each farm to seconds.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from ray_fixtures import HOST_A, HOST_B, RayCluster

import hwloop
from hwloop.cli import cli
from hwloop.errors import UsageError
from hwloop.farm.units import parse_devices_file, unit_names

SMALL = ["--strategy", "ila", "--queries", "300", "--fit-steps", "300", "--eval-targets", "64"]
SMALL_KW = {"strategy": "ila", "queries": 300, "fit_steps": 300, "eval_targets": 64}
LAYOUT = ("config.toml", "queries.sqlite", "inverse.keras", "metrics.json")


def farm_cli(args: list[str]) -> tuple[int, dict | None, str]:
    res = CliRunner().invoke(cli, ["farm", *args])
    data = json.loads(res.stdout) if res.stdout.strip() else None
    return res.exit_code, data, res.stderr


def logged_rows(run_dir: Path) -> int:
    with sqlite3.connect(f"file:{run_dir / 'queries.sqlite'}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM queries").fetchone()[0]


def rows_so_far(run_dir: Path) -> int:
    """Rows a running unit has logged; 0 while its log is still being created."""
    try:
        return logged_rows(run_dir)
    except sqlite3.Error:
        return 0


def test_unit_names_and_devices_file(tmp_path: Path) -> None:
    names = unit_names(
        ["sim:rapp?seed=1", "sim:rapp?seed=1", "/dev/ttyUSB0", "..", "rfc2217://127.0.0.1:7000"]
    )
    assert len(set(names)) == 5
    assert all(n and "/" not in n and not n.startswith(".") for n in names)
    assert names[3] == "unit" and names[4] == "rfc2217-127.0.0.1-7000"
    good = tmp_path / "devices.txt"
    good.write_text("# the lab\n\nsim:rapp?seed=1 resource=hwloop:pa3\n  sim:tanh   # spare\n")
    specs = parse_devices_file(good)
    assert [(s.uri, s.resource) for s in specs] == [("sim:rapp?seed=1", "hwloop:pa3"), ("sim:tanh", None)]
    bad = tmp_path / "bad.txt"
    bad.write_text("sim:tanh\nsim:rapp resource=\n")
    with pytest.raises(UsageError, match=r"bad.txt:2: "):
        parse_devices_file(bad)
    code, data, err = farm_cli(["--devices-file", str(bad), "--out", str(tmp_path / "f")])
    assert code == 2 and data is None
    assert err.count("\n") == 1 and "bad.txt:2:" in err
    import hwloop.farm  # the package stays importable without Ray; the entry point is run_farm

    assert callable(hwloop.run_farm) and hwloop.run_farm.__module__ == "hwloop.farm.api"


def test_without_ray_one_line_and_core_never_imports_ray(tmp_path: Path) -> None:
    blocked = (
        "import sys; sys.modules['ray'] = None; from hwloop.cli import main; "
        f"sys.argv = ['hwloop', 'farm', '--device', 'sim', '--out', {str(tmp_path / 'f')!r}]; main()"
    )
    res = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "pip install 'hwloop[cluster]'" in res.stderr
    probe = "import sys, hwloop, hwloop.cli, hwloop.run, hwloop.cli.farm; print('ray' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "False", res.stderr


def test_two_hosts_pinned_and_bad_units_fail_alone(ray_cluster: RayCluster, tmp_path: Path) -> None:
    devices = tmp_path / "lab.txt"
    devices.write_text(
        f"# two hosts\nsim:rapp?seed=1&latency=0.005 resource={HOST_A}\n\n"
        f"sim:rapp?seed=2&latency=0.005 resource={HOST_B}\n"
        "serial:///dev/ttyNOPE0\n"  # a port no host has: fails when its actor opens it
        "sim:rapp?seed=3 resource=hwloop:nowhere\n"
    )
    out = tmp_path / "farm"
    code, data, err = farm_cli(["--devices-file", str(devices), *SMALL, "--out", str(out), "--json"])
    assert code == 1, err
    assert data == json.loads((out / "farm.json").read_text())
    units = {u["device"]: u for u in data["units"]}
    assert data["ok"] == 2 and data["failed"] == 2
    for seed, host in ((1, HOST_A), (2, HOST_B)):
        u = units[f"sim:rapp?seed={seed}&latency=0.005"]
        assert u["status"] == "ok" and u["node_id"] == ray_cluster.node_of[host], u
        for key in ("closed_loop_nmse_db", "noise_floor_db", "queries_used", "eval_queries", "wall_s"):
            assert key in u
        assert u["queries_used"] == 300 and u["closed_loop_nmse_db"] < -25
        run = Path(u["run_dir"])
        assert run == out / u["unit"] and all((run / f).is_file() for f in LAYOUT)
        assert f'device = "{u["device"]}"' in (run / "config.toml").read_text()
        assert logged_rows(run) == 300 + u["eval_queries"] == u["history"][0]["actor_stats"]["rows"]
    assert "DeviceDisconnected" in units["serial:///dev/ttyNOPE0"]["error"]
    assert "hwloop:nowhere" in units["sim:rapp?seed=3"]["error"]
    for u in data["units"]:
        if u["status"] == "failed":
            assert "\n" not in u["error"]
    assert sum(" ok, closed-loop NMSE" in line for line in err.splitlines()) == 2
    assert sum("FAILED" in line for line in err.splitlines()) == 2


def test_killed_device_actor_is_retried_from_the_log(ray_cluster: RayCluster, tmp_path: Path) -> None:
    import ray
    from ray.exceptions import RayActorError

    from hwloop.farm.driver import ACTOR_NAMESPACE

    victim = "sim:rapp?seed=4&latency=0.05&max_batch=16"
    bystander = "sim:rapp?seed=5&latency=0.01&max_batch=16"
    out = tmp_path / "farm"
    killed: dict = {}

    def kill_mid_run() -> None:
        unit = unit_names([victim, bystander])[0]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "rows" not in killed:
            names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
            mine = [n for n in names if n.endswith(f"/{unit}/1")]
            if mine:
                actor = ray.get_actor(mine[0], namespace=ACTOR_NAMESPACE)
                try:
                    rows = ray.get(actor.stats.remote())["rows"]
                except RayActorError:  # finished (and reaped) before it got that far
                    return
                if rows >= 96:  # six calls into its 300 training queries
                    ray.kill(actor)
                    killed["rows"] = rows
            time.sleep(0.05)

    thread = threading.Thread(target=kill_mid_run, daemon=True)
    thread.start()
    result = hwloop.run_farm([victim, bystander], out=out, **SMALL_KW)
    thread.join(timeout=5)
    assert killed.get("rows", 0) >= 96, "the device actor was never killed mid-run"
    assert result.ok, result.failed
    v, b = result.units
    assert b["attempts"] == 1 and len(b["history"]) == 1
    assert v["attempts"] == 2 and [h["status"] for h in v["history"]] == ["actor_died", "ok"]
    second = v["history"][1]
    assert second["resumed"] and second["logged_before"] > 0
    # every logged row was replayed, and the new actor was asked exactly the rest
    assert v["replayed_rows"] == second["logged_before"]
    assert second["actor_stats"]["rows"] == v["device_rows"]
    assert logged_rows(Path(v["run_dir"])) == second["logged_before"] + second["actor_stats"]["rows"]
    assert v["queries_used"] == 300
    assert f'device = "{victim}"' in (Path(v["run_dir"]) / "config.toml").read_text()


def test_resume_a_killed_farm(ray_cluster: RayCluster, tmp_path: Path) -> None:
    fast = "sim:rapp?seed=6"
    slow = "sim:rapp?seed=7&latency=0.05&max_batch=8"
    out = tmp_path / "farm"
    cmd = [sys.executable, "-m", "hwloop.cli", "farm", "--device", fast, "--device", slow, *SMALL]
    cmd += ["--out", str(out), "--ray-address", ray_cluster.address]
    log = tmp_path / "farm.err"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh, env={**os.environ})
    fast_unit, slow_unit = unit_names([fast, slow])
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            state = json.loads((out / "farm.json").read_text()) if (out / "farm.json").is_file() else None
            slow_log = out / slow_unit / "queries.sqlite"
            if (
                state
                and state["units"][0]["status"] == "ok"
                and slow_log.is_file()
                and rows_so_far(out / slow_unit) >= 40
            ):
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        else:
            pytest.fail(f"farm made no progress:\n{log.read_text()}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    before = json.loads((out / "farm.json").read_text())
    assert before["units"][1]["status"] == "running" and not (out / slow_unit / "metrics.json").exists()
    kept = (out / fast_unit / "metrics.json").stat().st_mtime_ns

    code, data, err = farm_cli(["--resume", "--out", str(out), "--json"])
    assert code == 0, err
    f, s = data["units"]
    assert f == before["units"][0], "an ok unit must be kept as it was"
    assert (out / fast_unit / "metrics.json").stat().st_mtime_ns == kept
    assert s["status"] == "ok" and s["history"][-1]["resumed"]
    assert s["replayed_rows"] == s["history"][-1]["logged_before"] >= 40
    assert s["device_rows"] == logged_rows(out / slow_unit) - s["replayed_rows"]
    code, _, err = farm_cli(["--resume", "--out", str(out), "--device", fast])
    assert code == 2 and "drop devices" in err


def test_a_device_lost_mid_run_fails_its_unit_only(ray_cluster: RayCluster, tmp_path: Path) -> None:
    from serial_fixtures import start_serve, stop_process

    proc, pty = start_serve("sim:tanh?seed=8&latency=0.05&max_batch=16", tmp_path)
    lost = f"serial://{pty}?reconnect=0&timeout=0.5&retries=1"
    bystander = "sim:rapp?seed=9&latency=0.01&max_batch=16"
    lost_unit = unit_names([lost, bystander])[0]
    unplugged: dict = {}

    def unplug_mid_run() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (tmp_path / "farm" / lost_unit / "queries.sqlite").is_file():
                rows = rows_so_far(tmp_path / "farm" / lost_unit)
                if rows >= 64:
                    stop_process(proc)  # the port vanishes under the running unit
                    unplugged["rows"] = rows
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=unplug_mid_run, daemon=True)
    thread.start()
    try:
        result = hwloop.run_farm([lost, bystander], out=tmp_path / "farm", **SMALL_KW)
    finally:
        thread.join(timeout=5)
        stop_process(proc)
    assert unplugged.get("rows", 0) >= 64, "the port was never unplugged mid-run"
    lost_entry, ok_entry = result.units
    assert lost_entry["status"] == "failed" and lost_entry["attempts"] == 1
    assert lost_entry["error"].startswith("Device") and "\n" not in lost_entry["error"]
    assert ok_entry["status"] == "ok" and ok_entry["queries_used"] == 300
    assert json.loads((tmp_path / "farm" / "farm.json").read_text())["failed"] == 1
