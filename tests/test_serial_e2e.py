"""End to end over a real byte stream: `hwloop train` against `hwloop serve` and the AVR firmware.

- `hwloop train --device serial://PTY` against `hwloop serve --device sim:tanh --pty`,
  both real subprocesses;
- the fault-tolerance acceptance check: a 3,000-query training run through a
  peer that drops, garbles, duplicates and reboots, where every logged (x, y)
  must be exactly what the device answered for that x;
- training against the ATmega328P firmware under simavr reaches its noise floor.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hwloop
from hwloop import BaseDevice, open_device
from hwloop.drivers.serial_device import SerialDevice, open_serial
from hwloop.drivers.serve import FaultConfig, serve_in_thread
from hwloop.querylog import open_run_log
from hwloop.run import TrainOptions

TRAIN_TIMEOUT_S = 600


def tanh15(x: np.ndarray) -> np.ndarray:
    """sim:tanh with its default gain 1.5."""
    return np.tanh(1.5 * x)


def hwloop_cli(*args: str, timeout: float = TRAIN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """``python -m hwloop.cli ARGS`` in a fresh interpreter, with a deadline."""
    return subprocess.run(
        [sys.executable, "-m", "hwloop.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def train_json(url: str, out: Path, *extra: str) -> dict[str, Any]:
    res = hwloop_cli("train", "--device", url, "--strategy", "ila", "--json", "--out", str(out), *extra)
    assert res.returncode == 0, f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, f"--json must print exactly one line on stdout, got:\n{res.stdout}"
    return json.loads(lines[0])


# ------------------------------------------------------------------ a. CLI against `hwloop serve`


def test_cli_train_against_hwloop_serve_subprocess(served_tanh: str, tmp_path: Path) -> None:
    url = f"serial://{served_tanh}"
    out = tmp_path / "run"
    t0 = time.monotonic()
    m = train_json(url, out, "--queries", "3000", "--fit-steps", "3000", "--eval-targets", "500")
    wall = time.monotonic() - t0

    assert m["device"] == url and m["strategy"] == "ila" and m["run_dir"] == str(out)
    assert m["queries_used"] == 3000
    assert m["eval_queries"] >= 500 + 500  # targets, then their closed loop (+ noise repeats)
    assert m["noise_floor_db"] is not None and -60 < m["noise_floor_db"] < -50, m  # sigma 1e-3 on tanh
    assert m["closed_loop_nmse_db"] < -40, m
    assert m["closed_loop_nmse_db"] - m["noise_floor_db"] <= 6.0, m
    assert 0 < m["wall_s"] < wall

    # the run directory (CONTRACT files, plus device.json)
    for name in ("config.toml", "queries.sqlite", "inverse.keras", "metrics.json", "device.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert {k: v for k, v in saved.items() if k != "train_curve"} == m
    assert url in (out / "config.toml").read_text()
    qlog = open_run_log(out)
    try:
        assert qlog.count("train") == m["queries_used"]
        assert qlog.count("eval") + qlog.count("noise") == m["eval_queries"]
        x, y = qlog.arrays("train")
    finally:
        qlog.close()
    assert np.all(np.abs(x) <= 1.0) and np.all(np.isfinite(y))
    # the log holds the device's answers: tanh(1.5 x) within the noise (sigma 1e-3 -> 7 sigma)
    assert np.max(np.abs(y - tanh15(x))) < 7e-3

    inv = hwloop.load_inverse(out)
    t = np.linspace(-0.7, 0.7, 50, dtype=np.float32)[:, None]
    xs = inv.apply(t)
    assert xs.shape == (50, 1) and np.all(np.abs(xs) <= 1.0)
    np.testing.assert_allclose(tanh15(xs), t, atol=0.01)


def test_serve_fault_options_reach_the_link(tmp_path: Path) -> None:
    """`hwloop serve --drop --garble --duplicate --reboot-after`: the driver repairs what they do."""
    from serial_fixtures import start_serve, stop_process

    proc, path = start_serve(
        "sim:tanh?max_batch=8",
        tmp_path,
        *("--drop", "0.03", "--garble", "0.03", "--duplicate", "0.03", "--reboot-after", "40"),
        *("--fault-seed", "2", "--window", "2"),
    )
    try:
        with open_serial(f"serial://{path}?timeout=0.2&retries=10") as dev:
            assert dev.window == 2 and dev.info.max_batch == 8
            x = np.linspace(-1, 1, 2400, dtype=np.float32)[:, None]
            y = dev.query(x)
            assert np.max(np.abs(y - tanh15(x))) < 7e-3
            link = dev.link
            assert link.reboots == 1, link
            assert link.resends > 0 and link.bad_frames > 0 and link.stale > 0, link
    finally:
        stop_process(proc)


# ------------------------------------------------------------------ b. fault-tolerance acceptance


class RecordingDevice(BaseDevice):
    """Wraps a simulator; records every (x row, y row) it really produced, as float32 bytes."""

    def __init__(self, inner: BaseDevice) -> None:
        super().__init__(inner.info)
        self.inner = inner
        self.lock = threading.Lock()
        self.answers: dict[bytes, set[bytes]] = {}
        self.produced = 0
        self.resets = 0

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype="<f4")
        y = np.ascontiguousarray(self.inner.query(x), dtype="<f4")
        with self.lock:
            for xr, yr in zip(x, y, strict=True):
                self.answers.setdefault(xr.tobytes(), set()).add(yr.tobytes())
            self.produced += len(x)
        return y

    def _reset(self) -> None:
        self.resets += 1
        self.inner.reset()

    def _close(self) -> None:
        self.inner.close()


def test_faulty_peer_training_logs_only_true_answers(tmp_path: Path) -> None:
    """Drops 2 %, garbles 2 %, duplicates 2 %, reboots once: 3,000 queries, zero bad measurements."""
    sim = open_device("sim:tanh?noise=1e-3&seed=0&max_batch=8")
    assert isinstance(sim, BaseDevice)
    rec = RecordingDevice(sim)
    faults = FaultConfig(drop=0.02, garble=0.02, duplicate=0.02, reboot_after=150, seed=11)
    run = tmp_path / "run"
    with serve_in_thread(rec, pty=True, faults=faults) as srv:
        dev = open_device(f"serial://{srv.url}?timeout=0.2&retries=12")
        try:
            assert isinstance(dev, SerialDevice) and dev.info.max_batch == 8
            res = hwloop.train(
                dev,
                strategy="ila",
                queries=3000,
                seed=0,
                run_dir=run,
                options=TrainOptions(fit_steps=300, eval_targets=200),
            )
            link = dev.link
        finally:
            dev.close()
        stats = srv.stats

    print(f"served: {stats}\nlink: {link}\nmetrics: {res.metrics['closed_loop_nmse_db']} dB")
    # the faults really happened, and the driver saw them
    assert stats.dropped > 0 and stats.garbled > 0 and stats.duplicated > 0, stats
    assert stats.reboots == 1 and link.reboots == 1, (stats, link)
    assert link.resends > 0 and link.bad_frames > 0 and link.stale > 0, link
    assert res.metrics["queries_used"] == 3000

    qlog = open_run_log(run)
    try:
        assert qlog.count("train") == 3000
        x, y = qlog.arrays(None)
    finally:
        qlog.close()
    assert len(x) == 3000 + res.metrics["eval_queries"]
    # every logged pair is one the device produced for exactly that x (bitwise float32)
    x = np.ascontiguousarray(x, dtype="<f4")
    y = np.ascontiguousarray(y, dtype="<f4")
    bad = [
        (xr, yr)
        for xr, yr in zip(x, y, strict=True)
        if yr.tobytes() not in rec.answers.get(xr.tobytes(), set())
    ]
    assert bad == [], f"{len(bad)} of {len(x)} logged measurements are not the device's answers: {bad[:3]}"
    # a reboot or a re-sent request may re-measure, but nothing logged was invented
    assert rec.produced >= len(x)
    # the answers are also physically right: tanh(1.5 x) within the noise
    assert np.max(np.abs(y - tanh15(x))) < 7e-3


# ------------------------------------------------------------------ c. the firmware under simavr


@pytest.mark.slow
def test_cli_train_against_firmware_reaches_the_floor(board: str, tmp_path: Path) -> None:
    """The acceptance run: 10,000 ILA queries on the simulated ATmega328P, within 6 dB of its floor."""
    url = f"serial://{board}"
    out = tmp_path / "run"
    t0 = time.monotonic()
    m = train_json(url, out, "--queries", "10000")
    wall = time.monotonic() - t0
    print(f"firmware ILA: {json.dumps(m)}; test wall {wall:.1f} s")

    assert m["queries_used"] == 10_000
    assert m["noise_floor_db"] is not None and -57 < m["noise_floor_db"] < -52, m  # sigma 1e-3, rms(y)~0.53
    assert abs(m["noise_std"] - 1e-3) < 2e-4, m
    assert m["closed_loop_nmse_db"] - m["noise_floor_db"] <= 6.0, m
    assert json.loads((out / "device.json").read_text())["name"] == "rapp-avr"
