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
  when it stamped), listed in the stamp as ``bench``;

except the Python modules under those trees that the stamping process never
loaded (``skipped``): code that did not run in the process cannot have
shaped its figure. Only Python is skipped, and only when that is sound: the
package was imported from this checkout, and the process started no child
that could run the project's Python (a subprocess other than the build and
system tools in `TOOLS`, a `multiprocessing` worker: a pool's parent that
stamps hashes everything; its workers stamp their own cells). A module loaded
once counts for every later stamp of the process, so a long sweep skips only
what none of its cells so far needed. A file added under the trees, or a
skipped module imported by changed code, stales the figure through the
change itself; data, C and Makefiles always count.

Python is hashed as its syntax tree without docstrings (a comment, a
docstring or a reformat does not change what runs); every other file byte for
byte. Build output and caches (``__pycache__``, ``build/``, ``*.o``, ``*.elf``,
``*.hex``, hidden files) are not inputs and are left out; so are the
checkout's links ``hwloop/drivers`` and ``hwloop/simulators`` (their targets
count once). `provenance.py` itself is left out: it measures nothing. A stamp
is only fresh if the trees did not change while its process ran. Records of
scheme 2 (before ``skipped``) hash every module and are judged as such.

    stamp(["hwloop.run"])  -> {"date", "measured_at", "commit", "code", "roots", "scheme", "bench", "skipped"}
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
SCHEME = 3  # 1: the static import closure of hand-listed roots (blind to C, data, modules loaded by name)
SCHEMES = (2, 3)  # 2: every module hashed (a scheme-3 stamp that skipped none); 3: unloaded modules skipped
TREES = ("hwloop", "drivers", "simulators", "benchmarks/data")
LINKS = ("hwloop/drivers", "hwloop/simulators")  # the checkout's links to drivers/ and simulators/
SKIP_DIRS = {"__pycache__", "build"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".o", ".a", ".so", ".elf", ".hex", ".map", ".lst", ".d"}
RACY_NS = 2_000_000_000  # a file changed this close to being hashed is hashed again next time

# Children that cannot run the project's Python: version control, the machine's description (lscpu;
# uname, which `platform` runs), the AVR toolchain and the emulator (their inputs, the firmware's C and
# Makefiles, are always hashed, and no Makefile under the trees runs Python: a test checks).
TOOLS = frozenset(
    {"git", "lscpu", "uname", "make", "cc", "gcc", "avr-gcc", "avr-objcopy", "avr-size", "simavr"}
)

_digests: dict[Path, tuple[int, int, int, str]] = {}  # path -> (size, mtime_ns, hashed_at_ns, digest)
_children: list[str] = []  # children this process started that may have run the project's Python


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


def _program(executable: object, args: object) -> str:
    """The name of the program a ``subprocess.Popen`` runs (its first word for a shell line)."""
    if isinstance(args, (str, bytes, os.PathLike)):
        first: object = args
    elif isinstance(args, (list, tuple)) and args:
        first = args[0]
    else:
        first = executable
    words = os.fsdecode(first).split() if isinstance(first, (str, bytes, os.PathLike)) else []
    return os.path.basename(words[0]) if words else ""


def _on_audit(event: str, args: tuple) -> None:
    """Note a child that may run the project's Python (an audit hook: it sees every subprocess)."""
    if event == "subprocess.Popen":
        name = _program(args[0], args[1])
        if name not in TOOLS:
            _children.append(name)
    elif event in ("os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system"):
        _children.append(event)


def _watch_children() -> None:
    """Watch for children from now on: subprocesses through an audit hook, `multiprocessing`
    workers (spawned without an audit event) through their start. Run once, on import."""
    import multiprocessing.process

    base = multiprocessing.process.BaseProcess
    start = base.start

    def watched_start(self: multiprocessing.process.BaseProcess) -> None:
        _children.append(f"multiprocessing:{self.name}")
        start(self)

    base.start = watched_start  # type: ignore[method-assign]
    sys.addaudithook(_on_audit)


_watch_children()


