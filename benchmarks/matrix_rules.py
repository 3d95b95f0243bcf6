"""The rules the robustness matrix checks, evaluated on its results (pure functions, no runs).

Scores are in dB, lower is better (clean closed-loop NMSE; ACPR in dBc for
predistortion). Per cell and method the seeds' scores give a median and a
worst (the highest). The rules:

1. ``auto``: in every cell, auto's median within `AUTO_MARGIN_DB` of the best
   median among the fixed strategies (ila, iila, surrogate, spsa) run on that cell.
2. ``textbook``: in every DPD cell, the medians of ila and iila within
   `TEXTBOOK_MARGIN_DB` of the textbook GMP-ILA's, all given the same queries.
3. ``spread``: for every method in every cell, its worst seed no more than
   `SPREAD_DB` behind its median.

A rule whose cells are all missing is "not measured"; a cell that lacks a
method or seed the rule needs is listed as incomplete, never as passing.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from provenance import stale

AUTO_MARGIN_DB = 0.5
TEXTBOOK_MARGIN_DB = 1.0
SPREAD_DB = 3.0
FIXED = ("ila", "iila", "surrogate", "spsa")


@dataclass
class Verdict:
    """One rule over the matrix: the cells that break it and those that could not be judged."""

    rule: str
    what: str
    checked: int = 0
    broken: list[str] = field(default_factory=list)  # "cell: why"
    incomplete: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.broken:
            return "fails"
        if self.incomplete:
            return "incomplete"
        return "holds" if self.checked else "not measured"


def by_cell(cells: dict, seeds: tuple[int, ...]) -> dict[str, dict[str, dict[int, float]]]:
    """{group/cell: {method: {seed: score}}} from result keys ``group/cell/method/seed``, the
    given seeds only."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for key, rec in cells.items():
        where, method, seed = key.rsplit("/", 2)
        if rec.get("score") is None or int(seed) not in seeds:
            continue
        out.setdefault(where, {}).setdefault(method, {})[int(seed)] = float(rec["score"])
    return out


def summary(scores: dict[int, float]) -> tuple[float, float]:
    """(median, worst) of one method's seeds."""
    values = list(scores.values())
    return statistics.median(values), max(values)


def rule_auto(table: dict, seeds: tuple[int, ...]) -> Verdict:
    v = Verdict("auto", f"auto within {AUTO_MARGIN_DB:g} dB of the best fixed strategy (median over seeds)")
    for where, methods in sorted(table.items()):
        fixed = [m for m in FIXED if m in methods]
        if "auto" not in methods and not fixed:
            continue
        if "auto" not in methods or not fixed or any(len(methods[m]) < len(seeds) for m in ["auto", *fixed]):
            v.incomplete.append(where)
            continue
        v.checked += 1
        best = min(fixed, key=lambda m: summary(methods[m])[0])
        gap = summary(methods["auto"])[0] - summary(methods[best])[0]
        if gap > AUTO_MARGIN_DB:
            v.broken.append(f"{where}: auto {gap:+.2f} dB behind {best}")
    return v


def rule_textbook(table: dict, seeds: tuple[int, ...]) -> Verdict:
    what = f"ila and iila within {TEXTBOOK_MARGIN_DB:g} dB of the textbook GMP-ILA (DPD cells)"
    v = Verdict("textbook", what)
    for where, methods in sorted(table.items()):
        if not where.startswith("dpd/"):
            continue
        need = ["textbook", "ila", "iila"]
        if any(m not in methods or len(methods[m]) < len(seeds) for m in need):
            v.incomplete.append(where)
            continue
        v.checked += 1
        ref = summary(methods["textbook"])[0]
        for m in ("ila", "iila"):
            gap = summary(methods[m])[0] - ref
            if gap > TEXTBOOK_MARGIN_DB:
                v.broken.append(f"{where}: {m} {gap:+.2f} dB behind the textbook")
    return v


def rule_spread(table: dict, seeds: tuple[int, ...]) -> Verdict:
    v = Verdict("spread", f"no method's worst seed more than {SPREAD_DB:g} dB behind its median")
    for where, methods in sorted(table.items()):
        for m, scores in sorted(methods.items()):
            if len(scores) < len(seeds):
                v.incomplete.append(f"{where} {m}")
                continue
            v.checked += 1
            median, worst = summary(scores)
            if worst - median > SPREAD_DB:
                v.broken.append(f"{where}: {m} worst seed {worst - median:+.2f} dB behind its median")
    return v


def current(cells: dict) -> dict:
    """The runs measured by today's code (older ones count as not run) that produced a score."""
    return {k: r for k, r in cells.items() if r.get("score") is not None and stale(r) is None}


def evaluate(cells: dict, seeds: tuple[int, ...], groups: tuple[str, ...] | None = None) -> list[Verdict]:
    """Every rule on the results of the given row groups (all, by default)."""
    table = by_cell(cells, seeds)
    if groups is not None:
        table = {k: v for k, v in table.items() if k.split("/", 1)[0] in groups}
    return [rule_auto(table, seeds), rule_textbook(table, seeds), rule_spread(table, seeds)]
