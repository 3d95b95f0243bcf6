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
    for key, c in sorted(data["cells"].items()):
        sim, signal = key.split("/")
        for label, r in (("none", c["no_dpd"]), ("GMP, indirect learning (3 rounds)", c["gmp_ila"])):
            rows.append(
                [
                    f"`sim:{sim}`",
                    signal,
                    label,
                    db(r["acpr_dbc"]),
                    db(r["evm_db"]),
                    db(r["nmse_db"]),
                    "" if label == "none" else f"{c['queries_used']:,} + {c['eval_queries']:,}",
                    "" if label == "none" else f"{c['wall_s']:.1f}",
                ]
            )
    out += [
        f"Command: `{data['command']}`. Noise {data['noise']}, seed {data['seed']}. `dpa`: the predistorter",
        "is fitted on a stretch of the measured train input and scored on the test input (whose own",
        "ACPR, -41.8 dBc, bounds what any predistorter can reach on it); `ofdm`: fitted on one",
        "generated 200 MHz OFDM signal, scored on another. EVM and NMSE against the least-squares",
        "gain. Queries: training + evaluation.",
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
    return out
