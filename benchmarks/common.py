"""Shared bits of the benchmark scripts: machine description, provenance stamps and result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

from provenance import stale, stamp

RESULTS = Path(__file__).resolve().parent / "results"
__all__ = ["RESULTS", "fresh", "load", "machine", "save", "stale", "stamp", "today"]


def fresh(cells: dict, key: str) -> bool:
    """True when ``cells`` holds ``key`` measured by today's code: a sweep skips only those."""
    return key in cells and stale(cells[key]) is None


def machine() -> str:
    """One line naming the CPU, cores and Python, for every figure's caption."""
    cpu = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def today() -> str:
    """The date a figure was measured, ISO format, for captions."""
    return time.strftime("%Y-%m-%d")


def load(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save(name: str, data: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True))
