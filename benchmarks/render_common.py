"""What every section of docs/BENCHMARKS.md shares: formatting, provenance, thresholds."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from common import RESULTS
from provenance import stale

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
ORDER = ("ila", "iila", "surrogate", "auto", "spsa")  # strategies, simplest first
BUDGETS = (1000, 3000, 10000)
FINAL = 10000
TARGET_DB = -40.0
ILA_DEFEATING = ("saleh_folded", "lowsnr")
FLOOR_GAP_DB = 6.0  # section a: ILA within this of the noise floor
AUTO_WIN_DB = 6.0  # section b: auto beats ila by at least this on ILA-defeating simulators
AUTO_LOSS_DB = 0.5  # section b: auto at most this worse than ila on one-to-one simulators
OVERHEAD_RATIO = 1.25  # section d


def db(v: float | None) -> str:
    """A dB figure as printed everywhere (None means an exact answer, -inf dB)."""
    return "exact" if v is None else f"{v:.1f}"


def num(v: float | None) -> float:
    return float("-inf") if v is None else float(v)


def verdict(ok: bool) -> str:
    return "**holds**" if ok else "**fails**"


STALE: list[str] = []  # every figure shown whose code has changed since it was measured


def provenance(data: dict, records: Iterable[dict] | None = None, *, table: str = "") -> str:
    """The machine, dates and commits of the figures a table shows, for its caption.

    ``records`` are the cells the table draws (each stamped when measured, see
    benchmarks/provenance.py), or None for a table drawn from the whole results
    file, whose own stamp counts. A record whose code has changed since is
    collected in `STALE`, and the page is not written while any is there; a
    record's date is its own, never the file's.
    """
    recs = [data] if records is None else [r for r in records if isinstance(r, dict)]
    where = table or data.get("command", "a table")
    for r in recs:
        reason = stale(r)
        if reason:
            STALE.append(f"{where}: {reason}")
    dates = sorted({r.get("date", "?") for r in recs}) or ["?"]
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    ordered = sorted(recs, key=lambda r: str(r.get("measured_at", r.get("date", ""))))
    commits = list(dict.fromkeys(str(r.get("commit", "?")) for r in ordered)) or ["?"]
    at = f"commit {commits[0]}" if len(commits) == 1 else f"commits {commits[0]} to {commits[-1]}"
    codes = sorted({str(r["code"]) for r in recs if r.get("code")})
    code = f", code {', '.join(codes)}" if codes else ""
    return f"Machine: {data.get('machine', 'unknown')}; measured {when} at {at}{code}."


def table(header: list[str], rows: list[list[str]], align: str = "") -> list[str]:
    """A Markdown table; ``align`` holds one of 'l'/'r' per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---" if a == "l" else "---:" for a in align]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(sep) + " |",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def missing(name: str, command: str) -> list[str]:
    return [f"_No results yet ({RESULTS.name}/{name}.json is missing or incomplete): run `{command}`._", ""]


def cell(cells: dict, sim: str, strategy: str, budget: int) -> dict | None:
    return cells.get(f"{sim}/{strategy}/{budget}")