def loaded_files(root: Path) -> set[Path] | None:
    """The files of every module this process loaded (resolved); None when the project's package
    was loaded from elsewhere than ``root``, whose files then say nothing of what ran."""
    loaded: set[Path] = set()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file:
            continue
        path = Path(file).resolve()
        if name.split(".")[0] in ("hwloop", "drivers", "simulators") and not path.is_relative_to(root):
            return None
        loaded.add(path)
    return loaded


def skipped_modules(root: Path | None = None) -> list[str]:
    """The Python files under `TREES` this process never loaded, as paths from the root (a folder
    none of whose modules loaded as ``folder/``); none when skipping would not be sound: a child
    that may have run the project's Python, or the package loaded from another copy."""
    root = (root or ROOT).resolve()
    loaded = None if _children else loaded_files(root)
    if loaded is None:
        return []
    python = [p.resolve() for p in tree_files(root) if p.suffix == ".py"]
    return _folded(root, {p for p in python if p not in loaded}, python)


def _folded(root: Path, unloaded: set[Path], python: list[Path]) -> list[str]:
    """``unloaded`` as paths from the root, a folder all of whose Python files are in it as one
    ``folder/`` entry (the shortest that covers them)."""
    folders: dict[Path, bool] = {}
    for p in python:
        for folder in p.parents:
            if folder == root or not folder.is_relative_to(root):
                break
            folders[folder] = folders.get(folder, True) and p in unloaded
    entries: list[str] = []
    for p in sorted(unloaded):
        whole = [f for f in p.parents if folders.get(f)]
        entry = f"{whole[-1].relative_to(root)}/" if whole else str(p.relative_to(root))
        if entry not in entries:
            entries.append(entry)
    return entries


def _is_skipped(rel: str, skipped: Iterable[str]) -> bool:
    """Whether the file ``rel`` (a path from the root) is covered by a ``skipped`` entry (Python only)."""
    return rel.endswith(".py") and any(rel == s or (s.endswith("/") and rel.startswith(s)) for s in skipped)


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


def fingerprint(bench: Iterable[str] = (), root: Path | None = None, skipped: Iterable[str] = ()) -> str:
    """One hash of every file under `TREES` but the ``skipped`` Python, and of the ``bench`` files
    (paths from the root). Skipping none gives scheme 2's hash."""
    root = root or ROOT
    skipped = tuple(skipped)
    h = hashlib.sha256()
    for path in tree_files(root):
        rel = str(path.relative_to(root))
        if skipped and _is_skipped(rel, skipped):
            continue
        h.update(rel.encode() + b"\0" + file_digest(path).encode() + b"\0")
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
    entry points) are recorded for the reader; the hash covers everything but the modules the
    process never loaded (see the module's doc). A process whose trees changed while it ran gets
    a ``code`` that is never fresh."""
    bench = bench_files(script)
    skipped = skipped_modules(ROOT)
    code = fingerprint(bench, skipped=skipped)
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
        "skipped": skipped,
    }


@cache
def _changed_since(commit: str, paths: tuple[str, ...], skipped: tuple[str, ...] = ()) -> str:
    names = [
        n for n in _git("diff", "--name-only", commit, "--", *paths).split() if not _is_skipped(n, skipped)
    ]
    more = " ..." if len(names) > 6 else ""
    return f"; changed since: {', '.join(names[:6])}{more}" if names else ""


def stale(record: dict) -> str | None:
    """Why ``record``'s figures no longer describe today's code (None: they do)."""
    if not record.get("code"):
        return "measured before figures recorded their code"
    if record.get("scheme") not in SCHEMES:
        return (
            f"measured {record.get('date', '?')} under the old fingerprint (Python imports of named "
            "modules only: blind to C, data and modules loaded by name); re-measure"
        )
    if record["code"] == "changed-while-measured":
        return f"measured {record.get('date', '?')} while the code changed under the benchmark"
    skipped = tuple(record.get("skipped", ()))
    if fingerprint(record.get("bench", ()), skipped=skipped) == record["code"]:
        return None
    commit = str(record.get("commit", "")).removesuffix("+changes")
    changed = ""
    if commit and commit != "unknown":
        changed = _changed_since(commit, (*TREES, *record.get("bench", ())), skipped)
    return f"measured {record.get('date', '?')} at {record.get('commit', '?')}, the code has changed{changed}"
