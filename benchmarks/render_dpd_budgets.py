"""Section of docs/BENCHMARKS.md: the matrix's DPD rows and rules at other budgets (dpd_budgets.json),
beside the matrix's own 20,000 queries (matrix.json)."""

from __future__ import annotations

from dpd_budgets import by_budget
from matrix_cells import DPD_QUERIES, SEEDS, dpd_cells
from matrix_rules import FIXED, by_cell, current, evaluate, summary
from render_common import missing, provenance, table
from render_matrix import status_text

HEADING = "## Robustness matrix: the DPD rows at other budgets"


def _at_budget(budgets: dict, matrix: dict) -> dict[int, dict]:
    """{budget: the fresh runs at it, keyed as the matrix keys its own}: the sweep's budgets
    (`dpd_budgets.by_budget`) and the matrix's DPD runs at its own budget."""
    out = by_budget(budgets.get("cells", {}))
    out[DPD_QUERIES] = {k: r for k, r in current(matrix.get("cells", {})).items() if k.startswith("dpd/")}
    return dict(sorted(out.items()))


def _taps(runs: dict, name: str, method: str) -> str:
    """The leading taps the seeds' predistorters chose, e.g. "2" or "1, 3, 3"."""
    seen = [
        ((runs.get(f"dpd/{name}/{method}/{s}") or {}).get("dpd_alignment") or {}).get("lookahead")
        for s in SEEDS
    ]
    seen = [v for v in seen if v is not None]
    if not seen:
        return "-"
    return str(seen[0]) if len(set(seen)) == 1 else ", ".join(map(str, seen))


def section_dpd_budgets(budgets: dict, matrix: dict) -> list[str]:
    out = [HEADING, ""]
    if not budgets:
        return out + missing("dpd_budgets", "python benchmarks/dpd_budgets.py")
    runs = _at_budget(budgets, matrix)
    names = [c.name for c in dpd_cells()]
    out += [
        "The robustness matrix runs its DPD cells at one budget. These are the same cells, methods,",
        "seeds and noise-free scoring at other budgets (the matrix's own column beside them), and the",
        "matrix's rules checked at each. Lower is better.",
        f"Command: `{budgets.get('command', 'python benchmarks/dpd_budgets.py')}`.",
        "",
        "### The matrix's rules at each budget",
        "",
    ]
    rows = []
    for budget, cells in runs.items():
        row = [f"{budget:,}"]
        for v in evaluate(cells, SEEDS):
            counted = f"{len(v.broken)} of {v.checked}" if v.broken else str(v.checked)
            row.append(f"{status_text(v)} ({counted})")
        rows.append(row)
    rules = [v.what for v in evaluate({}, SEEDS)]
    out += table(["queries", *rules], rows, align="l" + "l" * len(rules))
    out += [
        "",
        "(n of m): n of the m cells (or methods in cells) the rule checked break it.",
        "",
        "### auto's median, and its margin over the best fixed strategy (dB; negative: auto ahead)",
        "",
    ]
    header, align = ["cell", *(f"{b:,}" for b in runs)], "l" + "r" * len(runs)
    out += table(header, [_auto_row(runs, n) for n in names], align=align)
    out += [
        "",
        "### ila's median against the textbook GMP-ILA's, and the leading taps ila chose (per seed)",
        "",
    ]
    out += table(header, [_ila_row(runs, n) for n in names], align=align)
    shown = [r for cells in runs.values() for r in cells.values()]
    out += ["", provenance(budgets, shown, table="DPD rows at other budgets"), ""]
    return out


def _medians(runs: dict, budget: int, name: str) -> dict[str, float]:
    scores = by_cell(runs[budget], SEEDS).get(f"dpd/{name}", {})
    return {m: summary(s)[0] for m, s in scores.items() if len(s) == len(SEEDS)}


def _auto_row(runs: dict, name: str) -> list[str]:
    row = [name]
    for budget in runs:
        med = _medians(runs, budget, name)
        fixed = [med[m] for m in FIXED if m in med]
        row.append(f"{med['auto']:.1f} ({med['auto'] - min(fixed):+.2f})" if "auto" in med and fixed else "-")
    return row


def _ila_row(runs: dict, name: str) -> list[str]:
    row = [name]
    for budget in runs:
        med = _medians(runs, budget, name)
        if "ila" not in med or "textbook" not in med:
            row.append("-")
            continue
        row.append(f"{med['ila']:.1f} vs {med['textbook']:.1f}, L {_taps(runs[budget], name, 'ila')}")
    return row
