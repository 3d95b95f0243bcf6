"""The radio from the command line: serve-bench --radio (any device URI as its amplifier), probe, train."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PLUGIN = '''
"""A third-party I/Q amplifier: memoryless, a soft limiter on the magnitude with a little AM/PM."""
import numpy as np

from hwloop.device import BaseDevice, DeviceInfo, IQEnvelope


class Limiter(BaseDevice):
    def __init__(self) -> None:
        super().__init__(DeviceInfo("demo-iq-limiter", 2, 2, 1 << 20, (-1.0, -1.0), (1.0, 1.0),
                                    stateful=True, envelope=IQEnvelope(((0, 1),), 1.0)))

    def _query_batch(self, x):
        z = x[:, 0].astype(np.float64) + 1j * x[:, 1]
        y = 2.0 * np.tanh(np.abs(z)) * np.exp(1j * (np.angle(z) + 0.2 * np.abs(z) ** 2))
        return np.stack([y.real, y.imag], axis=1).astype(np.float32)


def open_limiter(uri: str) -> Limiter:
    return Limiter()
'''


def _hwloop(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hwloop.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def _plugin_site(tmp_path: Path) -> Path:
    """A package registering ``demoamp:`` in ``hwloop.devices``, as pip would install it."""
    site = tmp_path / "site"
    info = site / "hwloop_demoamp-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "hwloop_demoamp.py").write_text(textwrap.dedent(PLUGIN))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hwloop-demoamp\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[hwloop.devices]\ndemoamp = hwloop_demoamp:open_limiter\n")
    return site


def _serve(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / "radio.toml"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hwloop.cli",
            "serve-bench",
            "--radio",
            "--port",
            "0",
            "--write",
            str(out),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    t0 = time.monotonic()
    while not out.exists():
        assert proc.poll() is None and time.monotonic() - t0 < 120, proc.stderr.read()
        time.sleep(0.1)
    time.sleep(0.2)
    return proc, out


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return stdout


def test_serve_bench_radio_prints_a_file_that_opens_and_probe_reports_the_radio(tmp_path: Path) -> None:
    proc, out = _serve(tmp_path, "--cfo-hz", "-120", "--device-class", "ad9364")
    try:
        env = {**os.environ, "HWLOOP_ALLOW_RF": "1", "HWLOOP_OPERATOR": "pytest"}
        r = _hwloop("probe", "--device", f"bench:{out}", "--json", env=env)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)["bench"]
        assert report["cfo_hz"] == pytest.approx(-120, abs=2)
        assert report["dc_offset_dbfs"] == pytest.approx(-40, abs=1)
        assert report["image_rejection_db"] < 40 < report["image_rejection_corrected_db"]
        assert report["compression_db_at_peak"] < -0.5 and report["headroom_db"] > 3
        assert {"delay_samples", "gain_db", "noise_floor_dbfs", "am_am_dbfs_db"} <= set(report)
    finally:
        stdout = _stop(proc)
    assert "[radio]" in stdout and 'device = "ad9364"' in stdout and "max_tx_gain_db" in stdout


def test_a_plugin_device_is_the_amplifier_behind_the_fake_radio(tmp_path: Path) -> None:
    site = _plugin_site(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc, out = _serve(tmp_path, "--pa", "demoamp:", env=env)
    try:
        armed = {**env, "HWLOOP_ALLOW_RF": "1", "HWLOOP_OPERATOR": "pytest"}
        r = _hwloop("probe", "--device", f"bench:{out}", "--json", env=armed)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)["bench"]
    finally:
        _stop(proc)
    # tanh(|x|) / |x| near |x| = 1: the limiter's own compression at full drive, -2.4 dB (sim:pa_wh: -1.8)
    assert report["compression_db_at_peak"] == pytest.approx(-2.3, abs=0.15)
    assert abs(report["delay_fraction_samples"]) < 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--radio", "--dialect", "rs"], "--dialect is not for --radio"),
        (["--device-class", "ad9361"], "--device-class needs --radio"),
        (["--radio", "--pa", "sim:rapp"], "I/Q device"),
        (["--radio", "--pa", "nosuch:thing"], "unknown device scheme"),
        (["--radio", "--fs", "1e9"], "outside a radio's"),
    ],
)
def test_serve_bench_refuses_what_would_not_act(args: list[str], message: str) -> None:
    r = (
        _hwloop("serve-bench", "--port", "0", *args, timeout=120)
        if "--radio" in args
        else _hwloop("serve-bench", "--generator-port", "0", "--analyser-port", "0", *args, timeout=120)
    )
    assert r.returncode == 2 and message in r.stderr and r.stderr.strip().count("\n") == 0


@pytest.mark.slow
def test_train_a_predistorter_through_the_fake_radio(tmp_path: Path) -> None:
    proc, out = _serve(tmp_path)
    try:
        env = {**os.environ, "HWLOOP_ALLOW_RF": "1", "HWLOOP_OPERATOR": "pytest"}
        run = tmp_path / "run"
        r = _hwloop(
            "train", "--device", f"bench:{out}", "--signal", "ofdm:n=8192,papr=8,seed=0", "--gain", "0.8",
            "--queries", "6000", "--out", str(run), "--json", env=env, timeout=1200,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-3000:]
        m = json.loads(r.stdout)
        assert m["queries_used"] <= 6000 and m["acpr_dbc"] < m["acpr_dbc_no_dpd"] - 5
        log = [json.loads(line) for line in (run / "interlock.jsonl").read_text().splitlines()]
        assert log[0]["event"] == "armed" and log[-1]["event"] == "closed"
        assert any(r["event"] == "calibrated" for r in log)
    finally:
        _stop(proc)
