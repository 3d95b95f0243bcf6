"""Every figure in the docs' prose comes from benchmarks/results/*.json (benchmarks/render_docs.py).

A marked figure must read what its results file gives; a figure with a unit
that is not marked must be a setting listed in ``NOT_MEASURED``, not a
measurement typed by hand. ``python benchmarks/render_docs.py`` rewrites the
marked ones after a benchmark re-measures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import render_docs  # noqa: E402 - the benchmarks' folder is not a package
import render_docs_tables  # noqa: E402


def test_every_figure_in_the_docs_prose_matches_the_results() -> None:
    problems = render_docs.check()
    assert not problems, "\n".join(problems[:40])


def test_a_figure_that_differs_from_its_results_is_named() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    marked = render_docs.FIG.search(text)
    assert marked is not None
    wrong = text[: marked.start("text")] + "99.9" + text[marked.end("text") :]
    fixed, found = render_docs.render_text(wrong, doc="docs/deploy.md")
    assert len(found) == 1 and found[0].shown == "99.9" and found[0].computed == marked["text"]
    assert fixed == text  # rendering writes the results' figure back


def test_a_table_is_drawn_from_its_results_whole() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    block = render_docs.TABLE.search(text)
    assert block is not None and block["body"].count("\n") >= 5
    emptied = text.replace(block["body"], "| stale |\n")
    fixed, found = render_docs.render_text(emptied, doc="docs/deploy.md")
    assert fixed == text and [m.what for m in found] == [f"table {block['name']}"]


def test_an_unmarked_measurement_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "x.md"
    doc.write_text(
        "A run reaches -52.3 dB in 12 s.\n\n```sh\nhwloop train  # -60 dB in a code block is output\n```\n"
        "| a | b |\n|---|---:|\n| ila | -48.1 |\n"
        "Marked: <!-- fig 1.5 | .1f -->1.5<!-- /fig --> dB.\n"
    )
    monkeypatch.setattr(render_docs, "ROOT", tmp_path)
    found = render_docs.unmarked_figures(doc)
    assert [f.split(" in: ")[0].split(": ")[1] for f in found] == ["'-52.3 dB'", "'12 s'", "'-48.1'"], found
    monkeypatch.setitem(render_docs_tables.NOT_MEASURED, "docs/x.md", ("in 12 s",))
    assert len(render_docs.unmarked_figures(doc)) == 2


def test_a_marker_naming_a_missing_cell_says_where() -> None:
    with pytest.raises(KeyError, match=r"docs/y\.md:2: export\[\"nosuch\"\]"):
        render_docs.render_text('x\n<!-- fig export["nosuch"] | .1f -->1<!-- /fig -->\n', doc="docs/y.md")


def test_every_phrase_listed_as_not_measured_is_still_in_its_doc() -> None:
    """A phrase the doc no longer has would excuse a figure nowhere: the list must not rot."""
    gone = [
        f"{doc}: {phrase!r}"
        for doc, phrases in render_docs_tables.NOT_MEASURED.items()
        for phrase in phrases
        if phrase not in (ROOT / doc).read_text()
    ]
    assert not gone, gone
