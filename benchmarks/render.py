"""Render docs/BENCHMARKS.md from benchmarks/results/*.json, and nothing else.

Every figure in the page comes from a results file written by a benchmark
script, with the machine and date that file records; a table whose results
are missing says so instead of showing a number. Acceptance criteria are
evaluated on the measured data here, so the verdicts can never drift from
the figures beside them.

    python benchmarks/render.py        # or: python benchmarks/run_all.py --render-only
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, load

from hwloop.simulators.catalog import SIMULATORS

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
ORDER = ("ila", "iila", "surrogate", "auto", "spsa")  # strategies, simplest first
BUDGETS = (1000, 3000, 10000)
FINAL = 10000
TARGET_DB = -40.0
ILA_DEFEATING = ("saleh_folded", "lowsnr")
FLOOR_GAP_DB = 6.0  # section a: ILA within this of the noise floor
AUTO_WIN_DB = 6.0  # section b: auto beats ila by at least this on ILA-defeating simulators
AUTO_LOSS_DB = 1.0  # section b: auto at most this worse than ila on one-to-one simulators
OVERHEAD_RATIO = 1.25  # section d


def db(v: float | None) -> str:
    """A dB figure as printed everywhere (None means an exact answer, -inf dB)."""
    return "exact" if v is None else f"{v:.1f}"


def num(v: float | None) -> float:
    return float("-inf") if v is None else float(v)


def verdict(ok: bool) -> str:
    return "**holds**" if ok else "**fails**"


def provenance(data: dict, dates: Iterable[str] = ()) -> str:
    """The machine and date(s) a results file records, for a table's caption."""
    found = sorted({d for d in dates if d} | ({data["date"]} if data.get("date") else set()))
    when = found[0] if len(found) == 1 else f"{found[0]} to {found[-1]}" if found else "unknown date"
    return f"Machine: {data.get('machine', 'unknown')}; measured {when}."


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


def section_ila(data: dict) -> list[str]:
    """(a) ILA on every one-to-one memoryless simulator, against its noise floor."""
    out = ["## a. ILA on the one-to-one simulators", ""]
    cells = data.get("cells", {})
    sims = [s for s, spec in SIMULATORS.items() if spec.one_to_one]
    rows, dates, fails = [], [], []
    for sim in sims:
        c = cell(cells, sim, "ila", FINAL)
        if c is None:
            rows.append([f"`sim:{sim}`", "not measured yet", "", "", "", "", ""])
            continue
        dates.append(c.get("date", ""))
        gap = num(c["closed_loop_nmse_db"]) - num(c["noise_floor_db"])
        ok = gap <= FLOOR_GAP_DB
        if not ok:
            fails.append(f"`{sim}` ({gap:.1f} dB)")
        rows.append(
            [
                f"`sim:{sim}`",
                f"{c['queries_used']:,} + {c['eval_queries']:,}",
                db(c["closed_loop_nmse_db"]),
                db(c["noise_floor_db"]),
                f"{gap:.1f}",
                "yes" if ok else "**no**",
                f"{c['wall_s']:.1f}",
            ]
        )
    out += [
        "Every catalogue simulator declared one-to-one (`one_to_one=True` in",
        "`simulators/catalog.py`), default parameters, trained by plain ILA with",
        f"{FINAL:,} training queries, seed 0, default options (8,000 fit steps). Command:",
        f"`python benchmarks/strategies.py --budgets {FINAL}` (strategy `ila`). The NMSE is",
        "`closed_loop_nmse_db` as measured on the noisy device (2,000 held-out reachable",
        "targets); the noise floor is the same ratio for the device's own noise (256 inputs",
        "asked twice); gap = NMSE - floor. Queries are training + evaluation. Wall time is",
        "the whole `hwloop.train` call (fit, evaluation, saving) on a shared machine.",
        "",
        *table(
            [
                "device",
                "queries (train + eval)",
                "closed-loop NMSE (dB)",
                "noise floor (dB)",
                "gap (dB)",
                f"within {FLOOR_GAP_DB:.0f} dB",
                "wall (s)",
            ],
            rows,
        ),
        "",
        provenance(data, dates),
        "",
    ]
    if len(fails) == 0 and all(cell(cells, s, "ila", FINAL) for s in sims):
        out += [
            f"Acceptance (within {FLOOR_GAP_DB:.0f} dB of the noise floor on every one): {verdict(True)}.",
            "",
        ]
    elif fails:
        out += [
            f"Acceptance (within {FLOOR_GAP_DB:.0f} dB of the noise floor): "
            f"{verdict(False)} on {', '.join(fails)}.",
            "",
        ]
    else:
        out += ["Acceptance: not decided, some simulators are not measured yet.", ""]
    return out


