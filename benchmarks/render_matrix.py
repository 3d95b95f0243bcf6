"""Section of docs/BENCHMARKS.md: the robustness matrix, its rules as a pass/fail table, its tables."""

from __future__ import annotations

from matrix_cells import (
    BACKOFFS_DB,
    DPD_QUERIES,
    GROUPS,
    HELDOUT_INPUT_NOISE,
    HELDOUT_OUTPUT_NOISE,
    MEMORYLESS_DEVICES,
    MEMORYLESS_QUERIES,
    NOISE,
    RESPONSES,
    SEEDS,
)
from matrix_rules import Verdict, by_cell, current, evaluate, summary
from render_common import missing, provenance, table

GROUP_TITLES = {
    "memoryless": "Memoryless devices (clean closed-loop NMSE, dB)",
    "heldout": "Held-out folded devices with input noise (clean closed-loop NMSE, dB)",
    "dpd": (
        "Amplifiers with memory (dBc on a held-out signal through the noise-free amplifier: the output's"
        " ACPR with OFDM, the adjacent power it adds with the DPA_200MHz measurement)"
    ),
}


def status_text(v: Verdict) -> str:
    """A rule's verdict as the page shows it: holds and fails in bold, the others as they are."""
    return f"**{v.status}**" if v.status in ("holds", "fails") else v.status


def _rules(cells: dict) -> list[str]:
    rows = []
    for v in evaluate(cells, SEEDS):
        shown = v.broken[:4] + (["..."] if len(v.broken) > 4 else [])
        if v.incomplete and not v.broken:
            more = " ..." if len(v.incomplete) > 3 else ""
            shown = [f"not complete: {', '.join(v.incomplete[:3])}{more}"]
        rows.append([v.what, str(v.checked), status_text(v), "; ".join(shown) or "-"])
    return table(["rule", "checked", "verdict", "where it breaks"], rows, align="lrll")


def _group_table(group: str, cells: dict) -> tuple[list[str], list[dict]]:
    """Rows: the group's cells; columns: methods, each 'median (worst)' over the seeds."""
    make, methods = GROUPS[group]
    with_path = "auto" in methods and group != "dpd"  # which path auto took, per memoryless cell
    scores = by_cell(cells, SEEDS)
    rows, shown = [], []
    for cell in make():
        where = f"{group}/{cell.name}"
        row = [cell.name]
        for m in methods:
            s = scores.get(where, {}).get(m, {})
            recs = [cells.get(cell.key(m, seed)) for seed in SEEDS]
            shown += [r for r in recs if r and r.get("score") is not None]
            if len(s) < len(SEEDS):
                row.append("-" if not s else f"{len(s)}/{len(SEEDS)} seeds")
                continue
            median, worst = summary(s)
            row.append(f"{median:.1f} ({worst:.1f})")
        if with_path:
            paths = [(cells.get(cell.key("auto", seed)) or {}).get("auto_path") for seed in SEEDS]
            row.append(", ".join(sorted({p for p in paths if p})) or "-")
        rows.append(row)
    return table(["cell", *methods] + (["auto path"] if with_path else []), rows), shown


def _runtime(cells: dict) -> list[str]:
    """What the runs shown cost, per row group: their wall clock (with other work on the machine)
    and the CPU time each used (one TensorFlow thread per worker)."""
    rows = []
    for group in GROUPS:
        recs = [r for k, r in cells.items() if k.startswith(group + "/") and "same_run_as" not in r]
        if not recs:  # a run shown for two methods (matrix.same_run) is counted once
            continue
        wall = sum(r.get("wall_s") or 0 for r in recs)
        cpu = sum(r.get("cpu_s") or 0 for r in recs)
        rows.append([group, f"{len(recs)}", f"{wall / 60:.1f}", f"{cpu / 60:.1f}", f"{cpu / len(recs):.1f}"])
    if not rows:
        return []
    return [
        "What the runs shown cost (a run shown for two methods counted once): the sum of their wall",
        "clocks on the shared machine (two worker processes ran at once) and of their CPU times",
        "(one TensorFlow thread each):",
        "",
        *table(["row group", "runs", "wall, summed (min)", "CPU (min)", "CPU per run (s)"], rows),
        "",
    ]


