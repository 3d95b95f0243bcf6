"""Where a figure came from, and whether today's code would still give it.

Every cell a benchmark writes carries a stamp: the date, the commit, and one
content hash (``code``) of everything the figure can depend on:

- every file under ``hwloop/``, ``drivers/`` and ``simulators/``: Python, the
  firmware's C and Makefiles, data (``simulators/data/*.npz``, the bundled
  DPA_200MHz signal), whether a module is imported statically or loaded by
  name (a strategy from the registry);
- ``benchmarks/data/`` (the data benchmarks read);
- the benchmark script that measured it and the ``benchmarks/*.py`` helpers
  it imports (its static imports, followed, and every benchmark module loaded
  when it stamped), listed in the stamp as ``bench``.

Python is hashed as its syntax tree without docstrings (a comment, a
docstring or a reformat does not change what runs); every other file byte for
byte. Build output and caches (``__pycache__``, ``build/``, ``*.o``, ``*.elf``,
``*.hex``, hidden files) are not inputs and are left out; so are the
checkout's links ``hwloop/drivers`` and ``hwloop/simulators`` (their targets
count once). The rule is conservative: any change in those trees makes every
figure stale, and ``run_all.py`` re-measures it (about 2-3 hours for all).
`provenance.py` itself is left out: it measures nothing. A stamp is only
fresh if the trees did not change while its process ran.

    stamp(["hwloop.run"])  -> {"date", "measured_at", "commit", "code", "roots", "scheme", "bench"}
    stale(record)          -> None, or why the record no longer describes today's code
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEME = 2  # 1: the static import closure of hand-listed roots (blind to C, data, modules loaded by name)
TREES = ("hwloop", "drivers", "simulators", "benchmarks/data")
LINKS = ("hwloop/drivers", "hwloop/simulators")  # the checkout's links to drivers/ and simulators/
SKIP_DIRS = {"__pycache__", "build"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".o", ".a", ".so", ".elf", ".hex", ".map", ".lst", ".d"}
RACY_NS = 2_000_000_000  # a file changed this close to being hashed is hashed again next time

_digests: dict[Path, tuple[int, int, int, str]] = {}  # path -> (size, mtime_ns, hashed_at_ns, digest)


def _main_script() -> Path | None:
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    return Path(main).resolve() if main else None


_MAIN = _main_script()  # at import, before a script could change directory


def _normalised(source: bytes) -> bytes:
    """A module's syntax tree without docstrings: what runs, not how it is written or explained."""
    tree = ast.parse(source)
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
    return ast.dump(tree, annotate_fields=False).encode()


def file_digest(path: Path) -> str:
    """The content hash of one file (Python by its syntax tree), remembered while the file keeps
    its size and mtime, unless it changed within `RACY_NS` of being hashed (git's racy rule)."""
    st = path.stat()
    hit = _digests.get(path)
    if hit and hit[:2] == (st.st_size, st.st_mtime_ns) and hit[2] - st.st_mtime_ns > RACY_NS:
        return hit[3]
    now = time.time_ns()
    raw = path.read_bytes()
    if path.suffix == ".py":
        with contextlib.suppress(SyntaxError, ValueError):  # one that does not parse: its bytes
            raw = _normalised(raw)
    digest = hashlib.sha256(raw).hexdigest()
    _digests[path] = (st.st_size, st.st_mtime_ns, now, digest)
    return digest


def tree_files(root: Path | None = None) -> list[Path]:
    """Every input file under `TREES`, sorted: what any figure may depend on."""
    root = root or ROOT
    links = {root / link for link in LINKS}
    found: list[Path] = []
    for tree in TREES:
        for dirpath, dirnames, filenames in os.walk(root / tree):
            here = Path(dirpath)
            dirnames[:] = sorted(
                d
                for d in dirnames
                if d not in SKIP_DIRS
                and not d.startswith(".")
                and not d.endswith(".egg-info")
                and here / d not in links
            )
            found += [
                here / f
                for f in filenames
                if not f.startswith(".") and Path(f).suffix not in SKIP_SUFFIXES and here / f not in links
            ]
    return sorted(found)


