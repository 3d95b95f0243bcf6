"""The robustness matrix's section of docs/BENCHMARKS.md: only runs of today's code are shown and
judged, and the section is re-rendered alone into the page as it stands."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import render
from provenance import stamp
from render_matrix import section_matrix

PAGE = "# Benchmarks\n\n## b. Before\n\nb\n\n## c. Devices with memory\n\nm\n"
KEY = "memoryless/folded, 1 out, noise at input/{}/{}"


def test_a_stale_run_is_not_shown_and_a_fresh_one_is() -> None:
    old = {KEY.format("ila", 0): {"score": -25.0, "code": "0000000000000000", "scheme": 2}}
    assert "_No results yet" in "\n".join(section_matrix({"cells": old}))
    fresh = {
        KEY.format(m, s): {"score": -20.0 - s, **stamp(["hwloop.run"])}
        for m in ("ila", "auto")
        for s in (0, 1, 2)
    }
    text = "\n".join(section_matrix({"cells": {**old, **fresh}}))
    assert "| folded, 1 out, noise at input | -21.0 (-20.0) | - | - | -21.0 (-20.0) |" in text
    assert "| memoryless | 216 | 6 | - |" in text  # 18 cells x 4 methods x 3 seeds; no whole run timed


def test_the_section_is_spliced_in_place_and_replaced_on_the_next_render(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = ["## Robustness matrix", "", "first"]
    monkeypatch.setitem(render.SECTIONS, "matrix", (lambda: body, "## c. Devices with memory"))
    once = render.splice(PAGE, "matrix")
    assert once == PAGE.replace("## c.", "## Robustness matrix\n\nfirst\n\n## c.")
    body[-1] = "second"
    assert render.splice(once, "matrix") == PAGE.replace("## c.", "## Robustness matrix\n\nsecond\n\n## c.")


def test_a_section_with_stale_figures_is_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    def stale_section() -> list[str]:
        render.STALE.append("matrix: measured at an older commit")
        return ["## Robustness matrix", "", "old"]

    monkeypatch.setitem(render.SECTIONS, "matrix", (stale_section, "## c. Devices with memory"))
    with pytest.raises(SystemExit, match="stale"):
        render.splice(PAGE, "matrix")