def to_target(cells: dict, sim: str, strategy: str) -> str:
    """Smallest measured budget whose clean NMSE reaches TARGET_DB; '>B' if none of them does."""
    measured = [b for b in BUDGETS if cell(cells, sim, strategy, b) is not None]
    if not measured:
        return "-"
    reached = [
        b for b in measured if num(cell(cells, sim, strategy, b)["closed_loop_nmse_clean_db"]) <= TARGET_DB
    ]
    if not reached:
        return f">{max(measured):,}"
    best = min(reached)
    unmeasured_below = [b for b in BUDGETS if b < best and b not in measured]
    return f"{best:,}" + (" †" if unmeasured_below else "")


def section_strategies(data: dict) -> list[str]:
    """(b) Every strategy on every memoryless simulator, and the auto-vs-ila acceptance checks."""
    out = ["## b. Strategies x simulators", ""]
    cells = data.get("cells", {})
    sims = list(SIMULATORS)
    strategies = [s for s in ORDER if any(k.split("/")[1] == s for k in cells)]
    dates = [c.get("date", "") for c in cells.values()]
    budgets_done = sorted({int(k.split("/")[2]) for k in cells})
    out += [
        "Every simulator in `SIMULATORS` (`simulators/catalog.py`, all memoryless), default",
        "parameters, every strategy, seed 0, default options; one `hwloop.train` per cell.",
        "Command: `python benchmarks/strategies.py --budgets 10000,3000,1000`. Each cell of",
        "the first table is the final closed-loop NMSE in dB at",
        f"{FINAL:,} training queries, `measured / clean`: measured on the noisy device",
        "(`closed_loop_nmse_db`), and scored against the noise-free device",
        "(`closed_loop_nmse_clean_db`, same targets, no queries spent).",
        "`saleh_folded` (not one-to-one) and `lowsnr` (output noise 0.05) are the two",
        "simulators that defeat ILA; `quantised` is not one-to-one either (an ADC's steps).",
        "",
    ]
    rows = []
    for sim in sims:
        row = [f"`{sim}`" + (" (ILA-defeating)" if sim in ILA_DEFEATING else "")]
        for st in strategies:
            c = cell(cells, sim, st, FINAL)
            row.append(
                "-" if c is None else f"{db(c['closed_loop_nmse_db'])} / {db(c['closed_loop_nmse_clean_db'])}"
            )
        c = cell(cells, sim, "ila", FINAL)
        row.append("-" if c is None else db(c["noise_floor_db"]))
        rows.append(row)
    out += table(["simulator", *strategies, "noise floor"], rows)
    exact = [row[0] for row in rows if any("exact" in r for r in row[1:])]
    if exact:
        out += [
            "",
            f"`exact`: zero error against the noise-free device ({', '.join(exact)}). A quantised",
            "device's noise-free answer is itself quantised, so an input on the right ADC step",
            "hits the target code exactly.",
        ]
    out += ["", provenance(data, dates), ""]

    out += [
        f"### Queries needed to reach {TARGET_DB:.0f} dB (clean NMSE)",
        "",
        f"The smallest training budget, among those measured ({', '.join(f'{b:,}' for b in budgets_done)}),",
        f"at which the clean closed-loop NMSE is at or below {TARGET_DB:.0f} dB; `>N` when none of",
        "the measured budgets reaches it. Same runs as above (one run per budget, not one",
        "run's learning curve).",
        "",
    ]
    rows = [[f"`{sim}`", *(to_target(cells, sim, st) for st in strategies)] for sim in sims]
    out += table(["simulator", *strategies], rows)
    if any("†" in r for row in rows for r in row):
        out += ["", "† a smaller budget has not been measured yet, so fewer queries may suffice."]
    out += ["", provenance(data, dates), ""]
    for budget in sorted({int(k.split("/")[2]) for k in cells}, reverse=True):
        out += acceptance_auto(cells, budget)
    return out


