"""Sections of docs/BENCHMARKS.md beyond the strategy tables: memory, overhead, serial link."""

from __future__ import annotations

import statistics

from render_common import OVERHEAD_RATIO, db, missing, num, provenance, table, verdict


def section_memory(data: dict) -> list[str]:
    """(c) Tapped-delay inverse vs memoryless inverse on the stateful simulators."""
    out = ["## c. Devices with memory", ""]
    cells = data.get("cells", {})
    if not cells:
        return out + missing("memory", "python benchmarks/memory.py")
    out += [
        "The stateful simulators (`simulators/with_memory.py`) with measurement noise",
        f'{data.get("noise", 1e-3):g}, trained by `hwloop.train("sim:NAME?noise=...", strategy="ila",',
        "queries=20000, seed=0, options=TrainOptions(memory_depth=D))`: `hwloop.run` sends",
        "a stateful device to sequence ILA (`hwloop.strategies.sequence`, 16,000 fit steps), whose",
        "inverse sees the current and D past targets. D = 0 is the memoryless inverse.",
        "Closed-loop NMSE on a 2,000-sample reachable target sequence after a reset,",
        "measured on the noisy device and against the noise-free device (clean); the",
        "noise floor from the same sequence sent twice. Command:",
        f"`{data.get('command', 'python benchmarks/memory.py')}`.",
        "",
    ]
    rows, shown = [], []
    for key, c in cells.items():
        sim, depth, queries = key.split("/")
        shown.append(c)
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
    out += ["", provenance(data, shown, table="memory"), ""]
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
        "hwloop run's query log): the same `hwloop.inverses.models.build_regressor` model,",
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
    """(e) Serial link efficiency, stop-and-wait against windowed, driver alone and through the meter."""
    out = ["## e. Serial link efficiency", ""]
    if not data:
        return out + missing("serial", "python benchmarks/serial_throughput.py")
    metered = all("metered_fraction" in r for r in data["results"])
    out += [
        f"`hwloop serve` on a pty paced like a UART at {data['baud']} baud 8N1, an instant tanh",
        f"device, {data['rows']:,} rows sent in requests of {data['batch']} rows, window 1",
        "(stop-and-wait) against 2 and 4 requests in flight. Fraction = measured rows/s",
        "over the ceiling, the line rate divided by the busier direction's frame size.",
        '"Through the meter" is the path training takes: `MeteredDevice` with a real query log,',
        "committing each chunk's answers to SQLite (WAL, full sync) as they land while the",
        "driver keeps its window full." if metered else "",
        f"Command: `{data['command']}`.",
        "",
        *table(
            [
                "window",
                "driver rows/s",
                "fraction",
                *(["through the meter rows/s", "fraction"] if metered else []),
            ],
            [
                [
                    str(r["window"]),
                    f"{r['samples_per_s']:.0f}",
                    f"{r['fraction']:.1%}",
                    *(
                        [f"{r['metered_samples_per_s']:.0f}", f"{r['metered_fraction']:.1%}"]
                        if metered
                        else []
                    ),
                ]
                for r in data["results"]
            ],
        ),
        "",
        provenance(data),
        "",
    ]
    return out


def section_default_run(data: dict) -> list[str]:
    """The main job's wall time and result, as a user runs it."""
    out = ["## The main job", ""]
    if not data:
        return out + missing("default_run", "python benchmarks/default_run.py")
    rows = [
        [
            str(i + 1),
            f"{r['process_wall_s']:.1f}",
            f"{r['wall_s']:.1f}",
            db(r["closed_loop_nmse_db"]),
            db(r["noise_floor_db"]),
            f"{r['queries_used']:,} + {r['eval_queries']:,}",
        ]
        for i, r in enumerate(data["runs"])
    ]
    out += [
        f"`{data['command']}` in a fresh process each time (imports included), default strategy",
        "`auto`. Process wall = the whole command; run wall = `wall_s` as the run reports it.",
        "",
        *table(
            ["repeat", "process wall (s)", "run wall (s)", "NMSE (dB)", "noise floor (dB)", "queries"], rows
        ),
        "",
        provenance(data),
        "",
    ]
    return out