def _coverage(cells: dict, runs: dict) -> list[str]:
    rows = []
    for group, (make, methods) in GROUPS.items():
        n = len(make()) * len(methods) * len(SEEDS)
        done = sum(k.startswith(group + "/") for k in cells)
        took = runs.get(group) or {}
        elapsed = (
            f"{took['elapsed_s'] / 60:.1f} min, {took.get('jobs', '?')} workers, {took.get('date', '?')}"
            if took.get("elapsed_s") and took.get("runs") == n and done == n  # timed on today's code
            else "-"
        )
        rows.append([group, f"{n}", f"{done}", elapsed])
    return table(["row group", "runs planned", "measured on today's code", "elapsed (whole group)"], rows)


def planned() -> int:
    """Runs in the whole matrix: every cell of every group, by every method, with every seed."""
    return sum(len(make()) * len(methods) * len(SEEDS) for make, methods in GROUPS.values())


def section_matrix(data: dict) -> list[str]:
    """Only runs measured by today's code are shown and judged; older ones count as not run."""
    out = ["## Robustness matrix", ""]
    every = data.get("cells", {})
    cells = current(every)
    if not cells:
        return out + missing("matrix", "python benchmarks/matrix.py")
    sims = ", ".join(f"`{s}`" for s in MEMORYLESS_DEVICES.values())
    out += [
        "Every method across the operating envelope, each cell with seeds "
        f"{', '.join(map(str, SEEDS))} (the device's noise and the",
        "training seed); the tables show the median over the seeds and, in brackets, the worst.",
        f"Memoryless rows: {sims} (one-to-one and folded, 1 to 3",
        f"outputs) with noise of std {NOISE:g} at the output, at the input (referred through the",
        f"device's slope) or both, {MEMORYLESS_QUERIES:,} training queries, default options; scored",
        "against the noise-free device on fresh reachable targets (`closed_loop_nmse_clean_db`).",
        "Held-out rows: folded devices outside the catalogue (`benchmarks/matrix_devices.py`),",
        f"input noise {', '.join(f'{v:g}' for v in HELDOUT_INPUT_NOISE)} and output noise"
        f" {HELDOUT_OUTPUT_NOISE:g}, same budget. DPD rows: `sim:pa_wh` with",
        f"three linear responses ({', '.join(RESPONSES)}), targets",
        f"at {', '.join(f'{b:g}' for b in BACKOFFS_DB)} dB below the output peak the amplifier reaches",
        "(its noise-free answer to the training signal driven to |x| = 1), trained on generated OFDM",
        "or DPA_200MHz's train split, scored on a held-out signal (another OFDM draw, the test",
        f"split) through the noise-free amplifier; {DPD_QUERIES:,} queries for every method, the",
        "textbook GMP-ILA (`benchmarks/dpd_textbook.py`) included. With OFDM the score is the",
        "output's ACPR; the measured signal carries its own adjacent-channel power (-41.8 dBc on",
        "the test split), which every method's output reaches, so there the score is the adjacent",
        "power of the error y - t over the channel power (`added_acpr_db`).",
        "",
        "Cells and budgets chosen to bring the whole matrix near an hour on 2 cores (the elapsed",
        "times below are what it took): two drives (6 dB back-off and the peak) rather than a",
        "sweep, one input-noise level on the held-out devices, the SPSA baseline left out",
        "(benchmarks/strategies.py measures it), 5,000 queries on the memoryless rows. Where auto",
        "finds the device not one-to-one it spends the budget as `surrogate` does, query for query:",
        "that run is measured once and shown for both (`same_run` in benchmarks/matrix.py).",
        f"Measured by today's code: {len(cells)} of the {planned()} runs the matrix plans (command:",
        f"`{data.get('command', 'python benchmarks/matrix.py')}`; a cell shown `-` was not run on this",
        "code, `k/3 seeds` only partly); a rule is judged on complete cells only and lists the",
        "others as not complete, never as passing. Per row group, with the elapsed time of its",
        "last whole run:",
        "",
        *_coverage(cells, data.get("runs", {})),
        "",
        "### Rules",
        "",
        *_rules(cells),
        "",
    ]
    records: list[dict] = []
    for group, title in GROUP_TITLES.items():
        if not any(k.startswith(group + "/") for k in cells):
            continue
        rows, shown = _group_table(group, cells)
        records += shown
        out += [f"### {title}", "", *rows, ""]
    out += _runtime(cells)
    out += [provenance(data, records, table="robustness matrix"), ""]
    return out