def _local_imports(path: Path) -> set[str]:
    """Top-level module names ``path`` imports anywhere in its source (inside functions too)."""
    try:
        tree = ast.parse(path.read_text())
    except (SyntaxError, ValueError, OSError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def bench_files(script: str | Path | None = None, root: Path | None = None) -> list[str]:
    """The benchmark script (``script``, else the running one) and the ``benchmarks/*.py`` helpers
    it imports, followed, with every benchmark module this process loaded; paths from the root."""
    root = root or ROOT
    bench = (root / "benchmarks").resolve()
    start = [Path(script).resolve()] if script else ([_MAIN] if _MAIN else [])
    start += [Path(f).resolve() for m in list(sys.modules.values()) if (f := getattr(m, "__file__", None))]
    found = {p for p in start if p.parent == bench and p.suffix == ".py" and p.is_file()}
    todo = list(found)
    while todo:
        for name in _local_imports(todo.pop()):
            helper = bench / f"{name}.py"
            if helper.is_file() and helper not in found:
                found.add(helper)
                todo.append(helper)
    found.discard(bench / "provenance.py")
    return sorted(str(p.relative_to(bench.parent)) for p in found)


def fingerprint(bench: Iterable[str] = (), root: Path | None = None) -> str:
    """One hash of every file under `TREES` and of the ``bench`` files (paths from the root)."""
    root = root or ROOT
    h = hashlib.sha256()
    for path in tree_files(root):
        h.update(str(path.relative_to(root)).encode() + b"\0" + file_digest(path).encode() + b"\0")
    for rel in sorted(set(bench)):
        path = root / rel
        digest = file_digest(path) if path.is_file() else "missing"
        h.update(b"bench\0" + rel.encode() + b"\0" + digest.encode() + b"\0")
    return h.hexdigest()[:16]


_at_start: dict[Path, str] = {}  # the trees' hash when this process first looked, per root


def _trees_at_start(root: Path) -> str:
    return _at_start.setdefault(root, fingerprint((), root))


if ROOT.is_dir():
    _trees_at_start(ROOT)


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def stamp(roots: Iterable[str] = (), *, script: str | Path | None = None) -> dict:
    """The provenance of a figure measured now. ``roots`` (the modules a benchmark names as its
    entry points) are recorded for the reader; the hash covers everything (see the module's doc).
    A process whose trees changed while it ran gets a ``code`` that is never fresh."""
    bench = bench_files(script)
    code = fingerprint(bench)
    if fingerprint((), ROOT) != _trees_at_start(ROOT):
        code = "changed-while-measured"
    dirty = bool(_git("status", "--porcelain", "--", *TREES, *bench))
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    return {
        "date": time.strftime("%Y-%m-%d"),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": commit + ("+changes" if dirty else ""),
        "code": code,
        "roots": sorted(set(roots)),
        "scheme": SCHEME,
        "bench": bench,
    }


@cache
def _changed_since(commit: str, paths: tuple[str, ...]) -> str:
    names = _git("diff", "--name-only", commit, "--", *paths).split()
    more = " ..." if len(names) > 6 else ""
    return f"; changed since: {', '.join(names[:6])}{more}" if names else ""


def stale(record: dict) -> str | None:
    """Why ``record``'s figures no longer describe today's code (None: they do)."""
    if not record.get("code"):
        return "measured before figures recorded their code"
    if record.get("scheme") != SCHEME:
        return (
            f"measured {record.get('date', '?')} under the old fingerprint (Python imports of named "
            "modules only: blind to C, data and modules loaded by name); re-measure"
        )
    if record["code"] == "changed-while-measured":
        return f"measured {record.get('date', '?')} while the code changed under the benchmark"
    if fingerprint(record.get("bench", ())) == record["code"]:
        return None
    commit = str(record.get("commit", "")).removesuffix("+changes")
    changed = ""
    if commit and commit != "unknown":
        changed = _changed_since(commit, (*TREES, *record.get("bench", ())))
    return f"measured {record.get('date', '?')} at {record.get('commit', '?')}, the code has changed{changed}"
