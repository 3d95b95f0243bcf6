"""What `render_docs` draws the docs' figures with: expression helpers, whole tables, and the
figures with units that are settings, not measurements (`NOT_MEASURED`).

A table here takes the results files (``r["export"]`` reads benchmarks/results/export.json)
and returns the Markdown lines between ``<!-- table NAME -->`` and ``<!-- /table -->``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from typing import Any


def lo(values: Iterable[float]) -> float:
    return min(values)


def hi(values: Iterable[float]) -> float:
    return max(values)


def mean(values: Iterable[float]) -> float:
    return statistics.fmean(values)


def mlp_losses(ex: dict, form: str, key: str = "closed_loop_nmse_db", memoryless: bool = True) -> list[float]:
    """export.json: each MLP export's closed-loop NMSE minus its float inverse's (dB), per simulator;
    ``memoryless``: the memoryless inverses only (not the tapped one on ``sim:wh``)."""
    return [
        c[form][key] - c["float"][key]
        for c in ex["mlp"].values()
        if form in c and (not memoryless or c["family"] == "Inverse")
    ]


HELPERS: dict[str, Any] = {
    "mlp_losses": mlp_losses,
    "lo": lo,
    "hi": hi,
    "mean": mean,
    "abs": abs,
    "min": min,
    "max": max,
    "len": len,
    "round": round,
    "sum": sum,
    "sorted": sorted,
}


def _db(v: float | None, spec: str = ".1f") -> str:
    return "exact" if v is None else format(v, spec)


def _delta(v: float, ref: float) -> str:
    d = round(v - ref, 1)
    return f"{d + 0.0:+.1f}"  # +0.0: no "-0.0"


def deploy_losses(r: Any) -> list[str]:
    """deploy.md: each export's loss against its float inverse (export.json)."""
    ex = r["export"]
    cols = ("c16", "c12", "c8", "c8/io8", "tflite/float16", "tflite/int8")
    rows = [
        "| inverse | 16 bits | 12 bits | 8 bits | 8-bit words throughout | TFLite float16 | TFLite int8 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for pa, c in sorted(ex["gmp"].items()):
        cells = [_delta(c[n]["acpr_dbc"], c["float"]["acpr_dbc"]) for n in ("c16", "c12", "c8")]
        rows.append(f"| GMP, `sim:{pa}` (ACPR) | " + " | ".join(cells) + " | | | |")
    for sim, c in ex["mlp"].items():
        name = "tapped MLP" if c["family"] == "SequenceInverse" else "MLP"
        ref = c["float"]["closed_loop_nmse_db"]
        cells = [_delta(c[n]["closed_loop_nmse_db"], ref) if n in c else "" for n in cols]
        rows.append(f"| {name}, `sim:{sim}` (closed-loop NMSE) | " + " | ".join(cells) + " |")
    board = ex.get("onboard") or {}
    if board:
        host = board["host_float_nmse_db"]
        cells = [_delta(board[n]["onboard_nmse_db"], host) if n in board else "" for n in ("c16", "c12")]
        rows.append("| MLP on board, simulated ATmega328P | " + " | ".join(cells) + " | | | | |")
    return rows


TABLES: dict[str, Callable[[Any], list[str]]] = {
    "deploy-losses": deploy_losses,
}

# Figures with a unit in the prose that are settings, specifications or definitions, not
# measurements: each phrase exactly as the doc has it (the test scans what is left).
NOT_MEASURED: dict[str, tuple[str, ...]] = {
    "docs/deploy.md": (
        "1 KiB of table",
        "(plus 10 %)",
    ),
}
