"""docs/dpd.md's tables and the short names its figures use, from the DPD results files, for
render_docs.py (dpd.json, dpd_heldout.json, dpd_families.json)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _q(n: int | None) -> str:
    """A query count as the tables print it (blank for none)."""
    return "" if not n else f"{n:,}"


NO_DPD = "no predistortion (the bare signal at `auto`'s drive power)"


def _heldout_rows(cells: dict, order: list[tuple[str, str]], lookahead: bool) -> list[str]:
    """One row per method on the held-out amplifier's test split; ``lookahead`` adds leading taps."""
    head = (
        "| on the test split | terms | queries (train + eval) | ACPR (dBc) | EVM (dB) | NMSE (dB) "
        "| peak drive |"
    )
    rows = [
        head + (" leading taps |" if lookahead else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" * lookahead),
    ]
    for key, label in order:
        c = cells[key]
        queries = _q(c.get("queries_used")) + (f" + {c['eval_queries']:,}" if c.get("eval_queries") else "")
        row = (
            f"| {label} | {c['terms'] or ''} | {queries} | {c['acpr_dbc']:.1f} | {c['evm_db']:.1f} | "
            f"{c['nmse_db']:.1f} | {c['drive_peak']:.3f} |"
        )
        if lookahead:
            taps = (c.get("dpd") or {}).get("dpd_lookahead")
            row += f" {'' if taps is None or key.startswith('textbook') else taps} |"
        rows.append(row)
    return rows


def dpd_heldout(r: Any) -> list[str]:
    """dpd.md: the held-out amplifier's test split (dpd_heldout.json)."""
    order = [
        ("none", NO_DPD),
        ("textbook/50000", "textbook GMP-ILA, 50,000"),
        ("auto/50000", "`auto`, 50,000"),
        ("ila/50000", "`--strategy ila`, 50,000"),
        ("textbook/20000", "textbook GMP-ILA, 20,000"),
        ("ila/20000", "`--strategy ila`, 20,000"),
        ("surrogate/20000", "`--strategy surrogate`, 20,000"),
    ]
    return _heldout_rows(r["dpd_heldout"]["apa"]["cells"], order, lookahead=False)


def dpd_heldout_nmp(r: Any) -> list[str]:
    """dpd.md: the held-out amplifier behind filters that are not minimum phase (dpd_heldout.json)."""
    order = [
        ("none", NO_DPD),
        ("textbook/50000", "textbook GMP-ILA, 50,000"),
        ("auto/50000", "`auto`, 50,000"),
        ("textbook/20000", "textbook GMP-ILA, 20,000"),
        ("ila/20000", "`--strategy ila`, 20,000"),
        ("iila/20000", "`--strategy iila`, 20,000"),
    ]
    return _heldout_rows(r["dpd_heldout"]["apa_nmp"]["cells"], order, lookahead=True)


DPD_METHODS = (
    ("none", "none (the bare signal at `auto`'s drive power)", ""),
    ("textbook/50000", "textbook GMP-ILA", "50,000"),
    ("ila/50000", "`ila`", "50,000"),
    ("auto/50000", "`auto`", "50,000"),
    ("textbook/20000", "textbook GMP-ILA", "20,000"),
    ("ila/20000", "`ila`", "20,000"),
    ("surrogate/20000", "`surrogate`", "20,000"),
)


def dpd_fitted(r: Any) -> list[str]:
    """dpd.md: every method on the fitted simulators, on the held-out OFDM signal (dpd.json)."""
    rows = [
        "| amplifier | predistorter | budget | terms | ACPR (dBc) | EVM (dB) | NMSE (dB) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for amp in ("pa_gmp", "pa_wh", "pa_wh?thermal=0.03"):
        cells = r["dpd"]["cells"][f"{amp}/ofdm"]
        for key, label, budget in DPD_METHODS:
            c = cells[key]
            rows.append(
                f"| `sim:{amp}` | {label} | {budget} | {c['terms'] or ''} | {c['acpr_dbc']:.1f} | "
                f"{c['evm_db']:.1f} | {c['nmse_db']:.1f} |"
            )
    return rows


def dpd_families(r: Any) -> list[str]:
    """dpd.md: every inverse family on `sim:pa_wh`, its queries and wall time (dpd_families.json)."""
    cells = r["dpd_families"]["cells"]
    rows = [
        "| inverse | strategy | terms | ACPR (dBc) | EVM (dB) | training queries | wall (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for family in ("gmp", "tapped", "gru", "tapped (no signal)"):
        for strategy in ("ila", "surrogate", "auto"):
            c = cells.get(f"pa_wh/{family}/{strategy}")
            if c is None:
                continue
            rows.append(
                f"| {family} | `{strategy}` | {c['terms'] or ''} | {c['acpr_dbc']:.1f} | {c['evm_db']:.1f} | "
                f"{c['queries_used']:,} | {c['wall_s']:.1f} |"
            )
    return rows


def _ofdm(r: Any) -> dict:
    return {k.rsplit("/", 1)[0]: v for k, v in r["dpd"]["cells"].items() if k.endswith("/ofdm")}


def _dpa(r: Any) -> dict:
    return {k.rsplit("/", 1)[0]: v for k, v in r["dpd"]["cells"].items() if k.endswith("/dpa")}


VIEWS: dict[str, Callable[[Any], Any]] = {
    "heldout": lambda r: r["dpd_heldout"]["apa"]["cells"],
    "heldout_before": lambda r: r["dpd_heldout"]["apa@before"]["cells"],
    "heldout_nmp": lambda r: r["dpd_heldout"]["apa_nmp"]["cells"],
    "ofdm": _ofdm,
    "dpa": _dpa,
    "families": lambda r: r["dpd_families"]["cells"],
}

TABLES: dict[str, Callable[[Any], list[str]]] = {
    "dpd-heldout": dpd_heldout,
    "dpd-heldout-nmp": dpd_heldout_nmp,
    "dpd-fitted": dpd_fitted,
    "dpd-families": dpd_families,
}
