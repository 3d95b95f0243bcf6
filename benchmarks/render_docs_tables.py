"""What `render_docs` draws the docs' figures with: expression helpers, whole tables, and the
figures with units that are settings, not measurements (`NOT_MEASURED`).

A table here takes the results files (``r["export"]`` reads benchmarks/results/export.json)
and returns the Markdown lines between ``<!-- table NAME -->`` and ``<!-- /table -->``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from typing import Any

from render_docs_dpd import TABLES as DPD_TABLES
from render_docs_dpd import VIEWS as DPD_VIEWS
from render_docs_drift import TABLES as DRIFT_TABLES
from render_export import MLP_COLUMNS


def lo(values: Iterable[float]) -> float:
    return min(values)


def hi(values: Iterable[float]) -> float:
    return max(values)


def mean(values: Iterable[float]) -> float:
    return statistics.fmean(values)


def median(values: Iterable[float]) -> float:
    return statistics.median(values)


def mlp_losses(
    ex: dict,
    form: str,
    key: str = "closed_loop_nmse_db",
    memoryless: bool = True,
    kind: str | None = None,
) -> list[float]:
    """export.json: each MLP export's closed-loop NMSE minus its float inverse's (dB), per device;
    ``memoryless``: the memoryless inverses only (not the tapped one on ``sim:wh``); ``kind``: the
    devices of that kind only ("one output", "I/Q 2->2", "3->3")."""
    return [
        c[form][key] - c["float"][key]
        for c in ex["mlp"].values()
        if form in c
        and (not memoryless or c["family"] == "Inverse")
        and (kind is None or c.get("kind") == kind)
    ]


def gmp_loss(ex: dict, cell: str, form: str, key: str, col: str = "clean", part: str | None = "gmp") -> float:
    """export.json: a GMP (or, ``part=None`` on ``ex["gru"]``, GRU) export's ACPR or EVM minus its
    float predistorter's (dB) on amplifier ``cell``, noise-free (``col="noisy"``: the noisy one)."""
    c = (ex[part] if part else ex)[cell]
    return c[form][col][key] - c["float"][col][key]


def weights(
    cells: dict, sims: Iterable[str] | None = None, *, budget: int, exclude: tuple = ()
) -> list[float]:
    """strategies.json: every round's mixing weight ``device_weight`` of the ``surrogate`` cells at
    ``budget`` on ``sims`` (default: every simulator but ``exclude``)."""
    found = []
    for key, c in cells.items():
        sim, strategy, b = key.split("/")
        chosen = (sims is None or sim in sims) and sim not in exclude
        if strategy == "surrogate" and int(b) == budget and chosen:
            found += [w for w in c.get("device_weight") or [] if w is not None]
    return found


def gap(cells: dict, key: str, a: str, b: str) -> float:
    """``cells[b][key] - cells[a][key]``: how much ``a`` beats ``b`` on an error figure (dB)."""
    return cells[b][key] - cells[a][key]


