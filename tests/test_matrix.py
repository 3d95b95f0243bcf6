"""A reduced robustness matrix, run for real: the cells most likely to break a rule, three seeds.

The full matrix (benchmarks/matrix.py) takes about an hour; this runs two of
its memoryless cells at 3,000 queries and 2,000 fit steps (a folded device
with input noise, where auto's noise rule alone took the ILA path; a
one-to-one device with output noise, where auto must match iterative ILA)
and one DPD cell at the rule's 20,000 queries (the minimum-phase amplifier
driven to its peak), and checks the matrix's own rules on them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from matrix_cells import SEEDS, STRATEGIES, Reduced, dpd_cells, memoryless_cells, run
from matrix_rules import evaluate

pytestmark = pytest.mark.slow

SIZE = Reduced(queries=3_000, fit_steps=2_000)
MEMORYLESS = ("folded, 1 out, noise at input", "one-to-one, 1 out, noise at output")
DPD = "minimum phase, 0 dB back-off, ofdm"


@pytest.fixture(scope="module")
def results() -> dict:
    cells = {}
    for cell in memoryless_cells():
        if cell.name in MEMORYLESS:
            for method in STRATEGIES:
                for seed in SEEDS:
                    cells[cell.key(method, seed)] = run(cell, method, seed, SIZE)
    (dpd,) = [c for c in dpd_cells() if c.name == DPD]
    for method in ("textbook", "ila", "iila"):
        for seed in SEEDS:
            cells[dpd.key(method, seed)] = run(dpd, method, seed)
    return cells


def test_the_reduced_matrix_keeps_every_rule(results: dict) -> None:
    verdicts = {v.rule: v for v in evaluate(results, SEEDS, groups=("memoryless",))}
    assert verdicts["auto"].checked == 2
    for v in verdicts.values():
        assert v.status in ("holds", "not measured"), (v.rule, v.broken, v.incomplete)
    dpd = {v.rule: v for v in evaluate(results, SEEDS, groups=("dpd",))}
    for rule in ("textbook", "spread"):
        assert dpd[rule].checked >= 1 and dpd[rule].status == "holds", (rule, dpd[rule].broken)


def test_auto_took_the_path_each_device_calls_for(results: dict) -> None:
    paths = {
        name: {results[f"memoryless/{name}/auto/{s}"]["auto_path"] for s in SEEDS} for name in MEMORYLESS
    }
    assert paths[MEMORYLESS[0]] == {"surrogate"}  # folded: never the ILA path
    assert paths[MEMORYLESS[1]] <= {"iila", "refine"}  # one-to-one: iterative ILA, rounds if room
    for s in SEEDS:
        fold = results[f"memoryless/{MEMORYLESS[0]}/auto/{s}"]["one_to_one"]
        assert fold["one_to_one"] is False and fold["fold_share"] > 0.1
