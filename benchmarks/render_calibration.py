"""The unit-calibration section of docs/BENCHMARKS.md, from benchmarks/results/calibrate_units.json."""

from __future__ import annotations

from render_common import db, missing, num, provenance, table, verdict

METHODS = (
    ("parent", "unit 0's inverse as is"),
    ("ila", "ila from scratch"),
    ("auto", "auto from scratch"),
    ("ila_parent_data", "ila, unit 0's log joined"),
    ("calibrate", "--init-from unit 0 (device forward)"),
)
GOAL_DB, TARGET_DB = -50.0, -45.0


def names_of(method: str) -> str:
    return dict(METHODS)[method]


def _queries_to(cells: dict, units: list[str], method: str, level: float) -> str:
    """Smallest measured budget at which every unit reaches ``level`` (clean NMSE)."""
    budgets = sorted({int(k.split("/")[2]) for k in cells if k.split("/")[1] == method})
    for b in budgets:
        got = [cells.get(f"{u}/{method}/{b}") for u in units]
        if all(c is not None and num(c["closed_loop_nmse_clean_db"]) <= level for c in got):
            return f"{b:,}"
    return f">{budgets[-1]:,}" if budgets else "-"


def section_calibration(data: dict) -> list[str]:
    """(h) Calibrating new units of one design from a golden unit's run."""
    out = ["## h. Calibrating new units from a golden unit", ""]
    if not data or not data.get("cells"):
        return out + missing("calibrate_units", "python benchmarks/calibrate_units.py")
    cells = data["cells"]
    units = sorted({k.split("/")[0] for k in cells}, key=lambda u: int(u[4:]))
    cols = sorted(
        {(m, int(k.split("/")[2])) for k in cells for m, _ in METHODS if k.split("/")[1] == m},
        key=lambda mb: ([m for m, _ in METHODS].index(mb[0]), mb[1]),
    )
    rows = []
    for m, b in cols:
        row = [names_of(m), f"{b:,}"]
        for u in units:
            c = cells.get(f"{u}/{m}/{b}")
            row.append("-" if c is None else db(c["closed_loop_nmse_clean_db"]))
        rows.append(row)
    names = dict(METHODS)
    parent = data.get("parent", {})
    out += [
        f"Units of `sim:iqpa` (noise {data['noise']}; unit K with its own seeded spread of gain, AM/PM,",
        f"I/Q imbalance and offsets). Unit 0 was trained once with `{parent.get('strategy', 'auto')}` and",
        f"{parent.get('queries', 10000):,} queries. Each cell: closed-loop NMSE in dB against the noise-free",
        "unit, on 2,000 held-out reachable targets, for each method and number of training",
        f"queries on the new unit. Command: `{data['command']}`.",
        "",
        *table(["method", "queries", *[u.replace("unit", "unit ") for u in units]], rows),
        "",
        "Training queries on the new unit for every unit above to reach the level (clean NMSE):",
        "",
        *table(
            ["method", f"{TARGET_DB:.0f} dB", f"{GOAL_DB:.0f} dB"],
            [
                [names[m], _queries_to(cells, units, m, TARGET_DB), _queries_to(cells, units, m, GOAL_DB)]
                for m in ("ila", "auto", "calibrate")
            ],
        ),
        "",
    ]
    at200 = [cells.get(f"{u}/calibrate/200") for u in units]
    if all(c is not None for c in at200):
        worst = max(num(c["closed_loop_nmse_clean_db"]) for c in at200)
        out += [
            f"Acceptance (every unit within {TARGET_DB:.0f} dB with 200 queries from `--init-from`, goal "
            f"{GOAL_DB:.0f} dB): {verdict(worst <= TARGET_DB)}; worst unit {worst:.1f} dB"
            + (" (goal met)." if worst <= GOAL_DB else "."),
            "",
        ]
    stamped = [*cells.values(), *([parent] if parent else [])]
    return [*out, provenance(data, stamped, table="calibrate_units"), ""]
