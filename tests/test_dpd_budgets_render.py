"""The DPD rows at other budgets (benchmarks/dpd_budgets.py): each budget's runs are judged by the
matrix's rules as the matrix judges its own, beside the matrix's budget, and stale runs are left out."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from dpd_budgets import key, rules_at
from matrix_cells import DPD_METHODS, DPD_QUERIES, SEEDS, dpd_cells
from provenance import stamp
from render_dpd_budgets import section_dpd_budgets

CELL = dpd_cells()[0]


def _runs(budget: int, auto: float, stamped: dict) -> dict:
    """Every method and seed of one cell at ``budget``: the fixed strategies at -60 dBc (the
    textbook at -50), auto at ``auto``."""
    score = {"textbook": -50.0, "auto": auto}
    return {
        key(CELL, budget, m, s): {"score": score.get(m, -60.0), "dpd_alignment": {"lookahead": 2}, **stamped}
        for m in DPD_METHODS
        for s in SEEDS
    }


def test_each_budget_is_judged_alone_by_the_matrix_rules() -> None:
    stamped = stamp(["hwloop.run"])
    cells = {**_runs(12_000, -58.0, stamped), **_runs(30_000, -60.2, stamped)}
    low = {v.rule: v for v in rules_at(cells, 12_000)}
    assert low["auto"].status == "fails" and "auto +2.00 dB behind ila" in low["auto"].broken[0]
    assert {v.rule: v.status for v in rules_at(cells, 30_000)}["auto"] == "holds"
    assert all(v.status == "not measured" for v in rules_at(cells, 50_000))


def test_the_section_shows_each_budget_beside_the_matrix_and_leaves_stale_runs_out() -> None:
    stamped = stamp(["hwloop.run"])
    old = {k: {**r, "code": "0000000000000000"} for k, r in _runs(50_000, -40.0, stamped).items()}
    budgets = {"cells": {**_runs(12_000, -58.0, stamped), **old}}
    matrix = {
        "cells": {CELL.key(m, s): r for (m, s), r in {
            (m, s): {"score": -61.0 if m == "auto" else -60.0, **stamped} for m in DPD_METHODS for s in SEEDS
        }.items()}
    }  # fmt: skip
    text = "\n".join(section_dpd_budgets(budgets, matrix))
    assert "| 12,000 | **fails** (1 of 1) |" in text
    assert f"| {DPD_QUERIES:,} | **holds** (1) |" in text
    assert "50,000" not in text  # its runs are stale: neither shown nor judged
    assert f"| {CELL.name} | -58.0 (+2.00) | -61.0 (-1.00) |" in text
    assert f"| {CELL.name} | -60.0 vs -50.0, L 2 | -60.0 vs -60.0, L - |" in text