def acceptance_auto(cells: dict, budget: int) -> list[str]:
    """auto vs ila at one budget: >= 6 dB better where ILA is defeated, <= 1 dB worse on one-to-one sims."""
    out = [f"### auto vs ila at {budget:,} queries", ""]
    rows, win_ok, notes = [], True, []
    for sim in ILA_DEFEATING:
        a, i = cell(cells, sim, "auto", budget), cell(cells, sim, "ila", budget)
        if a is None or i is None:
            continue
        d_clean = num(i["closed_loop_nmse_clean_db"]) - num(a["closed_loop_nmse_clean_db"])
        d_meas = num(i["closed_loop_nmse_db"]) - num(a["closed_loop_nmse_db"])
        win_ok &= d_clean >= AUTO_WIN_DB
        room = num(i["closed_loop_nmse_db"]) - num(i["noise_floor_db"])
        if d_meas < AUTO_WIN_DB and room < AUTO_WIN_DB:
            notes.append(
                f"On the measured NMSE `{sim}` cannot show a {AUTO_WIN_DB:.0f} dB win: ila is already "
                f"within {room:.1f} dB of the measured noise floor ({db(i['noise_floor_db'])} dB); "
                f"measured advantage {d_meas:+.1f} dB."
            )
        rows.append(
            [
                f"`{sim}`",
                db(i["closed_loop_nmse_clean_db"]),
                db(a["closed_loop_nmse_clean_db"]),
                f"{d_clean:+.1f}",
                db(i["closed_loop_nmse_db"]),
                db(a["closed_loop_nmse_db"]),
                f"{d_meas:+.1f}",
                db(i["noise_floor_db"]),
            ]
        )
    out += [
        "ILA-defeating simulators; advantage = ila NMSE - auto NMSE in dB (positive: auto is better).",
        "",
        *table(
            [
                "simulator",
                "ila clean",
                "auto clean",
                "advantage clean",
                "ila measured",
                "auto measured",
                "advantage measured",
                "noise floor",
            ],
            rows,
        ),
        "",
    ]
    if len(rows) == len(ILA_DEFEATING):
        out.append(
            f"Acceptance (auto beats ila by >= {AUTO_WIN_DB:.0f} dB on both, clean NMSE): {verdict(win_ok)}."
        )
        out += notes
    else:
        out.append("Acceptance (ILA-defeating): not decided yet, cells missing.")
    out.append("")

    rows, worst = [], {"measured": None, "clean": None}
    for sim, spec in SIMULATORS.items():
        a, i = cell(cells, sim, "auto", budget), cell(cells, sim, "ila", budget)
        if not spec.one_to_one or a is None or i is None:
            continue
        loss = {
            "measured": num(a["closed_loop_nmse_db"]) - num(i["closed_loop_nmse_db"]),
            "clean": num(a["closed_loop_nmse_clean_db"]) - num(i["closed_loop_nmse_clean_db"]),
        }
        for k, v in loss.items():
            if worst[k] is None or v > worst[k][1]:
                worst[k] = (sim, v)
        rows.append([f"`{sim}`", f"{loss['measured']:+.2f}", f"{loss['clean']:+.2f}"])
    n_one = sum(1 for s in SIMULATORS.values() if s.one_to_one)
    out += [
        "One-to-one simulators; auto NMSE - ila NMSE in dB (positive: auto is worse).",
        "",
        *table(["simulator", "auto - ila, measured", "auto - ila, clean"], rows),
        "",
    ]
    for k in ("measured", "clean") if rows else ():
        sim, v = worst[k]
        over = [r[0] for r in rows if float(r[1 if k == "measured" else 2]) > AUTO_LOSS_DB]
        head = f"Acceptance (auto never more than {AUTO_LOSS_DB:.0f} dB worse than ila, {k} NMSE): "
        if len(rows) < n_one and not over:
            out.append(head + f"not decided yet, {len(rows)} of {n_one} simulators measured.")
            continue
        partial = f" ({len(rows)} of {n_one} simulators measured so far)" if len(rows) < n_one else ""
        out.append(
            head
            + f"{verdict(not over)}{partial}; worst `{sim}`, auto {v:+.2f} dB relative to ila"
            + (f"; over the limit: {', '.join(over)}." if over else ".")
        )
    if not rows:
        out.append("Acceptance (one-to-one): not decided yet, cells missing.")
    out.append("")
    return out


