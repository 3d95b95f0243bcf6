"""Benchmarks cannot go stale: a figure is refused once anything it depends on has changed.

Every kind of change is tried on a temporary copy of the tree (never the
real files): the firmware's C, a data file the simulators or the benchmarks
read, a benchmark helper the script imports, a module the registry loads by
name. Each makes the cell stale; a docstring, a comment or build output does
not; another benchmark's script does not touch this one's cells. A module the
stamping process never loaded does not count, unless a child process may
have run the project's Python.
"""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[1]
BENCH = REAL / "benchmarks"
sys.path.insert(0, str(BENCH))

import provenance  # noqa: E402 - the benchmarks' folder is not a package
import render_common  # noqa: E402

SCRIPT = "benchmarks/dpd_heldout.py"  # imports common, dpd_common, dpd_textbook, heldout_pa


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of everything a figure depends on, standing in for the checkout."""
    root = tmp_path / "checkout"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "results")
    for name in ("hwloop", "drivers", "simulators", "benchmarks"):
        shutil.copytree(REAL / name, root / name, symlinks=True, ignore=skip)
    monkeypatch.setattr(provenance, "ROOT", root)
    return root


def _edit(path: Path, change: Callable[[bytes], bytes]) -> Callable[[], None]:
    """Change ``path``; returns what puts it back."""
    before = path.read_bytes()
    path.write_bytes(change(before))
    return lambda: path.write_bytes(before)


def _append(text: str) -> Callable[[bytes], bytes]:
    return lambda b: b + text.encode()


def _flip_last_byte(b: bytes) -> bytes:
    return b[:-1] + bytes([b[-1] ^ 1])


KINDS = [
    ("the firmware's C", "drivers/firmware/hwloop.c", _append("\nstatic const int hwl_extra = 1;\n")),
    ("a fitted simulator's data", "simulators/data/pa_dpa200.npz", _flip_last_byte),
    ("the bundled signal", "hwloop/dpd/datasets/DPA_200MHz/spec.json", _append(" ")),
    ("a benchmark's data", "benchmarks/data/heldout_apa.npz", _flip_last_byte),
    ("a benchmark helper", "benchmarks/dpd_textbook.py", _append("\nRIDGE_EXTRA = 1e-9\n")),
    ("a module loaded by name", "hwloop/strategies/sequence_forward.py", _append("\nLOADED_BY_NAME = 2\n")),
    ("the script itself", SCRIPT, _append("\nEXTRA = 3\n")),
    ("a firmware Makefile", "drivers/firmware/Makefile", _append("\n# -O3\nCFLAGS += -O3\n")),
]


@pytest.mark.parametrize(("kind", "rel", "change"), KINDS, ids=[k[0] for k in KINDS])
def test_every_kind_of_change_makes_the_cell_stale(
    tree: Path, kind: str, rel: str, change: Callable[[bytes], bytes]
) -> None:
    record = provenance.stamp(["hwloop.run"], script=tree / SCRIPT)
    assert record["scheme"] == provenance.SCHEME and SCRIPT in record["bench"]
    assert "benchmarks/dpd_textbook.py" in record["bench"] and "benchmarks/heldout_pa.py" in record["bench"]
    assert provenance.stale(record) is None
    undo = _edit(tree / rel, change)
    assert "the code has changed" in (provenance.stale(record) or ""), kind
    undo()
    assert provenance.stale(record) is None  # the same content again: fresh again


def test_what_does_not_run_leaves_the_cell_fresh(tree: Path) -> None:
    record = provenance.stamp(script=tree / SCRIPT)
    sf = tree / "hwloop/strategies/sequence_forward.py"
    text = sf.read_text()
    doc_end = text.index('"""', 3) + 3
    sf.write_text('"""Reworded."""' + text[doc_end:].replace("\n\n", "\n\n# a comment\n", 1))
    (tree / "drivers/firmware/hwloop.o").write_bytes(b"\x7fELF build output")
    (tree / "hwloop/strategies/__pycache__").mkdir(exist_ok=True)
    (tree / "hwloop/strategies/__pycache__/x.cpython-311.pyc").write_bytes(b"cache")
    _edit(tree / "benchmarks/farm.py", _append("\nOTHER = 1\n"))  # another benchmark's script
    _edit(tree / "benchmarks/render.py", _append("\nOTHER = 1\n"))  # the renderer draws, measures nothing
    assert provenance.stale(record) is None


