"""The export section of docs/BENCHMARKS.md, from benchmarks/results/export.json alone.

The results file says when, where and at which commit it was measured
(``measured_at``, ``machine``, ``commit``); the section prints them under its
tables and evaluates the issue's bars on the figures beside them.
"""

from __future__ import annotations

import textwrap

from render_common import db, missing, provenance, table, verdict

DPD_BAR_DB = 0.5  # GMP at 16 bits: ACPR and EVM within this of float
INT8_BAR_DB = 3.0  # MLP with 8-bit weights: closed-loop NMSE within this of float
ONBOARD_BAR_DB = 3.0  # the on-board closed loop within this of the host's
MLP_COLUMNS = ("c16", "c12", "c8", "c8/io8", "tflite/float16", "tflite/int8")


def _para(*parts: str) -> list[str]:
    """One Markdown paragraph from string pieces, wrapped at 100 columns, and the blank line after it."""
    return [*textwrap.wrap(" ".join(parts), 100), ""]


def _delta(v: float, ref: float) -> str:
    return f"{db(v)} ({v - ref:+.2f})"


def section_export(data: dict) -> list[str]:
    """(export) The loss of each export, per family and word width, in closed loop."""
    out = ["## Exports: what fixed point, TFLite and the on-board inverse cost", ""]
    if not data:
        return out + missing("export", "python benchmarks/export.py")
    out += _para(
        "Each export is scored by the evaluation `hwloop eval --exported` runs, on the same device, seed",
        "and budget as the float inverse it came from; in brackets the difference to float (dB; positive:",
        "worse). `cN`: `hwloop export --format c --bits N` (N-bit weights and activations, 16-bit input",
        "and output words); `c8/io8`: 8-bit words throughout (`--io-bits 8`); TFLite: float16, and",
        "full-integer int8 (int8 input and output) calibrated on the run's logged targets.",
        "See docs/deploy.md.",
    )
    gmp = data.get("gmp") or {}
    if gmp:
        rows, ok = [], True
        for pa, c in sorted(gmp.items()):
            f = c["float"]
            for name in ("float", "c16", "c12", "c8"):
                r = c[name]
                rows.append(
                    [f"`sim:{pa}`", name]
                    + [
                        db(r[k]) if name == "float" else _delta(r[k], f[k])
                        for k in ("acpr_dbc", "evm_db", "nmse_db")
                    ]
                )
            ok &= all(c["c16"][k] - f[k] <= DPD_BAR_DB for k in ("acpr_dbc", "evm_db"))
        out += _para(
            "GMP predistorters (`ila`, 24,000 queries on a 200 MHz OFDM signal at gain 2), scored on a",
            "held-out OFDM signal:",
        )
        out += [*table(["amplifier", "export", "ACPR (dBc)", "EVM (dB)", "NMSE (dB)"], rows), ""]
        out += _para(
            f"Acceptance (GMP at 16 bits within {DPD_BAR_DB} dB of float in ACPR and EVM on both PAs):",
            f"{verdict(ok)}.",
        )
    mlp = data.get("mlp") or {}
    if mlp:
        rows, ok = [], True
        for sim, c in mlp.items():
            for key, label in (("closed_loop_nmse_db", "noisy"), ("closed_loop_nmse_clean_db", "noise-free")):
                ref = c["float"][key]
                rows.append(
                    [f"`sim:{sim}`", c["family"], label, db(ref)]
                    + [_delta(c[n][key], ref) if n in c else "" for n in MLP_COLUMNS]
                )
            ok &= c["c8"]["closed_loop_nmse_db"] - c["float"]["closed_loop_nmse_db"] <= INT8_BAR_DB
        out += _para(
            "MLP inverses (`ila`, 5,000 queries; `sim:wh`: the tapped inverse, 10,000), closed-loop NMSE",
            "(dB) on 2,000 reachable targets, measured on the device (noise 1e-3) and against its noise-free",
            "twin:",
        )
        out += [*table(["device", "inverse", "scored", "float", *MLP_COLUMNS], rows), ""]
        out += _para(
            f"Acceptance (8-bit weights and activations within {INT8_BAR_DB:g} dB of float, measured on the",
            f"device): {verdict(ok)}. Noise-free, the 8-bit loss is larger where the float inverse is far",
            "below the noise; 8-bit input and output words (`c8/io8`, TFLite int8) stop near -35 to -40 dB",
            "whatever the inverse: their rounding alone is about -47 dB of a full-scale drive before the",
            "rest adds up.",
        )
    board = data.get("onboard") or {}
    if board:
        host = board["host_float_nmse_db"]
        rows = [["float, on the host", "", db(host), "", "", ""]]
        ok = True
        for name in ("c16", "c12"):
            r = board.get(name)
            if r is None:
                continue
            rows.append(
                [
                    f"`{r['firmware']}` on board",
                    name,
                    _delta(r["onboard_nmse_db"], host),
                    _delta(r["host_export_nmse_db"], host),
                    f"{r['flash_bytes']:,}",
                    f"{r['simavr_ms_per_sample']:.1f}",
                ]
            )
            ok &= r["onboard_nmse_db"] - host <= ONBOARD_BAR_DB
        out += _para(
            "The inverse on the device: ILA (5,000 queries) against the ATmega328P firmware under simavr,",
            "exported and built in (`make INVERSE=...`); closed-loop NMSE on 1,000 noise-free reachable",
            f"targets (without an inverse: {db(board['no_inverse_nmse_db'])} dB). The host columns drive the",
            "plain firmware with the float inverse, or with the export's numpy reference; the board's fixed",
            "noise seed repeats its noise after each boot, so equal words give equal answers.",
        )
        head = ["inverse", "export", "NMSE (dB)", "host, export (dB)", "flash (bytes)", "ms/sample (simavr)"]
        out += [*table(head, rows), ""]
        out += _para(
            f"Acceptance (on board within {ONBOARD_BAR_DB:g} dB of the host's closed loop): {verdict(ok)}."
        )
    return [*out, f"Command: `{data.get('command')}`. " + provenance(data, table="export"), ""]
