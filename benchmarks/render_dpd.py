"""The predistortion section of docs/BENCHMARKS.md, from benchmarks/results/{dpd,pa_fit}.json."""

from __future__ import annotations

from render_common import db, missing, provenance, table


def section_dpd(data: dict, fit: dict) -> list[str]:
    """(f) ACPR/EVM/NMSE with and without the GMP predistorter on the fitted PA simulators."""
    out = ["## f. Digital predistortion on amplifiers fitted to measurements", ""]
    if fit:
        gmp, wh, lin = fit["gmp"], fit["wh"], fit["linear_gain"]
        out += [
            "The I/Q amplifier simulators are fitted to OpenDPD's DPA_200MHz measurements",
            f"(`{fit['command']}`). On the measured test split their outputs match the amplifier to "
            f"{db(gmp['nmse_test_db'])} dB (`pa_gmp`) and {db(wh['nmse_test_db'])} dB (`pa_wh`) NMSE, "
            "against "
            f"{db(lin['nmse_test_db'])} dB for a linear gain; without predistortion they give ACPR "
            f"{db(gmp['acpr_test_dbc'])} and {db(wh['acpr_test_dbc'])} dBc, the measured amplifier "
            f"{db(fit['measured_acpr_test_dbc'])} dBc.",
            "",
            provenance(fit),
            "",
        ]
    if not data:
        return out + missing("dpd", "python benchmarks/dpd.py")
    rows = []
    methods = (
        ("none", "no_dpd"),
        ("GMP, indirect learning (`ila`, 3 rounds)", "gmp_ila"),
        ("GMP, direct learning (`auto`, 2 + 9 rounds)", "gmp_direct"),
    )
    for key, c in sorted(data["cells"].items()):
        sim, signal = key.rsplit("/", 1)
        for label, field in methods:
            r = c.get(field)
            if r is None:
                continue
            rows.append(
                [
                    f"`sim:{sim}`",
                    signal,
                    label,
                    db(r["acpr_dbc"]),
                    db(r["evm_db"]),
                    db(r["nmse_db"]),
                    "" if field == "no_dpd" else f"{r['queries_used']:,} + {r['eval_queries']:,}",
                    "" if field == "no_dpd" else f"{r['wall_s']:.1f}",
                ]
            )
    out += [
        f"Command: `{data['command']}`. Noise {data['noise']}, seed {data['seed']}. `dpa`: the predistorter",
        "is fitted on a stretch of the measured train input and scored on the test input (whose own",
        "ACPR, -41.8 dBc, bounds what any predistorter can reach on it); `ofdm`: fitted on one",
        "generated 200 MHz OFDM signal, scored on another. Both predistorters get the same 50,000-query",
        "budget and the gain G of the first, undistorted round (peak output over peak input). EVM and",
        "NMSE against the least-squares gain. Queries: training + evaluation; wall: the fit alone.",
        "`pa_wh?thermal=0.03` adds a 3 % gain droop with a 2,000-sample thermal time constant, memory",
        "neither GMP (predistorter or surrogate) can represent.",
        "",
        *table(
            [
                "amplifier",
                "signal",
                "predistorter",
                "ACPR (dBc)",
                "EVM (dB)",
                "NMSE (dB)",
                "queries",
                "wall (s)",
            ],
            rows,
        ),
        "",
        provenance(data),
        "",
    ]
    sweep = data.get("rounds_sweep")
    if sweep:
        srows = []

        def parts(key: str) -> tuple[str, int, int]:
            sim, rest = key.split("/", 1)
            rounds, _, gmp = rest.partition("/")
            return sim, int(rounds), -92 if gmp else -256  # 256 terms first, then the textbook 92

        for key, c in sorted(sweep.items(), key=lambda kv: parts(kv[0])):
            sim, rounds, terms = parts(key)
            srows.append(
                [
                    f"`sim:{sim}`",
                    str(rounds),
                    f"{c['queries_used'] // rounds:,}",
                    str(c.get("gmp_terms", -terms)),
                    db(c["acpr_dbc"]),
                    db(c["evm_db"]),
                    f"{c['queries_used']:,}",
                ]
            )
        out += [
            "Direct learning's rounds against the length of its stretch, same budget, `ofdm` signal",
            "(`python benchmarks/dpd.py --sweep --sims pa_gmp,pa_wh`): `auto` uses as many rounds as",
            "keep 4,096 samples each, up to 11, and the 256-term GMP when the stretch has 16 samples a",
            "term (the last row of each amplifier: the textbook 92 terms instead).",
            "",
            *table(
                ["amplifier", "rounds", "stretch", "GMP terms", "ACPR (dBc)", "EVM (dB)", "training queries"],
                srows,
            ),
            "",
        ]
    return out


def section_dpd_families(data: dict) -> list[str]:
    """(f2) ACPR/EVM/NMSE per inverse family and strategy, whole commands."""
    out = ["### Per inverse family and strategy", ""]
    if not data:
        return out + missing("dpd_families", "python benchmarks/dpd_families.py")
    order = [
        "gmp/ila",
        "gmp/surrogate",
        "gmp/auto",
        "tapped/ila",
        "gru/ila",
        "tapped (no signal)/ila",
        "tapped (no signal)/surrogate",
    ]

    def rank(key: str) -> tuple[str, int]:
        amp, cell = key.split("/", 1)
        return amp, order.index(cell) if cell in order else len(order)

    rows = []
    for key, c in sorted(data["cells"].items(), key=lambda kv: rank(kv[0])):
        amp, family, strategy = key.rsplit("/", 2)
        rows.append(
            [
                f"`sim:{amp}`",
                family,
                strategy,
                db(c["acpr_dbc"]),
                db(c["evm_db"]),
                db(c["nmse_db"]),
                f"{c['queries_used']:,}",
                f"{c['eval_queries']:,}",
                f"{c['wall_s']:.0f}",
            ]
        )
    amps = sorted({k.rsplit("/", 2)[0] for k in data["cells"]})
    none = {a: next(c for k, c in data["cells"].items() if k.startswith(a + "/")) for a in amps}
    out += [
        f"Command: `{data['command']}`. One `hwloop train` with {data['queries']:,} queries on",
        "`sim:AMP?seed=0`, then `hwloop eval --signal` on `sim:AMP?seed=5` with a held-out OFDM signal",
        f"(`{data['held_signal']}`) at `--gain {data['gain']:g}`. `gmp` trains on another OFDM signal",
        f"(`--signal {data['train_signal']}`), and so do `tapped` and `gru` (`--inverse tapped|gru`:",
        "sequence ILA on the signal's stretches, three rounds); `tapped (no signal)` trains on random",
        "target sequences, as a run on a device with memory does without `--signal` (`surrogate`:",
        "direct learning through a tapped surrogate).",
        "Wall: the train command, imports included. Without predistortion (same drive power): "
        + "; ".join(f"`{a}` ACPR {db(none[a]['acpr_dbc_no_dpd'])} dBc" for a in amps)
        + ".",
        "",
        *table(
            [
                "amplifier",
                "inverse",
                "strategy",
                "ACPR (dBc)",
                "EVM (dB)",
                "NMSE (dB)",
                "training queries",
                "eval queries",
                "wall (s)",
            ],
            rows,
        ),
        "",
        provenance(data, [c.get("date", "") for c in data["cells"].values()]),
        "",
    ]
    return out