def test_a_file_added_under_the_trees_counts(tree: Path) -> None:
    record = provenance.stamp(script=tree / SCRIPT)
    (tree / "simulators/data/new_fit.npz").write_bytes(b"new parameters")
    assert "the code has changed" in (provenance.stale(record) or "")


def test_code_changed_while_a_benchmark_ran_is_never_fresh(tree: Path) -> None:
    provenance.stamp(script=tree / SCRIPT)  # the process's first look at this tree
    _edit(tree / "hwloop/metrics.py", _append("\nLATE = 1\n"))
    record = provenance.stamp(script=tree / SCRIPT)
    assert record["code"] == "changed-while-measured"
    assert "while the code changed" in (provenance.stale(record) or "")


def test_records_of_the_old_rule_and_without_code_are_stale() -> None:
    old = {"date": "2026-12-01", "commit": "abc", "code": "0123456789abcdef", "roots": ["hwloop.run"]}
    assert "old fingerprint" in (provenance.stale(old) or "")
    assert "before figures recorded their code" in (provenance.stale({"date": "2026-12-01"}) or "")


def test_a_stamp_in_the_real_checkout_is_fresh_and_names_its_helpers() -> None:
    record = provenance.stamp(["hwloop.run"], script=REAL / SCRIPT)
    assert provenance.stale(record) is None
    assert {"benchmarks/common.py", "benchmarks/dpd_common.py"} <= set(record["bench"])
    assert "benchmarks/provenance.py" not in record["bench"]
    files = {str(p.relative_to(REAL)) for p in provenance.tree_files()}
    assert "drivers/firmware/hwloop.c" in files and "simulators/data/pa_dpa200.npz" in files
    assert not any(f.startswith(("hwloop/drivers/", "hwloop/simulators/")) for f in files)  # links: once


def test_the_caption_shows_each_tables_dates_and_commits_and_collects_stale_ones(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render_common, "STALE", [])
    good = provenance.stamp(script=tree / SCRIPT)
    old = {**good, "date": "2026-11-01", "commit": "abc", "code": "0" * 16}
    line = render_common.provenance({"machine": "m"}, [good], table="t")
    assert good["date"] in line and good["commit"] in line and render_common.STALE == []
    line = render_common.provenance({"machine": "m"}, [good, old], table="t")
    assert "2026-11-01 to" in line and "abc" in line
    assert len(render_common.STALE) == 1 and render_common.STALE[0].startswith("t: measured 2026-11-01")


def test_the_renderer_refuses_to_write_a_page_with_stale_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    import render

    monkeypatch.setattr(render, "render", lambda: render_common.STALE.append("x: stale") or "page")
    written: list[str] = []
    monkeypatch.setattr(render, "DOC", type("Doc", (), {"name": "B.md", "write_text": written.append})())
    with pytest.raises(SystemExit, match=r"not writing B\.md"):
        render.main()
    assert written == []


def _loaded_but(tree: Path, *unloaded: str) -> Callable[[Path], set[Path]]:
    """A process that loaded every Python file of ``tree`` but the ``unloaded`` (files or folders)."""
    python = {p.resolve() for p in provenance.tree_files(tree) if p.suffix == ".py"}
    gone = {p for p in python if any(str(p.relative_to(tree.resolve())).startswith(u) for u in unloaded)}
    assert gone, unloaded
    return lambda root: python - gone


