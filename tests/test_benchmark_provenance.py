"""Benchmarks cannot go stale: a figure is refused once the code it measured has changed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import provenance  # noqa: E402 - the benchmarks' folder is not a package
import render_common  # noqa: E402

SOURCE = '''"""A module."""

import hwloop.b


def f(x):
    """Twice x."""
    return 2 * x
'''


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Two modules, a -> b, standing in for the package."""
    files = {"hwloop.a": tmp_path / "a.py", "hwloop.b": tmp_path / "b.py"}
    files["hwloop.a"].write_text(SOURCE)
    files["hwloop.b"].write_text("X = 1\n")
    monkeypatch.setattr(provenance, "module_files", lambda: files)
    return files


def test_a_stamp_is_fresh_until_the_code_it_reaches_changes(tree: dict[str, Path]) -> None:
    record = provenance.stamp(["hwloop.a"])
    assert record["roots"] == ["hwloop.a"] and record["date"] and record["commit"]
    assert provenance.closure(["hwloop.a"]) == ["hwloop.a", "hwloop.b"]
    assert provenance.stale(record) is None
    tree["hwloop.a"].write_text(SOURCE.replace('"""Twice x."""', '"""Double x, documented anew."""'))
    assert provenance.stale(record) is None  # a docstring is not what runs
    tree["hwloop.b"].write_text("X = 2\n")  # a module the root imports
    assert "the code has changed" in (provenance.stale(record) or "")


def test_a_record_without_its_code_is_stale(tree: dict[str, Path]) -> None:
    assert "before figures recorded their code" in (provenance.stale({"date": "2026-12-01"}) or "")


def test_the_caption_shows_each_tables_dates_and_commits_and_collects_stale_ones(
    tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render_common, "STALE", [])
    good = provenance.stamp(["hwloop.a"])
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
