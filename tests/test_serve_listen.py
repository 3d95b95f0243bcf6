"""`hwloop serve --listen`: loopback by default, a non-loopback address only with --allow-remote.

The wire protocol has no authentication, so serving beyond this machine must
be asked for. No test here sends traffic to a non-loopback address: the
--allow-remote case only binds, reads the first stderr line and stops.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from serial_fixtures import START_TIMEOUT_S, stop_process

from hwloop.device import UsageError
from hwloop.drivers.serial_device import open_serial
from hwloop.drivers.serve import check_listen, is_loopback


def start_listen(tmp: Path, listen: str, *extra: str) -> tuple[subprocess.Popen, Path, Path]:
    out, err = tmp / "serve.out", tmp / "serve.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hwloop.cli", "serve", "--device", "sim:tanh", "--listen", listen, *extra],
            stdout=fo,
            stderr=fe,
            stdin=subprocess.DEVNULL,
        )
    return proc, out, err


def wait_address(proc: subprocess.Popen, out: Path, err: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        lines = out.read_text().splitlines()
        if lines and lines[0].startswith("tcp://"):
            return lines[0].strip()
        time.sleep(0.05)
    raise AssertionError(f"serve printed no address (exit {proc.poll()}):\n{err.read_text()}")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)
    assert check_listen(
        f"tcp://{host}:7000" if ":" not in host else f"tcp://[{host}]:7000", allow_remote=False
    )


@pytest.mark.parametrize("listen", ["tcp://0.0.0.0:7000", "tcp://[::]:7000", "192.0.2.1:7000"])
def test_non_loopback_needs_allow_remote(listen: str) -> None:
    with pytest.raises(UsageError, match="--allow-remote"):
        check_listen(listen, allow_remote=False)


def test_cli_refuses_all_interfaces_without_the_flag(tmp_path: Path) -> None:
    proc, _, err = start_listen(tmp_path, "tcp://0.0.0.0:0")
    try:
        assert proc.wait(timeout=START_TIMEOUT_S) == 2
    finally:
        stop_process(proc)
    lines = err.read_text().strip().splitlines()
    assert len(lines) == 1 and "--allow-remote" in lines[0] and "authentication" in lines[0], lines


def test_cli_allow_remote_warns_first(tmp_path: Path) -> None:
    proc, out, err = start_listen(tmp_path, "tcp://0.0.0.0:0", "--allow-remote")
    try:
        assert wait_address(proc, out, err).startswith("tcp://0.0.0.0:")
    finally:
        stop_process(proc)
    first = err.read_text().splitlines()[0]
    assert "no authentication" in first, first


def test_cli_loopback_serves(tmp_path: Path) -> None:
    proc, out, err = start_listen(tmp_path, "tcp://127.0.0.1:0")
    try:
        address = wait_address(proc, out, err)
        with open_serial("socket://" + address[len("tcp://") :]) as d:
            y = d.query(np.array([[0.5]], np.float32))
        assert abs(float(y[0, 0]) - np.tanh(0.75)) < 0.01
    finally:
        stop_process(proc)
    assert "authentication" not in err.read_text()