def test_a_module_the_process_never_loaded_does_not_count(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provenance, "_children", [])
    loaded = _loaded_but(tree, "hwloop/dpd/", "hwloop/strategies/sequence_forward.py")
    monkeypatch.setattr(provenance, "loaded_files", loaded)
    record = provenance.stamp(script=tree / SCRIPT)
    assert record["scheme"] == 3 and record["skipped"] == [
        "hwloop/dpd/",
        "hwloop/strategies/sequence_forward.py",
    ]
    assert provenance.stale(record) is None
    # code that never ran in the process: its change, or a new module beside it, leaves the cell fresh
    _edit(tree / "hwloop/dpd/ila.py", _append("\nUNUSED = 1\n"))
    _edit(tree / "hwloop/strategies/sequence_forward.py", _append("\nUNUSED = 2\n"))
    (tree / "hwloop/dpd/new_module.py").write_text("X = 1\n")
    assert provenance.stale(record) is None
    # a module that ran, data, the firmware's C (under a folder whose Python never loaded) still count
    for rel, change in [
        ("hwloop/metrics.py", _append("\nUSED = 1\n")),
        ("hwloop/dpd/datasets/DPA_200MHz/spec.json", _append(" ")),
        ("drivers/firmware/hwloop.c", _append("\nstatic const int hwl_extra = 1;\n")),
        ("benchmarks/dpd_textbook.py", _append("\nRIDGE_EXTRA = 1e-9\n")),
    ]:
        undo = _edit(tree / rel, change)
        assert "the code has changed" in (provenance.stale(record) or ""), rel
        undo()
    assert provenance.stale(record) is None
    (tree / "hwloop/new_loaded_place.py").write_text("Y = 1\n")  # beside modules that ran: counts
    assert "the code has changed" in (provenance.stale(record) or "")


def _child_python() -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def _child_worker() -> None:
    proc = multiprocessing.get_context("spawn").Process(target=print)
    proc.start()
    proc.join()


@pytest.mark.parametrize(
    "child", [_child_python, _child_worker], ids=["subprocess", "multiprocessing worker"]
)
def test_after_a_child_that_may_run_python_every_module_counts(
    tree: Path, monkeypatch: pytest.MonkeyPatch, child: Callable[[], None]
) -> None:
    monkeypatch.setattr(provenance, "_children", [])
    monkeypatch.setattr(provenance, "loaded_files", _loaded_but(tree, "hwloop/dpd/"))
    subprocess.run(["git", "--version"], capture_output=True, check=True)  # a tool: still skips
    assert provenance.stamp(script=tree / SCRIPT)["skipped"] == ["hwloop/dpd/"]
    child()
    record = provenance.stamp(script=tree / SCRIPT)
    assert record["skipped"] == [] and provenance._children
    _edit(tree / "hwloop/dpd/ila.py", _append("\nUNUSED = 1\n"))
    assert "the code has changed" in (provenance.stale(record) or "")


def test_the_real_process_skips_exactly_the_modules_it_never_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import hwloop.run  # noqa: F401 - loaded, so never skipped

    monkeypatch.setattr(provenance, "_children", [])
    skipped = provenance.skipped_modules()
    loaded = {Path(f).resolve() for m in list(sys.modules.values()) if (f := getattr(m, "__file__", None))}
    for path in provenance.tree_files():
        rel = str(path.relative_to(REAL))
        if path.suffix == ".py":
            assert provenance._is_skipped(rel, skipped) == (path.resolve() not in loaded), rel
        else:
            assert not provenance._is_skipped(rel, skipped), rel
    assert not provenance._is_skipped("hwloop/run.py", skipped)
    record = provenance.stamp(script=REAL / SCRIPT)
    assert provenance.stale(record) is None


def test_the_package_loaded_from_another_copy_skips_nothing(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provenance, "_children", [])
    assert provenance.loaded_files(tree) is None  # this process's hwloop is the checkout's, not the copy's
    assert provenance.stamp(script=tree / SCRIPT)["skipped"] == []


def test_a_record_of_scheme_2_is_judged_with_every_module(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = provenance.stamp(script=tree / SCRIPT)
    old = {k: v for k, v in record.items() if k != "skipped"} | {"scheme": 2}
    assert provenance.stale(old) is None
    _edit(tree / "hwloop/dpd/ila.py", _append("\nUNUSED = 1\n"))
    assert "the code has changed" in (provenance.stale(old) or "")


def test_no_makefile_under_the_trees_runs_python() -> None:
    """`provenance.TOOLS` counts make among the children that cannot run the project's Python."""
    makefiles = [p for p in provenance.tree_files() if p.name.startswith("Makefile") or p.suffix == ".mk"]
    assert makefiles, "the firmware's Makefiles are inputs"
    for path in makefiles:
        assert "python" not in path.read_text().lower(), path
