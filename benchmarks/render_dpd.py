"""The predistortion section of docs/BENCHMARKS.md, from benchmarks/results/{dpd,dpd_heldout,heldout_pa,
pa_fit,dpd_families}.json: every figure out of sample, at one shared gain, with coefficients and queries."""

from __future__ import annotations

from common import load
from render_common import db, missing, provenance, table
from render_dpd_heldout import _q, section_heldout

SIM_LABEL = {
    "none": "none",
    "textbook": "textbook GMP-ILA",
    "ila": "`ila`",
    "auto": "`auto`",
    "surrogate": "`surrogate`",
}


def section_dpd(data: dict, fit: dict) -> list[str]:
    """(f) Predistortion: the held-out amplifier, then the fitted simulators, all out of sample."""
    out = ["## f. Digital predistortion on amplifiers fitted to measurements", ""]
    out += section_heldout()
    out += ["### On the simulators fitted to DPA_200MHz", ""]
    if fit:
        gmp, wh, lin = fit["gmp"], fit["wh"], fit["linear_gain"]
        out += [
            "`sim:pa_gmp` and `sim:pa_wh` are fitted to OpenDPD's DPA_200MHz measurements",
            f"(`{fit['command']}`): on the test split {db(gmp['nmse_test_db'])} dB and "
            f"{db(wh['nmse_test_db'])} dB NMSE ({db(lin['nmse_test_db'])} dB for a linear gain); without",
            f"predistortion ACPR {db(gmp['acpr_test_dbc'])} and {db(wh['acpr_test_dbc'])} dBc, the measured "
            f"amplifier {db(fit['measured_acpr_test_dbc'])} dBc.",
            "",
            provenance(fit),
            "",
        ]
    if not data.get("cells"):
        return out + missing("dpd", "python benchmarks/dpd.py")
    rows = []
    order = [
        "none",
        "textbook/50000",
        "ila/50000",
        "auto/50000",
        "textbook/20000",
        "ila/20000",
        "surrogate/20000",
    ]
    for key, cell in data["cells"].items():
        sim, signal = key.rsplit("/", 1)
        for method, c in sorted(cell.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99):
            name, _, budget = method.partition("/")
            rows.append(
                [
                    f"`sim:{sim}`",
                    signal,
                    SIM_LABEL.get(name, name),
                    f"{int(budget):,}" if budget else "",
                    str(c.get("terms") or ""),
                    _q(c),
                    db(c["acpr_dbc"]),
                    db(c["acpr_clean_dbc"]) if c.get("acpr_clean_dbc") is not None else "",
                    db(c.get("aclr_db")) if c.get("aclr_db") is not None else "",
                    db(c["evm_db"]),
                    db(c["nmse_db"]),
                    f"{c['drive_peak']:.3f}",
                ]
            )
    out += [
        f"Command: `{data['command']}`. Noise {data['noise']}; every method is trained to one target",
        f"gain, {data['gain']:g} (targets = {data['gain']:g} x the training signal), and scored on a signal",
        "it never saw, on the same amplifier model with another noise seed: `ofdm` trains on",
        "`ofdm:n=16000,papr=8,seed=0` and is scored on `ofdm:n=16384,papr=8,seed=1`; `dpa` trains on",
        "DPA_200MHz's train input and is scored on its test input (whose own ACPR, -41.8 dBc, bounds",
        "what any predistorter reaches on it). EVM and NMSE against the targets (gain 1); `none` drives",
        "the bare signal at `auto`'s average drive power and is scored against the least-squares gain",
        "(time-aligned). Queries: training + scoring.",
        "`pa_wh?thermal=0.03` adds a slow thermal gain droop that no GMP represents.",
        "",
        *table(
            [
                "amplifier",
                "signal",
                "predistorter",
                "budget",
                "terms",
                "queries",
                "ACPR (dBc)",
                "ACPR, noise-free (dBc)",
                "ACLR (dB)",
                "EVM (dB)",
                "NMSE (dB)",
                "peak drive",
            ],
            rows,
        ),
        "",
        provenance(data, [c for cell in data["cells"].values() for c in cell.values()], table="dpd"),
        "",
    ]
    sweep = data.get("rounds_sweep")
    if sweep:
        srows = []
        for key, c in sorted(sweep.items()):
            sim, rounds = key.split("/")[:2]
            srows.append(
                [
                    f"`sim:{sim}`",
                    rounds,
                    str(c.get("terms") or ""),
                    str(c.get("details", {}).get("dpd_kept_round", "")),
                    db(c["acpr_dbc"]),
                    db(c["evm_db"]),
                    db(c["nmse_db"]),
                    f"{c['queries_used']:,}",
                ]
            )
        out += [
            "`auto` at 50,000 queries on the `ofdm` signal, its direct learning in 2, 3 or 5 rounds",
            "(default: as many as keep 8,192 samples each), and with the 92-term GMP throughout:",
            "`python benchmarks/dpd.py --sweep --sims pa_gmp,pa_wh`. Kept: the round `auto` kept (0: the",
            "indirect warm start).",
            "",
            *table(
                [
                    "amplifier",
                    "direct rounds",
                    "terms",
                    "kept",
                    "ACPR (dBc)",
                    "EVM (dB)",
                    "NMSE (dB)",
                    "queries",
                ],
                srows,
            ),
            "",
            provenance(data, sweep.values(), table="dpd rounds sweep"),
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
                str(c.get("terms") or ""),
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
        f"(`{data['held_signal']}`) at one gain for all, `--gain {data['gain']:g}`. `gmp` trains on another",
        f"OFDM signal (`--signal {data['train_signal']}`), and so do `tapped` and `gru` (`--inverse",
        "tapped|gru`: sequence ILA on the signal's stretches, three rounds); `tapped (no signal)` trains",
        "on random target sequences, as a run on a device with memory does without `--signal`",
        "(`surrogate`: direct learning through a tapped surrogate). Terms: the GMP's complex",
        "coefficients. Wall: the train command, imports included. Without predistortion (same drive",
        "power): " + "; ".join(f"`{a}` ACPR {db(none[a]['acpr_dbc_no_dpd'])} dBc" for a in amps) + ".",
        "",
        *table(
            [
                "amplifier",
                "inverse",
                "strategy",
                "terms",
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
        provenance(data, data["cells"].values(), table="dpd_families"),
        "",
    ]
    return out


def splice(page: str, section: list[str]) -> str:
    """``page`` with its section f (from its heading to the next ``## ``) replaced by ``section``."""
    start = page.index("## f. Digital predistortion")
    end = page.find("\n## ", start + 1)
    body = "\n".join(section).rstrip("\n") + "\n"
    return page[:start] + body + ("" if end < 0 else page[end:])


def main() -> None:
    """Re-render section f alone into docs/BENCHMARKS.md, refusing if any of its figures are stale.

    render.py writes the whole page and refuses it while any table is stale; this writes only the
    predistortion section, from its own fresh results, so it can be re-measured on its own."""
    from render_common import DOC, STALE

    lines = section_dpd(load("dpd"), load("pa_fit")) + section_dpd_families(load("dpd_families"))
    mine = [s for s in STALE if not s.startswith("python benchmarks/fit_pa.py")]
    if mine:
        raise SystemExit("not writing section f: stale figures:\n  " + "\n  ".join(sorted(set(mine))))
    DOC.write_text(splice(DOC.read_text(), lines))
    print(f"wrote section f of {DOC}")


if __name__ == "__main__":
    main()