HELPERS: dict[str, Any] = {
    "mlp_losses": mlp_losses,
    "gmp_loss": gmp_loss,
    "gap": gap,
    "weights": weights,
    "lo": lo,
    "hi": hi,
    "mean": mean,
    "median": median,
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
    """deploy.md: each export's loss against its float inverse (export.json), noise-free device."""
    ex = r["export"]
    cols = MLP_COLUMNS  # the columns of BENCHMARKS.md's MLP table, in its order
    rows = [
        "| inverse | 16 bits | 12 bits | w8a16 | 8 bits (w8a8) | w8a8 + QAT | 8-bit words throughout "
        "| TFLite float16 | TFLite 16x8 | TFLite int8 | TFLite int8 + QAT |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for part, label in (("gmp", "GMP"), ("gru", "GRU")):
        for pa, c in sorted((ex.get(part) or {}).items()):
            if not isinstance(c, dict) or "float" not in c:
                continue
            ref = c["float"]["clean"]["acpr_dbc"]
            cells = [_delta(c[n]["clean"]["acpr_dbc"], ref) if n in c else "" for n in ("c16", "c12")]
            cells += ["", _delta(c["c8"]["clean"]["acpr_dbc"], ref) if "c8" in c else ""]
            name = pa.removeprefix("gru_")
            rows.append(f"| {label}, `{name}` (ACPR) | " + " | ".join(cells) + " |" + " |" * (len(cols) - 4))
    for sim, c in ex["mlp"].items():
        name = "tapped MLP" if c["family"] == "SequenceInverse" else "MLP"
        key = "closed_loop_nmse_clean_db"
        ref = c["float"][key]
        cells = [_delta(c[n][key], ref) if n in c else "" for n in cols]
        rows.append(f"| {name}, `{sim}` ({c.get('kind', '')}, closed loop) | " + " | ".join(cells) + " |")
    board = ex.get("onboard") or {}
    if board:
        host = board["host_float_nmse_db"]
        cells = [_delta(board[n]["onboard_nmse_db"], host) if n in board else "" for n in ("c16", "c12")]
        empty = " |" * (len(cols) - 2)
        rows.append("| MLP on board, simulated ATmega328P | " + " | ".join(cells) + " |" + empty)
    return rows


def _minus(v: float) -> str:
    return f"{v:.1f}".replace("-", "\u2212")


def calibration_units(r: Any) -> list[str]:
    """calibration.md: each method's range of clean NMSE over the units (calibrate_units.json)."""
    data = r["calibrate_units"]
    cells = data["cells"]
    units = sorted({int(k.split("/")[0][4:]) for k in cells})
    parent = data.get("parent", {})
    golden = f"{parent.get('queries', 10000):,}"

    def span(method: str, budget: int) -> str:
        got = [c["closed_loop_nmse_clean_db"] for k, c in cells.items() if k.endswith(f"/{method}/{budget}")]
        return f"{_minus(max(got))} to {_minus(min(got))} dB"

    rows = [
        f"| on units {units[0]}\u2013{units[-1]} ({len(units)} units) | training queries on the unit "
        "| clean NMSE |",
        "|---|---:|---|",
        f"| the golden unit's inverse as it is | 0 | {span('parent', 0)} |",
    ]
    rows += [f"| ILA from scratch | {b:,} | {span('ila', b)} |" for b in (200, 1000)]
    rows.append(
        f"| ILA on the unit's 200 answers plus the golden unit's {golden} logged pairs | 200 | "
        f"{span('ila_parent_data', 200)} |"
    )
    rows += [f"| `--init-from` the golden run | {b:,} | {span('calibrate', b)} |" for b in (100, 200, 300)]
    return rows


def serial_throughput(r: Any) -> list[str]:
    """serial.md: samples/s through `hwloop serve` on a paced pty, per window (serial.json)."""
    data = r["serial"]
    rows = [
        f"| window | samples/s | fraction of line rate ({data['baud']} 8N1, batch {data['batch']}) "
        "| through `MeteredDevice` (samples/s) | fraction |",
        "|---:|---:|---:|---:|---:|",
    ]
    for c in data["results"]:
        rows.append(
            f"| {c['window']} | {c['samples_per_s']:.0f} | {100 * c['fraction']:.1f} % | "
            f"{c['metered_samples_per_s']:.0f} | {100 * c['metered_fraction']:.1f} % |"
        )
    return rows


# Short names for the cells the docs quote most, beside the results files themselves.
VIEWS: dict[str, Callable[[Any], Any]] = {
    **DPD_VIEWS,
    "farms": lambda r: {f["units"]: f for f in r["farm"]["farms"]},
}


TABLES: dict[str, Callable[[Any], list[str]]] = {
    "deploy-losses": deploy_losses,
    **DPD_TABLES,
    "calibration-units": calibration_units,
    "serial-throughput": serial_throughput,
    **DRIFT_TABLES,
}

# Figures with a unit in the prose that are settings, specifications or definitions, not
# measurements: each phrase exactly as the doc has it (the test scans what is left).
NOT_MEASURED: dict[str, tuple[str, ...]] = {
    "docs/drift.md": (
        "with 5 % of them",
        "by default 2 % of the run's",
        "`--threshold-db` (1 dB)",
        "default 5 % of the run's training queries",
    ),
    "docs/dpd.md": (
        "80 % of the budget",
        "(60 % below 40,000 queries)",
        "above 5 % of the peak",
        "PAPR 10 dB",
        "(-61 dB, the simulators' SNR)",
        "(98.28 % of the",
        "The 5 dB ACPR bar",
        "smallest L predicted within 0.5 dB of the best is kept",
    ),
    "docs/calibration.md": (
        "`2 × --noise-repeats`",
        "and 30 % of the budget",
        "±10 %",
    ),
    "docs/arduino.md": (
        "waits the bootloader out (1-2 s)",
        "RAM is 2 KiB",
        "here 16 × 5 ms = 80 ms",
        "above 2 × (16 × the settle time",
    ),
    "docs/bench.md": (
        "analyser noise 75 dB below",
        "would cap agreement near -5 dB",
        "a seeded noise signal 20 dB below full",
        "generator's own record with 5 s timeouts",
        "each end with RF off within 1 s of the fault",
    ),
    "docs/radio.md": (
        "(`tx_gain_db`, -89.75 to 0 dB in 0.25 dB steps)",
        "fraction (say -20 to -30 dB)",
        "(an AD936x's is about +2.5 dBm)",
        "(|x| = 1 at -10 dB is the",
        "IQ imbalance (0.3 dB, 2°: an",
        "image 32 dB down), a DC offset",
        "TX attenuation (<= 0 dB)",
        "3 dB, lower `rx_gain_db`).",
        "DC within 1 dB, image rejection within 1 dB",
        "(-89.75 dB), read back",
        "a seeded noise signal 20 dB below full",
        "(0.5 s; at most 0.8), whatever `timeout_s` is: TX is off within 1 s of a",
        "fake radio's own clock, with a 5 s",
        "within 1 s, and a tripped session never transmits again",
    ),
    "docs/quickstart.md": ("a line at least every 10 s",),
    "docs/farm.md": ("(docs/BENCHMARKS.md, section g; 0.1 s per device call",),
    "docs/errors.md": ("no INFO_OK within 10 s",),
    "README.md": ("sensor with 5 % output noise", "a line at least every 10 s"),
    "docs/strategies.md": (
        "(`sim:lowsnr`, 5 % of full scale)",
        "10 % of the budget kept back",
        "(3,488 + 2 × 256)",
    ),
    "docs/serial.md": (
        "(U2X, +2.1 % error)",
        "out the bootloader (1-2 s)",
        "RAM is 2 KiB",
        "= −54.5 dB",
        "2 %, garbles 2 %, duplicates 2 % of frames",
        "the extra 4 bytes",
    ),
    "docs/deploy.md": (
        "1 KiB of table",
        "(plus 10 %)",
        "on fresh targets (10 % of the budget)",
        "extremes widened by 25 %",
    ),
}