def section_memory(data: dict) -> list[str]:
    """(c) Tapped-delay inverse vs memoryless inverse on the stateful simulators."""
    out = ["## c. Devices with memory", ""]
    cells = data.get("cells", {})
    if not cells:
        return out + missing("memory", "python benchmarks/memory.py")
    out += [
        "The stateful simulators (`simulators/memory.py`) with measurement noise",
        f'{data.get("noise", 1e-3):g}, trained by `hwloop.train("sim:NAME?noise=...", strategy="ila",',
        "queries=20000, seed=0, options=TrainOptions(memory_depth=D))`: `hwloop.run` sends",
        "a stateful device to sequence ILA (`hwloop.memory`, 16,000 fit steps), whose",
        "inverse sees the current and D past targets. D = 0 is the memoryless inverse.",
        "Closed-loop NMSE on a 2,000-sample reachable target sequence after a reset,",
        "measured on the noisy device and against the noise-free device (clean); the",
        "noise floor from the same sequence sent twice. Command:",
        f"`{data.get('command', 'python benchmarks/memory.py')}`.",
        "",
    ]
    rows, dates = [], []
    for key, c in cells.items():
        sim, depth, queries = key.split("/")
        dates.append(c.get("date", ""))
        rows.append(
            [
                f"`sim:{sim}`",
                depth,
                f"{int(queries):,} + {c['eval_queries']:,}",
                db(c["closed_loop_nmse_db"]),
                db(c["closed_loop_nmse_clean_db"]),
                db(c["noise_floor_db"]),
                f"{num(c['closed_loop_nmse_db']) - num(c['noise_floor_db']):.1f}",
                f"{c['wall_s']:.1f}",
            ]
        )
    out += table(
        [
            "device",
            "memory depth",
            "queries (train + eval)",
            "closed-loop NMSE (dB)",
            "clean NMSE (dB)",
            "noise floor (dB)",
            "gap (dB)",
            "wall (s)",
        ],
        rows,
    )
    out += ["", provenance(data, dates), ""]
    for sim in sorted({k.split("/")[0] for k in cells}):
        pair = {k.split("/")[1]: c for k, c in cells.items() if k.startswith(sim + "/")}
        if "5" in pair and "0" in pair:
            d = num(pair["0"]["closed_loop_nmse_db"]) - num(pair["5"]["closed_loop_nmse_db"])
            out.append(f"- `sim:{sim}`: the depth-5 inverse is {d:.1f} dB better than the memoryless one.")
    out.append("")
    return out


