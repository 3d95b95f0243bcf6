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


def median(values: Iterable[float]) -> float:
    return statistics.median(values)


def mlp_losses(ex: dict, form: str, key: str = "closed_loop_nmse_db", memoryless: bool = True) -> list[float]:
    """export.json: each MLP export's closed-loop NMSE minus its float inverse's (dB), per simulator;
    ``memoryless``: the memoryless inverses only (not the tapped one on ``sim:wh``)."""
    return [
        c[form][key] - c["float"][key]
        for c in ex["mlp"].values()
        if form in c and (not memoryless or c["family"] == "Inverse")
    ]


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


def _q(n: int | None) -> str:
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


def _ofdm(r: Any) -> dict:
    return {k.rsplit("/", 1)[0]: v for k, v in r["dpd"]["cells"].items() if k.endswith("/ofdm")}


def _dpa(r: Any) -> dict:
    return {k.rsplit("/", 1)[0]: v for k, v in r["dpd"]["cells"].items() if k.endswith("/dpa")}


# Short names for the cells the docs quote most, beside the results files themselves.
VIEWS: dict[str, Callable[[Any], Any]] = {
    "heldout": lambda r: r["dpd_heldout"]["apa"]["cells"],
    "heldout_before": lambda r: r["dpd_heldout"]["apa@before"]["cells"],
    "heldout_nmp": lambda r: r["dpd_heldout"]["apa_nmp"]["cells"],
    "ofdm": _ofdm,
    "dpa": _dpa,
    "families": lambda r: r["dpd_families"]["cells"],
    "farms": lambda r: {f["units"]: f for f in r["farm"]["farms"]},
}


TABLES: dict[str, Callable[[Any], list[str]]] = {
    "deploy-losses": deploy_losses,
    "dpd-heldout": dpd_heldout,
    "dpd-heldout-nmp": dpd_heldout_nmp,
    "dpd-fitted": dpd_fitted,
    "dpd-families": dpd_families,
    "calibration-units": calibration_units,
    "serial-throughput": serial_throughput,
}

# Figures with a unit in the prose that are settings, specifications or definitions, not
# measurements: each phrase exactly as the doc has it (the test scans what is left).
NOT_MEASURED: dict[str, tuple[str, ...]] = {
    "docs/dpd.md": (
        "80 % of the budget",
        "(60 % in one round below 40,000 queries)",
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
    ),
}
