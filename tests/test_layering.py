"""The layout's rules, checked on the source: what may import what, no import cycles, module size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
MAX_TOP_MODULES = 15
INSTALLED_AS = {"hwloop": "hwloop", "drivers": "hwloop.drivers", "simulators": "hwloop.simulators"}


def module_files() -> dict[str, Path]:
    """Every module of the installed package by dotted name (drivers/ as hwloop.drivers, ...)."""
    found: dict[str, Path] = {}
    for folder, prefix in INSTALLED_AS.items():
        base = ROOT / folder
        for p in sorted(base.rglob("*.py")):
            rel = p.relative_to(base)
            if folder == "hwloop" and rel.parts[0] in ("drivers", "simulators"):
                continue  # the checkout's links to the top-level packages
            name = ".".join((prefix, *rel.with_suffix("").parts)).removesuffix(".__init__")
            found[name] = p
    return found


def imports_of(name: str, path: Path, files: dict[str, Path]) -> set[str]:
    """The hwloop modules ``name`` imports anywhere in its source, relative imports resolved;
    ``from pkg import name`` counts as ``pkg.name`` when that is a module, else ``pkg``."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
        for t in targets:
            while t and t not in files:
                t = t.rpartition(".")[0]
            if t and t != name:
                edges.add(t)
    return edges


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, files) for name, path in files.items()}


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
    mods = {
        m for p in (ROOT / "hwloop" / "device").glob("*.py") for m in _imports(p) if m.startswith("hwloop")
    }
    assert {m for m in mods if not m.startswith("hwloop.device")} <= {"hwloop.errors"}, mods


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


def _import_graph() -> dict[str, set[str]]:
    """Module -> modules it imports, at any depth (inside functions too)."""
    return import_graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    assert _cycles(_import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_the_top_package() -> None:
    """``import hwloop`` inside hwloop would close a cycle through its lazy entry points."""
    graph = _import_graph()
    assert not [m for m, edges in graph.items() if "hwloop" in edges and m != "hwloop"]


def test_at_most_15_modules_directly_in_hwloop() -> None:
    top = sorted(p.name for p in (ROOT / "hwloop").glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top


@pytest.mark.parametrize(
    "package", ["cli", "device", "dpd", "export", "farm", "inverses", "report", "strategies"]
)
def test_every_subpackage_says_what_it_owns_and_may_import(package: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / "hwloop" / package / "__init__.py").read_text())) or ""
    assert "May import" in doc or "may import" in doc, package


def test_dpd_is_numpy_only_and_inverses_never_reach_up() -> None:
    graph = _import_graph()
    for name, edges in graph.items():
        if name.startswith("hwloop.dpd"):
            assert not {
                e for e in edges if e.startswith(("hwloop.inverses", "hwloop.strategies", "hwloop.run"))
            }, name
        if name.startswith("hwloop.inverses"):
            up = ("hwloop.strategies", "hwloop.metered", "hwloop.run", "hwloop.cli", "hwloop.evaluate")
            assert not {e for e in edges if e.startswith(up)}, name
