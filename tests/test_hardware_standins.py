"""The hardware suite (tests/test_hardware.py) against two stand-ins for a board.

A user runs ``pytest tests/test_hardware.py --device-url URL`` against a real
board; without ``--device-url`` the plain run deselects that suite. So that the plain
``pytest`` run (and CI) knows the suite passes before anyone owns a board,
this module starts each stand-in - `hwloop serve --pty` with the default
simulator behind the real wire protocol, and the AVR firmware under simavr -
and runs the whole suite against it in a fresh pytest process, exactly as a
user would: every test must pass, none may be skipped.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from serial_fixtures import start_runner, start_serve, stop_process

ROOT = Path(__file__).resolve().parents[1]
SUITE = "tests/test_hardware.py"
SUITE_TIMEOUT_S = 600


def suite_size() -> int:
    """How many test functions tests/test_hardware.py defines (none is parametrised)."""
    tree = ast.parse((ROOT / SUITE).read_text())
    return sum(isinstance(n, ast.FunctionDef) and n.name.startswith("test_") for n in tree.body)


@pytest.fixture(params=["serve", "firmware"])
def stand_in(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The pty path of a running stand-in; stopped afterwards."""
    if request.param == "serve":
        proc, path = start_serve("sim", tmp_path)
    else:
        proc, path = start_runner(request.getfixturevalue("build"), tmp_path)
    try:
        yield path
    finally:
        stop_process(proc)


def test_hardware_suite_passes_on_stand_in(stand_in: str, tmp_path: Path) -> None:
    report = tmp_path / "suite.xml"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            SUITE,
            f"--device-url={stand_in}",
            f"--junitxml={report}",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",
            "-q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    output = f"exit {res.returncode}\n{res.stdout[-4000:]}\n{res.stderr[-2000:]}"
    assert res.returncode == 0, output
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert suite is not None, output
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    assert counts["tests"] == suite_size() > 0, (counts, output)
    assert counts["failures"] == counts["errors"] == counts["skipped"] == 0, (counts, output)
