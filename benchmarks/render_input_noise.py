"""Section of docs/BENCHMARKS.md: auto against ila where the noise is input-referred."""

from __future__ import annotations

from render_common import AUTO_LOSS_DB, db, missing, provenance, table, verdict


def section_input_noise(data: dict) -> list[str]:
    out = ["## auto against ila on devices with input noise", ""]
    cells = data.get("cells", {})
    if not cells:
        return out + missing("input_noise", "python benchmarks/input_noise.py")
    out += [
        f"One-to-one simulators with noise at their input, {data.get('queries', 0):,} training queries, seed",
        "0, default options; NMSE `measured / clean` (clean: against the noise-free device). `auto`",
        "splits the noise with a quick surrogate (`noise_split`: the input-referred share) and, where it",
        "is mostly input-referred, spends its budget as `ila` does (`auto_path` ila). Target: auto",
        f"at most {AUTO_LOSS_DB} dB worse than ila on both scores. Command: `{data.get('command')}`.",
        "",
    ]
    rows, shown, ok_all = [], [], True
    for key in sorted({k.rsplit("/", 1)[0] for k in cells}):
        ila, auto = cells.get(f"{key}/ila"), cells.get(f"{key}/auto")
        if ila is None or auto is None:
            continue
        shown += [ila, auto]
        worse = max(
            auto["closed_loop_nmse_db"] - ila["closed_loop_nmse_db"],
            auto["closed_loop_nmse_clean_db"] - ila["closed_loop_nmse_clean_db"],
        )
        ok_all &= worse <= AUTO_LOSS_DB
        share = (auto.get("noise_split") or {}).get("input_share")
        rows.append(
            [
                f"`{key}`",
                f"{db(ila['closed_loop_nmse_db'])} / {db(ila['closed_loop_nmse_clean_db'])}",
                f"{db(auto['closed_loop_nmse_db'])} / {db(auto['closed_loop_nmse_clean_db'])}",
                f"{worse:+.2f}",
                str(auto.get("auto_path")),
                "-" if share is None else f"{share:.2f}",
            ]
        )
    out += table(["device", "ila (dB)", "auto (dB)", "auto - ila, worse score", "auto_path", "input share"],
                 rows)  # fmt: skip
    out += ["", f"Acceptance: {verdict(ok_all)}.", "", provenance(data, shown, table="input noise"), ""]
    return out
