"""The layout's rules, checked on the source: what may import what, and module size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("folder", ["drivers", "simulators"])
def test_drivers_and_simulators_import_only_the_device_contract(folder: str) -> None:
    allowed = ("hwloop.device", f"hwloop.{folder}")
    offenders = {
        f"{p.relative_to(ROOT)}: {m}"
        for p in (ROOT / folder).rglob("*.py")
        for m in _imports(p)
        if (m == "hwloop" or m.startswith("hwloop.")) and not m.startswith(allowed)
    }
    assert not offenders, sorted(offenders)


def test_the_device_contract_imports_only_errors() -> None:
    mods = {m for m in _imports(ROOT / "hwloop" / "device.py") if m.startswith("hwloop")}
    assert mods <= {"hwloop.errors"}, mods


def test_no_module_over_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for folder in ("hwloop", "drivers", "simulators", "benchmarks", "tests")
        for p in (ROOT / folder).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_strategies_reach_devices_only_through_the_meter() -> None:
    for p in (ROOT / "hwloop" / "strategies").glob("*.py"):
        mods = _imports(p)
        assert not any(
            m.startswith(("hwloop.drivers", "hwloop.simulators", "hwloop.registry")) for m in mods
        ), p
        assert "hwloop.querylog" not in mods, p
