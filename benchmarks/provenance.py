"""Where a figure came from, and whether today's code would still give it.

Every cell a benchmark writes carries a stamp: the date, the commit, and a
fingerprint of the code it measured - every hwloop module its entry points
reach, counting imports inside functions (the static import graph), each
module's source normalised to its syntax tree without docstrings, so a
comment or a docstring does not make a figure stale but any change to what
runs does. The renderer recomputes the fingerprint and refuses a cell whose
code has changed since it was measured (`stale`).

    stamp(["hwloop.run", "hwloop.strategies.ila"])  -> {"date", "measured_at", "commit", "code", "roots"}
"""

from __future__ import annotations

import ast
import hashlib
import subprocess
import time
from collections.abc import Iterable
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALLED_AS = {"hwloop": "hwloop", "drivers": "hwloop.drivers", "simulators": "hwloop.simulators"}


@cache
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


def closure(roots: Iterable[str]) -> list[str]:
    """Every module reachable from ``roots`` (themselves included), sorted."""
    graph = import_graph()
    seen: set[str] = set()
    todo = [r for r in roots]
    for r in todo:
        if r not in graph:
            raise KeyError(f"no hwloop module {r!r}")
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph[m]
    return sorted(seen)


def _normalised(path: Path) -> str:
    """The module's syntax tree without docstrings: what runs, not how it is written or explained."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[0] = ast.Pass()
    return ast.dump(tree, annotate_fields=False)


def fingerprint(roots: Iterable[str]) -> str:
    files = module_files()
    h = hashlib.sha256()
    for name in closure(roots):
        h.update(name.encode() + b"\0" + _normalised(files[name]).encode() + b"\0")
    return h.hexdigest()[:16]


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def stamp(roots: Iterable[str]) -> dict:
    """The provenance of a figure measured now, with the code reachable from ``roots``."""
    roots = sorted(set(roots))
    files = [_rel(module_files()[m]) for m in closure(roots)]
    dirty = bool(_git("status", "--porcelain", "--", *files))
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    return {
        "date": time.strftime("%Y-%m-%d"),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": commit + ("+changes" if dirty else ""),
        "code": fingerprint(roots),
        "roots": roots,
    }


def stale(record: dict) -> str | None:
    """Why ``record``'s figures no longer describe today's code (None: they do)."""
    if not record.get("code") or not record.get("roots"):
        return "measured before figures recorded their code"
    try:
        now = fingerprint(record["roots"])
    except KeyError as exc:
        return str(exc)
    if now == record["code"]:
        return None
    commit = str(record.get("commit", "")).removesuffix("+changes")
    changed = ""
    if commit and commit != "unknown":
        files = [_rel(module_files()[m]) for m in closure(record["roots"])]
        names = _git("diff", "--name-only", commit, "--", *files).split()
        more = " ..." if len(names) > 6 else ""
        changed = f"; changed since: {', '.join(names[:6])}{more}" if names else ""
    return f"measured {record.get('date', '?')} at {record.get('commit', '?')}, the code has changed{changed}"
