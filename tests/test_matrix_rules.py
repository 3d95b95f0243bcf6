"""The robustness matrix's rules (benchmarks/matrix_rules.py): each fails on results that break it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from matrix_rules import AUTO_MARGIN_DB, SPREAD_DB, TEXTBOOK_MARGIN_DB, evaluate

SEEDS = (0, 1, 2)


def results(table: dict[str, dict[str, list[float]]]) -> dict:
    """Result cells ``group/cell/method/seed`` from {group/cell: {method: [score per seed]}}."""
    return {
        f"{where}/{method}/{seed}": {"score": score}
        for where, methods in table.items()
        for method, scores in methods.items()
        for seed, score in zip(SEEDS, scores, strict=True)
    }


def verdicts(table: dict) -> dict:
    return {v.rule: v for v in evaluate(results(table), SEEDS)}


def good_dpd() -> dict[str, list[float]]:
    return {
        "textbook": [-50.0, -50.2, -49.9],
        "ila": [-50.5, -50.1, -50.0],
        "iila": [-50.4, -50.3, -49.6],
        "surrogate": [-55.0, -55.1, -54.8],
        "auto": [-55.2, -54.7, -54.9],
    }


def good_memoryless() -> dict[str, list[float]]:
    return {
        "ila": [-30.0, -30.5, -29.8],
        "iila": [-31.0, -31.2, -30.9],
        "surrogate": [-40.0, -41.0, -39.5],
        "auto": [-39.8, -40.2, -39.0],
    }


def test_every_rule_holds_on_results_that_keep_it() -> None:
    v = verdicts({"memoryless/a": good_memoryless(), "dpd/b": good_dpd()})
    assert {r: x.status for r, x in v.items()} == {"auto": "holds", "textbook": "holds", "spread": "holds"}
    assert v["auto"].checked == 2 and v["textbook"].checked == 1 and v["spread"].checked == 9


@pytest.mark.parametrize("behind", [AUTO_MARGIN_DB + 0.05, 3.0])
def test_auto_behind_the_best_fixed_strategy_breaks_the_auto_rule(behind: float) -> None:
    cell = good_memoryless()
    cell["auto"] = [s + behind for s in (-41.0, -40.0, -39.5)]  # median 0.05 or 3 dB above surrogate's -40
    v = verdicts({"memoryless/a": cell, "dpd/b": good_dpd()})
    assert v["auto"].status == "fails" and len(v["auto"].broken) == 1
    assert v["auto"].broken[0].startswith("memoryless/a: auto") and "surrogate" in v["auto"].broken[0]
    assert v["textbook"].status == "holds"


def test_the_auto_rule_reads_medians_not_single_seeds() -> None:
    cell = good_memoryless()
    cell["auto"] = [-40.1, -40.0, -20.0]  # one bad seed: the median holds (the spread rule catches it)
    v = verdicts({"memoryless/a": cell})
    assert v["auto"].status == "holds"
    assert v["spread"].status == "fails" and "memoryless/a: auto" in v["spread"].broken[0]


def test_ila_or_iila_behind_the_textbook_breaks_the_textbook_rule() -> None:
    for method in ("ila", "iila"):
        cell = good_dpd()
        cell[method] = [-50.0 + TEXTBOOK_MARGIN_DB + 0.1] * 2 + [-60.0]  # median 1.1 dB behind -50.0
        v = verdicts({"dpd/b": cell})
        assert v["textbook"].status == "fails", method
        assert v["textbook"].broken == [f"dpd/b: {method} +1.10 dB behind the textbook"]


def test_the_textbook_rule_ignores_memoryless_cells() -> None:
    v = verdicts({"memoryless/a": good_memoryless()})
    assert v["textbook"].status == "not measured" and v["textbook"].checked == 0


def test_a_worst_seed_far_behind_its_median_breaks_the_spread_rule() -> None:
    cell = good_dpd()
    cell["textbook"] = [-50.0, -50.1, -50.0 + SPREAD_DB + 0.01]
    v = verdicts({"dpd/b": cell})
    assert v["spread"].status == "fails"
    assert v["spread"].broken == [f"dpd/b: textbook worst seed +{SPREAD_DB + 0.01:.2f} dB behind its median"]
    cell["textbook"] = [-50.0, -50.1, -50.0 + SPREAD_DB - 0.01]
    assert verdicts({"dpd/b": cell})["spread"].status == "holds"


def test_missing_seeds_or_methods_are_incomplete_never_passing() -> None:
    cells = results({"memoryless/a": good_memoryless()})
    del cells["memoryless/a/auto/2"]
    v = {x.rule: x for x in evaluate(cells, SEEDS)}
    assert v["auto"].status == "incomplete" and v["auto"].incomplete == ["memoryless/a"]
    assert v["spread"].status == "incomplete"
    failed = results({"memoryless/a": good_memoryless()})
    failed["memoryless/a/surrogate/1"] = {"score": None, "error": "RuntimeError: boom"}
    assert {x.rule: x for x in evaluate(failed, SEEDS)}["auto"].incomplete == ["memoryless/a"]


def test_only_the_chosen_seeds_and_groups_count() -> None:
    cells = results({"memoryless/a": good_memoryless(), "dpd/b": good_dpd()})
    cells["memoryless/a/auto/7"] = {"score": 0.0}  # a seed outside the matrix's: ignored
    v = {x.rule: x for x in evaluate(cells, SEEDS, groups=("memoryless",))}
    assert v["auto"].status == "holds" and v["auto"].checked == 1 and v["textbook"].checked == 0