def section_overhead(data: dict) -> list[str]:
    """(d) What the harness costs over plain Keras doing the same fit."""
    out = ["## d. Harness overhead", ""]
    if not data:
        return out + missing("overhead", "python benchmarks/overhead.py")
    runs = data["runs"]
    out += [
        f'A whole `hwloop train --device "{data["device"]}" --strategy ila --out DIR --json`'
        f" (TensorFlow import, {data['pairs']:,} device",
        f"queries logged to SQLite, {data['steps']:,} Adam steps of batch {data['batch']}, closed-loop",
        "evaluation, saving) against plain Keras on the same pairs (taken from the first",
        "hwloop run's query log): the same `hwloop.models.build_regressor` model,",
        '`model.compile(optimizer=Adam(CosineDecay(2e-2, 8000, alpha=1e-3)), loss="mse")`',
        f"and `model.fit` on a shuffled, repeated `tf.data` pipeline, {data['steps']:,} steps in all",
        "(`steps_per_epoch` 100 x 80 epochs). Each side is a fresh subprocess timed from",
        f"spawn to exit; the two alternate, {data['repeats']} times each; the figure is the median.",
        f"Command: `{data['command']}`.",
        "",
    ]
    hw = [r for r in runs if r["side"] == "hwloop"]
    pk = [r for r in runs if r["side"] == "plain_keras"]
    bare = [r for r in runs if r["side"] == "bare_fit"]

    def inside(rs: list[dict]) -> str:
        return (
            "import "
            + ", ".join(f"{r['import_s']:.1f}" for r in rs)
            + " s; fit "
            + ", ".join(f"{r['fit_s']:.1f}" for r in rs)
            + " s"
        )

    rows = [
        [
            "`hwloop train` (CLI)",
            f"{data['hwloop_median_s']:.1f}",
            ", ".join(f"{r['wall_s']:.1f}" for r in hw),
            "`train()` " + ", ".join(f"{r['train_wall_s']:.1f}" for r in hw) + " s",
        ],
        [
            "plain Keras `model.fit`",
            f"{data['plain_keras_median_s']:.1f}",
            ", ".join(f"{r['wall_s']:.1f}" for r in pk),
            inside(pk) + f" (jit_compile={pk[0]['jit_compile']})",
        ],
    ]
    if bare:
        rows.append(
            [
                "reference: hwloop's fit loop alone",
                f"{data['bare_fit_median_s']:.1f}",
                ", ".join(f"{r['wall_s']:.1f}" for r in bare),
                inside(bare),
            ]
        )
    out += table(["side", "median wall (s)", "each run (s)", "inside the process"], rows, "lrrl")
    ratio = data["ratio"]
    out += [
        "",
        f"Ratio hwloop / plain Keras = **{ratio:.2f}**. Acceptance (ratio <= {OVERHEAD_RATIO}): "
        f"{verdict(ratio <= OVERHEAD_RATIO)}.",
    ]
    if ratio < 1:
        per_step = statistics.median(r["fit_s"] for r in pk) / data["steps"] * 1e3
        line = (
            f"hwloop is the faster side: Keras's `model.fit` took {per_step:.1f} ms per step (median fit time"
        )
        if bare:
            own = statistics.median(r["fit_s"] for r in bare) / data["steps"] * 1e3
            line += (
                f" / 8,000), hwloop's own loop (`fit_regression`, one `tf.function` per step) {own:.1f} ms"
            )
        out.append(line + ", each including its tracing.")
    if bare:
        extra = data["hwloop_median_s"] - data["bare_fit_median_s"]
        line = (
            f"Reference, hwloop / its own fit loop alone (medians): {data['ratio_vs_bare_fit']:.2f}x "
            f"({extra:+.1f} s)."
        )
        if extra < 0:
            line += (
                " A whole run cannot cost less than its fit: the spread of the runs above is"
                " larger than the harness's cost, so this reference is load noise on this machine."
            )
        out.append(line)
    out += ["", provenance(data), ""]
    if data.get("profile"):
        out += [
            "Where `hwloop train`'s time goes: one more CLI run under cProfile"
            f" (`python benchmarks/overhead.py --profile-only`, {data.get('profile_date', data['date'])}),"
            " cumulative seconds; profiling inflates Python-heavy parts a little.",
            "",
        ]
        out += table(
            ["part", "s"],
            [[p["part"].replace("  ", "&nbsp;&nbsp;"), f"{p['s']:.2f}"] for p in data["profile"]],
            "lr",
        )
        out.append("")
    return out


