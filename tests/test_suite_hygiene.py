"""The suite itself: a missing toolchain is one line naming the packages, and so on.

`.ci/files_alone.py` runs every test file alone (the proof that each passes
without the others); CI runs the whole suite in random order (pytest-randomly).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_without_the_avr_toolchain_the_firmware_test_says_which_packages(tmp_path: Path) -> None:
    """With no compiler on PATH the test fails with the suite's one line, not make's Error 127."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty), "TF_CPP_MIN_LOG_LEVEL": "3"}
    test = "tests/test_export_firmware.py::test_the_firmware_refuses_an_inverse_it_cannot_hold"
    res = subprocess.run(
        [sys.executable, "-m", "pytest", test, "-q", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 1, res.stdout[-2000:]
    assert "toolchain missing: make, avr-gcc" in res.stdout
    assert "apt-get install make gcc gcc-avr" in res.stdout
    assert "Error 127" not in res.stdout and "No such file or directory" not in res.stdout, res.stdout[-2000:]
