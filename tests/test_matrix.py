"""A reduced robustness matrix, run for real: the cells most likely to break a rule, three seeds.

The full matrix (benchmarks/matrix.py) takes about an hour; this runs two of
its memoryless cells at 3,000 queries and 2,000 fit steps (a folded device
with input noise, where auto's noise rule alone took the ILA path; a
one-to-one device with output noise, where auto must match iterative ILA)
and checks the matrix's own rules on them. The DPD rows are the benchmark's
alone (nine runs at 20,000 queries cost the suite about three minutes);
tests/test_matrix_rules.py checks each rule breaks when it should.

At this size auto breaks its own rule on the one-to-one cell (0.55 dB behind
iterative ILA, median of three seeds, measured 2026-12-05): that test is a
strict xfail naming it, so it fails the suite the day auto meets the rule.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from matrix_cells import SEEDS, STRATEGIES, Reduced, memoryless_cells, run
from matrix_rules import evaluate

pytestmark = pytest.mark.slow

SIZE = Reduced(queries=3_000, fit_steps=2_000)
MEMORYLESS = ("folded, 1 out, noise at input", "one-to-one, 1 out, noise at output")


@pytest.fixture(scope="module")
def results() -> dict:
    cells = {}
    for cell in memoryless_cells():
        if cell.name in MEMORYLESS:
            for method in STRATEGIES:
                for seed in SEEDS:
                    cells[cell.key(method, seed)] = run(cell, method, seed, SIZE)
    return cells


def _only(results: dict, name: str) -> dict:
    return {k: v for k, v in results.items() if f"/{name}/" in k}


def test_on_the_folded_device_every_rule_holds(results: dict) -> None:
    verdicts = evaluate(_only(results, MEMORYLESS[0]), SEEDS, groups=("memoryless",))
    assert {v.rule: v.checked for v in verdicts}["auto"] == 1
    for v in verdicts:
        assert v.status in ("holds", "not measured"), (v.rule, v.broken, v.incomplete)


@pytest.mark.xfail(strict=True, reason="issue 28 open: auto 0.55 dB behind iila here at 3,000 queries")
def test_on_the_one_to_one_device_every_rule_holds(results: dict) -> None:
    verdicts = evaluate(_only(results, MEMORYLESS[1]), SEEDS, groups=("memoryless",))
    assert {v.rule: v.checked for v in verdicts}["auto"] == 1
    for v in verdicts:
        assert v.status in ("holds", "not measured"), (v.rule, v.broken, v.incomplete)


def test_auto_took_the_path_each_device_calls_for(results: dict) -> None:
    paths = {
        name: {results[f"memoryless/{name}/auto/{s}"]["auto_path"] for s in SEEDS} for name in MEMORYLESS
    }
    assert paths[MEMORYLESS[0]] == {"surrogate"}  # folded: never the ILA path
    assert paths[MEMORYLESS[1]] <= {"iila", "refine"}  # one-to-one: iterative ILA, rounds if room
    for s in SEEDS:
        fold = results[f"memoryless/{MEMORYLESS[0]}/auto/{s}"]["one_to_one"]
        assert fold["one_to_one"] is False and fold["fold_share"] > 0.1
