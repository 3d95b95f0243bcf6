"""The source archive is the whole source tree: the README's test command runs in it too.

The sdist holds every file of the checkout (tests and their fixtures, the
benchmarks and their results, the docs, the firmware's C), but for the two
links ``hwloop/drivers`` and ``hwloop/simulators``: an archive cannot carry a
link to a directory, and ``pip install -e .`` maps both packages without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINKS = {"hwloop/drivers", "hwloop/simulators"}
SKIP_DIRS = {"__pycache__", "build"}  # anywhere; at the root, also what commands and tools write there
SKIP_ROOT = {"runs", "export", ".venv", ".git", ".pytest_cache", ".ruff_cache", ".hypothesis"}


def source_files() -> set[str]:
    """The checkout's files: git's list in a clone, else every file but caches and build output."""
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=ROOT, capture_output=True, text=True)
    if top.returncode == 0 and Path(top.stdout.strip()).resolve() == ROOT:
        res = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
        return set(res.stdout.split("\n")) - {""} - LINKS
    found = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        here = Path(dirpath)
        dirnames[:] = [
            d
            for d in dirnames
            if d not in SKIP_DIRS
            and not (here == ROOT and d in SKIP_ROOT)
            and not d.endswith(".egg-info")
            and str((here / d).relative_to(ROOT)) not in LINKS
        ]
        found |= {str((here / f).relative_to(ROOT)) for f in filenames if not f.endswith((".pyc", ".o"))}
    return found - {"PKG-INFO", "setup.cfg"}


def test_the_sdist_holds_every_source_file(tmp_path: Path) -> None:
    expected = source_files()
    tree = tmp_path / "src"  # a copy: an egg-info left by an install would add its own file list
    for rel in expected | {"MANIFEST.in"}:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, tree / rel)
    out = tmp_path / "dist"
    code = f"from setuptools import build_meta as b; print(b.build_sdist({str(out)!r}))"
    res = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    archive = out / res.stdout.strip().splitlines()[-1]
    with tarfile.open(archive) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile() and "/" in m.name}
    assert {"tests/conftest.py", "tests/serial_fixtures.py", "drivers/firmware/hwloop.c"} <= expected
    assert {"benchmarks/provenance.py", "docs/dpd.md", ".ci/run"} <= expected
    missing = sorted(expected - members)
    assert not missing, f"the sdist lacks {len(missing)} file(s): {missing[:20]}"
    assert not {m for m in members if "__pycache__" in m or m.endswith(".pyc")}