def section_serial(data: dict) -> list[str]:
    """(e) Serial link efficiency, stop-and-wait against windowed."""
    out = ["## e. Serial link efficiency", ""]
    if not data:
        return out + missing("serial", "python benchmarks/serial_throughput.py")
    out += [
        f"`hwloop serve` on a pty paced like a UART at {data['baud']} baud 8N1, an instant tanh",
        f"device, {data['rows']:,} rows sent in requests of {data['batch']} rows, window 1",
        "(stop-and-wait) against 2 and 4 requests in flight. Fraction = measured samples/s",
        "over the ceiling, the line rate divided by the busier direction's frame size.",
        f"Command: `{data['command']}`.",
        "",
        *table(
            ["window", "samples/s", f"fraction of line rate ({data['baud']} 8N1)"],
            [
                [str(r["window"]), f"{r['samples_per_s']:.0f}", f"{r['fraction']:.1%}"]
                for r in data["results"]
            ],
        ),
        "",
        provenance(data),
        "",
    ]
    return out


def section_farm(data: dict) -> list[str]:
    """(f) Device farms: wall time against latency-bound units, vs single runs."""
    out = ["## f. Device farms on Ray", ""]
    if not data:
        return out + missing("farm", "python benchmarks/farm.py")
    acc = data["acceptance"]
    out += [
        f"Units `{data['device']}` (K = 0..7), each device call taking a fixed latency; options",
        f"`{' '.join(data['train_options'])}`. Farm = one `hwloop farm` command on the first N",
        "units; single = one `hwloop train` command per unit, summed. Both are whole commands in a",
        "fresh interpreter (imports, Ray start-up included). dNMSE: a farm unit's closed-loop NMSE",
        "minus that of the single run on the same unit.",
        f"Command: `{data['command']}`.",
        "",
        *table(
            [
                "units",
                "farm wall s",
                "sum of single walls s",
                "ratio (per repeat)",
                "slowest unit s",
                "longest training s",
                "max abs dNMSE dB",
            ],
            [
                [
                    str(r["units"]),
                    f"{r['process_wall_s']:.1f}",
                    f"{r['sum_single_process_wall_s']:.1f}",
                    f"{r['ratio']:.2f} ({', '.join(f'{x:.2f}' for x in r['ratios'])})",
                    f"{r['max_unit_wall_s']:.1f}",
                    f"{r['max_unit_train_wall_s']:.1f}",
                    f"{r['max_abs_nmse_delta_db']:.2f}",
                ]
                for r in data["farms"]
            ],
        ),
        "",
        "Wall times are means over the repeats. A unit's time in the farm beyond its training is",
        "its Ray worker starting and importing TensorFlow, CPU work the units share with each other;",
        "Ray's start and stop are paid once per farm.",
        "",
        f"Four units: farm/sum = {acc['four_units_ratio']:.2f} (criterion <= 0.6: "
        f"{verdict(acc['four_units_ratio_ok'])}); every unit within 1.5 dB of its single run: "
        f"{verdict(acc['nmse_within_1_5_db'])} (largest difference {acc['max_abs_nmse_delta_db']:.2f} dB).",
        "",
        provenance(data),
        "",
    ]
    return out


def render() -> str:
    """The whole page, from whatever results exist."""
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/run_all.py` (which runs any benchmark whose results",
        "are missing, then renders this page from `benchmarks/results/*.json`; `--render-only`",
        "just renders). Do not edit by hand. Every figure below was measured; how, where and",
        "when is stated under each table. Wall times come from a shared 2-core VM on which",
        "other jobs ran at the same time, so read them as indicative, not as a speed rating.",
        "",
    ]
    strategies = load("strategies")
    lines += section_ila(strategies)
    lines += (
        section_strategies(strategies)
        if strategies
        else missing("strategies", "python benchmarks/strategies.py")
    )
    lines += section_memory(load("memory"))
    lines += section_overhead(load("overhead"))
    lines += section_serial(load("serial"))
    lines += section_farm(load("farm"))
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    DOC.write_text(render())
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
