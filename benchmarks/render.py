"""Render docs/BENCHMARKS.md from benchmarks/results/*.json, and nothing else.

Every figure in the page comes from a results file written by a benchmark
script, with the machine and date that file records; a table whose results
are missing says so instead of showing a number. Acceptance criteria are
evaluated on the measured data here, so the verdicts can never drift from
the figures beside them.

    python benchmarks/render.py        # or: python benchmarks/run_all.py --render-only
    python benchmarks/render.py --section matrix   # that section alone, the rest as it stands
    python benchmarks/render.py --section export   # (matrix, dpd_budgets, export, input_noise, ila,
                                                   # strategies)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load
from render_bench import section_bench
from render_calibration import section_calibration
from render_common import (
    AUTO_LOSS_DB,
    AUTO_WIN_DB,
    BUDGETS,
    DOC,
    FINAL,
    FLOOR_GAP_DB,
    ILA_DEFEATING,
    ORDER,
    STALE,
    TARGET_DB,
    cell,
    db,
    missing,
    num,
    provenance,
    table,
    verdict,
)
from render_dpd import section_dpd, section_dpd_families
from render_dpd_budgets import HEADING as DPD_BUDGETS_HEADING
from render_dpd_budgets import section_dpd_budgets
from render_drift import section_drift
from render_export import section_export
from render_farm import section_farm
from render_input_noise import section_input_noise
from render_matrix import section_matrix
from render_radio import section_radio
from render_sections import section_default_run, section_memory, section_overhead, section_serial

from hwloop.simulators.catalog import SIMULATORS


def section_ila(data: dict) -> list[str]:
    """(a) ILA on every one-to-one memoryless simulator, against its noise floor."""
    out = ["## a. ILA on the one-to-one simulators", ""]
    cells = data.get("cells", {})
    sims = [s for s, spec in SIMULATORS.items() if spec.one_to_one]
    rows, shown, fails = [], [], []
    for sim in sims:
        c = cell(cells, sim, "ila", FINAL)
        if c is None:
            rows.append([f"`sim:{sim}`", "not measured yet", "", "", "", "", ""])
            continue
        shown.append(c)
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
        provenance(data, shown, table="a. ILA"),
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
    shown = list(cells.values())
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
    out += ["", provenance(data, shown, table="b. strategies"), ""]

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
    out += ["", provenance(data, shown, table="b. strategies"), ""]
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
        head = f"Acceptance (auto never more than {AUTO_LOSS_DB:g} dB worse than ila, {k} NMSE): "
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
    lines += section_default_run(load("default_run"))
    strategies = load("strategies")
    lines += section_ila(strategies)
    lines += (
        section_strategies(strategies)
        if strategies
        else missing("strategies", "python benchmarks/strategies.py")
    )
    lines += section_input_noise(load("input_noise"))
    lines += section_matrix(load("matrix"))
    lines += section_dpd_budgets(load("dpd_budgets"), load("matrix"))
    lines += section_memory(load("memory"))
    lines += section_overhead(load("overhead"))
    lines += section_serial(load("serial"))
    lines += section_dpd(load("dpd"), load("pa_fit"))
    lines += section_dpd_families(load("dpd_families"))
    lines += section_farm(load("farm"))
    lines += section_calibration(load("calibrate_units"))
    lines += section_export(load("export"))
    lines += section_bench(load("bench_dpd"))
    lines += section_drift(load("drift"))
    lines += section_radio(load("radio_dpd"))
    return "\n".join(lines).rstrip() + "\n"


SECTIONS = {  # one section re-rendered alone: (its renderer, the heading of the section after it)
    "matrix": (lambda: section_matrix(load("matrix")), DPD_BUDGETS_HEADING),
    "dpd_budgets": (
        lambda: section_dpd_budgets(load("dpd_budgets"), load("matrix")),
        "## c. Devices with memory",
    ),
    "export": (lambda: section_export(load("export")), "## DPD through the RF bench"),
    "input_noise": (lambda: section_input_noise(load("input_noise")), "## Robustness matrix"),
    "ila": (lambda: section_ila(load("strategies")), "## b. Strategies x simulators"),
    "strategies": (
        lambda: section_strategies(load("strategies")),
        "## auto against ila and iila on devices with input noise",
    ),
}


def splice(page: str, name: str) -> str:
    """The page with one section rendered anew, put where `render` puts it."""
    make, after = SECTIONS[name]
    STALE.clear()
    text = "\n".join(make()).rstrip() + "\n\n"
    if STALE:
        raise SystemExit(f"not writing the {name} section: its figures are stale:\n  " + "\n  ".join(STALE))
    head = text.split("\n", 1)[0]
    if head + "\n" in page:
        start = page.index(head + "\n")
        end = page.find("\n## ", start + len(head))
        return page[:start] + text + (page[end + 1 :] if end >= 0 else "")
    at = page.index(after + "\n")
    return page[:at] + text + page[at:]


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--section" and sys.argv[2] in SECTIONS:
        DOC.write_text(splice(DOC.read_text(), sys.argv[2]))  # the other sections as they stand
        print(f"wrote the {sys.argv[2]} section of {DOC}")
        return
    page = render()
    if STALE:
        sys.exit(
            f"not writing {DOC.name}: {len(set(STALE))} table(s) show figures of code changed since they "
            "were measured (re-measure: python benchmarks/run_all.py):\n  " + "\n  ".join(sorted(set(STALE)))
        )
    DOC.write_text(page)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
