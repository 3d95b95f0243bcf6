"""Section of docs/BENCHMARKS.md: auto against ila and iila where the noise is input-referred."""

from __future__ import annotations

from render_common import AUTO_LOSS_DB, db, missing, provenance, table, verdict

from hwloop.strategies.auto import PLAIN_ILA_NOISE_OF_JITTER


def section_input_noise(data: dict) -> list[str]:
    out = ["## auto against ila and iila on devices with input noise", ""]
    cells = data.get("cells", {})
    if not cells:
        return out + missing("input_noise", "python benchmarks/input_noise.py")
    out += [
        f"One-to-one simulators with noise at their input, {data.get('queries', 0):,} training queries, seed",
        "0, default options; NMSE `measured / clean` (clean: against the noise-free device). `auto`",
        "splits the noise with a quick surrogate (`noise_split`: the input-referred share) and, where it",
        "is mostly input-referred on a device it measures one-to-one, spends its budget as `ila` does",
        f"where the noise referred to its input is at least {PLAIN_ILA_NOISE_OF_JITTER} of iterative ILA's",
        "jitter (`noise_of_jitter`; `auto_path` ila), as",
        f"`iila` does below. Target: auto at most {AUTO_LOSS_DB} dB worse than the better of ila and",
        f"iila on both scores. Command: `{data.get('command')}`.",
        "",
    ]
    rows, shown, ok_all = [], [], True
    for key in sorted({k.rsplit("/", 1)[0] for k in cells}):
        ila, iila, auto = (cells.get(f"{key}/{s}") for s in ("ila", "iila", "auto"))
        if ila is None or iila is None or auto is None:
            continue
        shown += [ila, iila, auto]
        worse = max(
            auto[k] - min(ila[k], iila[k]) for k in ("closed_loop_nmse_db", "closed_loop_nmse_clean_db")
        )
        ok_all &= worse <= AUTO_LOSS_DB
        share = (auto.get("noise_split") or {}).get("input_share")
        rows.append(
            [
                f"`{key}`",
                *(
                    f"{db(c['closed_loop_nmse_db'])} / {db(c['closed_loop_nmse_clean_db'])}"
                    for c in (ila, iila, auto)
                ),
                f"{worse:+.2f}",
                str(auto.get("auto_path")),
                "-" if share is None else f"{share:.2f}",
                "-" if auto.get("noise_of_jitter") is None else f"{auto['noise_of_jitter']:.2f}",
            ]
        )
    head = [
        "device",
        "ila (dB)",
        "iila (dB)",
        "auto (dB)",
        "auto - better, worse score",
        "auto_path",
        "input share",
        "noise / jitter",
    ]
    out += table(head, rows)
    out += ["", f"Acceptance: {verdict(ok_all)}.", "", provenance(data, shown, table="input noise"), ""]
    return out
