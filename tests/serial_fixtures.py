"""Fixtures shared by the serial tests: the AVR firmware under simavr, `hwloop serve` as a subprocess.

Test modules import what they use (``from serial_fixtures import board, build``);
pytest puts tests/ on ``sys.path`` (rootdir-relative "prepend" import mode).
Every wait here has a deadline and every process started here is stopped
in a ``finally``, so a failing test leaves no simavr or ``hwloop serve`` behind.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[1] / "drivers" / "firmware"
START_TIMEOUT_S = 30.0  # `hwloop serve` imports numpy and the simulators before it prints

_built: dict[str, Path] = {}  # one build per session, however many modules import `build`


TOOLCHAIN_PACKAGES = "make gcc gcc-avr avr-libc simavr libsimavr-dev libelf-dev"
FIRMWARE_TOOLS = ("make", "avr-gcc", "avr-objcopy", "avr-size", "cc")


def require_toolchain(*tools: str, simavr_headers: bool = False) -> None:
    """Fail (not skip) with the suite's one line naming the packages when a tool is missing,
    before a test runs any of them (not a raw ``make: avr-gcc: No such file``)."""
    missing = [t for t in tools if shutil.which(t) is None]
    if simavr_headers and not Path("/usr/include/simavr/sim_avr.h").exists():
        missing.append("libsimavr-dev headers")
    if missing:
        pytest.fail(
            f"toolchain missing: {', '.join(missing)} - apt-get install {TOOLCHAIN_PACKAGES}",
            pytrace=False,
        )


def build_firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build hwloop.elf/.hex and the simavr runner once per session; fail (not skip) without tools."""
    if "dir" in _built:
        return _built["dir"]
    require_toolchain(*FIRMWARE_TOOLS, simavr_headers=True)
    out = tmp_path_factory.mktemp("fw")
    for target in (FIRMWARE, FIRMWARE / "runner"):
        res = subprocess.run(
            ["make", "-C", str(target), f"BUILD={out}"], capture_output=True, text=True, timeout=180
        )
        assert res.returncode == 0, f"make in {target} failed:\n{res.stdout}\n{res.stderr}"
    assert (out / "hwloop.hex").stat().st_size > 0
    _built["dir"] = out
    return out


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding hwloop.elf, hwloop.hex and hwloop-simavr."""
    return build_firmware(tmp_path_factory)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 5 s; always reaps the child."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _wait_for_line(proc: subprocess.Popen, log: Path, accept: str, timeout: float) -> str:
    """The first line of ``log`` starting with ``accept`` (the process writes it there)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(accept):
                return line
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop_process(proc)
    raise AssertionError(f"no line starting with {accept!r} within {timeout:g} s:\n{log.read_text()}")


def start_runner(build: Path, tmp: Path) -> tuple[subprocess.Popen, str]:
    """Boot the firmware under simavr; returns (process, pty path)."""
    log = tmp / "runner.out"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(build / "hwloop-simavr"), str(build / "hwloop.elf")], stdout=fh, stderr=subprocess.STDOUT
        )
    line = _wait_for_line(proc, log, "PTY ", 15)
    return proc, line.split(None, 1)[1].strip()


@pytest.fixture
def board(build: Path, tmp_path: Path) -> Iterator[str]:
    """A freshly booted simulated board; yields its pty path."""
    proc, path = start_runner(build, tmp_path)
    try:
        yield path
    finally:
        stop_process(proc)


def start_serve(device: str, tmp: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """``python -m hwloop.cli serve --device DEVICE --pty EXTRA...``; returns (process, pty path).

    stdout and stderr go to files in ``tmp`` (a pipe nobody reads could fill
    up and stall the server); the first stdout line is the pty path.
    """
    out, err = tmp / "serve.out", tmp / "serve.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hwloop.cli", "serve", "--device", device, "--pty", *extra],
            stdout=fo,
            stderr=fe,
            stdin=subprocess.DEVNULL,
        )
    try:
        line = _wait_for_line(proc, out, "/dev/", START_TIMEOUT_S)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstderr:\n{err.read_text(errors='replace')}") from None
    return proc, line.strip()


@pytest.fixture
def served_tanh(tmp_path: Path) -> Iterator[str]:
    """`hwloop serve --device sim:tanh --pty` as a real subprocess; yields the pty path."""
    proc, path = start_serve("sim:tanh", tmp_path)
    try:
        yield path
    finally:
        stop_process(proc)
