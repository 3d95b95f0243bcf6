"""The export section of docs/BENCHMARKS.md, from benchmarks/results/export.json alone.

The results file says when, where and at which commit each part was measured
(every part and every MLP cell carries its own stamp); the section prints
them under its tables and evaluates the issue's bars on the figures beside
them: loss per family, word width and device kind, on the noisy device and
against its noise-free twin.
"""

from __future__ import annotations

import textwrap

from render_common import db, missing, provenance, table, verdict

GMP16_BAR_DB = 0.2  # GMP at 16 bits: ACPR and EVM within this of float
GMP12_BAR_DB = 0.5  # GMP at 12 bits, on the held-out amplifier
GRU16_BAR_DB = 0.5  # the GRU at 16 bits: ACPR within this of float
MLP8_BAR_DB = 1.0  # MLP, 8-bit weights and activations, noise-free, held-out I/Q devices
TFLITE16X8_BAR_DB = 1.0
ONBOARD_BAR_DB = 3.0  # the on-board closed loop within this of the host's
MLP_COLUMNS = (
    "c16",
    "c12",
    "w8a16",
    "c8",
    "c8+qat",
    "c8/io8",
    "tflite/float16",
    "tflite/int16x8",
    "tflite/int8",
    "tflite/int8+qat",
)
WIDTHS = ("c16", "c12", "c10", "c8")


def _para(*parts: str) -> list[str]:
    """One Markdown paragraph from string pieces, wrapped at 100 columns, and the blank line after it."""
    return [*textwrap.wrap(" ".join(parts), 100), ""]


def _delta(v: float, ref: float) -> str:
    return f"{db(v)} ({v - ref:+.2f})"


def _cells(part: dict) -> dict:
    """The measured cells of a part (its stamp's keys sit beside them)."""
    return {k: v for k, v in part.items() if isinstance(v, dict) and "float" in v}


def _signal_rows(cells: dict) -> tuple[list[list[str]], dict]:
    """Rows (amplifier x export) of ACPR and EVM, noisy and noise-free; worst losses per width."""
    rows, worst = [], {}
    for name, c in cells.items():
        f = c["float"]
        for var in ("float", *[w for w in WIDTHS if w in c]):
            r = c[var]
            row = [f"`{name}`", var]
            for key in ("acpr_dbc", "evm_db"):
                for col in ("noisy", "clean"):
                    ref, v = f[col][key], r[col][key]
                    row.append(db(v) if var == "float" else _delta(v, ref))
                    if var != "float":
                        worst.setdefault((name, var), []).append(v - ref)
            rows.append(row)
    return rows, {k: max(v) for k, v in worst.items()}


def _signal_section(data: dict, part: str, title: list[str]) -> tuple[list[str], dict]:
    cells = _cells(data.get(part) or {})
    if not cells:
        return [], {}
    rows, worst = _signal_rows(cells)
    head = ["amplifier", "export", "ACPR noisy (dBc)", "ACPR noise-free", "EVM noisy (dB)", "EVM noise-free"]
    out = _para(*title)
    out += [*table(head, rows), "", provenance(data, [data[part]], table=f"export/{part}"), ""]
    return out, worst


def _mlp_section(data: dict) -> list[str]:
    cells = {k: v for k, v in (data.get("mlp") or {}).items() if isinstance(v, dict) and "float" in v}
    if not cells:
        return []
    rows = []
    for name, c in cells.items():
        for key, label in (("closed_loop_nmse_db", "noisy"), ("closed_loop_nmse_clean_db", "noise-free")):
            if key not in c["float"]:
                continue
            ref = c["float"][key]
            rows.append(
                [f"`{name}`", c.get("kind", ""), label, db(ref)]
                + [_delta(c[n][key], ref) if n in c and key in c[n] else "" for n in MLP_COLUMNS]
            )
    out = _para(
        "MLP inverses, closed-loop NMSE (dB) on 2,000 reachable targets, on the device (noise 1e-3) and",
        "against its noise-free twin; in brackets the loss against float. `cN`: N-bit weights and",
        "activations with 16-bit words (at 8 bits the activations' words chosen by error feedback onto",
        "the output, docs/deploy.md); `w8a16`: 8-bit weights, 16-bit activations; `c8+qat`: `c8` after",
        "quantisation-aware fine-tuning with 2,000 device queries (memoryless inverses); `c8/io8`: 8-bit",
        "words throughout; TFLite float16, int16x8 (int8 weights, int16 activations) and full int8;",
        "`tflite/int8+qat`: full int8 converted from words fine-tuned with 8 bits throughout (2,000",
        "queries; held-out I/Q amplifiers).",
        "One-output devices trained by `ila` (5,000 queries), the others by `hwloop train`'s defaults",
        "(`auto`, 10,000); `heldout_*` are the held-out I/Q amplifiers of `benchmarks/heldout_iq.py`.",
    )
    head = ["device", "kind", "scored", "float", *MLP_COLUMNS]
    out += [*table(head, rows), ""]
    held = {k: c for k, c in cells.items() if k.startswith("heldout_")}
    key = "closed_loop_nmse_clean_db"

    def loss(c: dict, col: str) -> float:
        return c[col][key] - c["float"][key] if col in c else float("inf")

    best8 = {k: min(loss(c, "c8"), loss(c, "c8+qat")) for k, c in held.items()}
    ok8 = bool(held) and all(v <= MLP8_BAR_DB for v in best8.values())
    ok16x8 = bool(held) and all(loss(c, "tflite/int16x8") <= TFLITE16X8_BAR_DB for c in held.values())
    figures = ", ".join(f"`{k}` {v:+.2f}" for k, v in best8.items())
    out += _para(
        "Acceptance (on the held-out I/Q amplifiers, noise-free: 8-bit weights and activations within",
        f"{MLP8_BAR_DB:g} dB of float, the better of `c8` and `c8+qat`: {figures}): {verdict(ok8)};",
        f"TFLite int16x8 within {TFLITE16X8_BAR_DB:g} dB: {verdict(ok16x8)}.",
    )
    return [*out, provenance(data, list(cells.values()), table="export/mlp"), ""]


def _onboard_section(data: dict) -> list[str]:
    board = data.get("onboard") or {}
    if not board:
        return []
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
    out = _para(
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
    return [*out, provenance(data, [board] if "commit" in board else None, table="export/onboard"), ""]


def _leads(data: dict) -> str:
    """The leading taps of the ``pa_nmp`` predistorter, as measured (``?`` before it was)."""
    cell = (data.get("gmp") or {}).get("pa_nmp") or {}
    return str(cell.get("lookahead", "?"))


def section_export(data: dict) -> list[str]:
    """(export) The loss of each export, per family, word width and device kind, in closed loop."""
    out = ["## Exports: what fixed point, TFLite and the on-board inverse cost", ""]
    if not data:
        return out + missing("export", "python benchmarks/export.py")
    out += _para(
        "Each export is scored by the evaluation `hwloop eval --exported` runs, on the same device, seed",
        "and budget as the float inverse it came from, on the noisy device and against its noise-free",
        "twin; in brackets the difference to float (dB; positive: worse). See docs/deploy.md.",
    )
    gmp, worst = _signal_section(
        data,
        "gmp",
        [
            "GMP predistorters (`ila`) as fixed-point gain tables at 16/12/10/8-bit words, scored on a",
            "held-out signal: `sim:pa_gmp`, `sim:pa_wh` and `pa_nmp` (`sim:pa_wh` with a fractional delay",
            "and a zero outside the unit circle, `frac_delay=0.5&nmp_zero=1.5`: its predistorter has",
            f"{_leads(data)} leading taps, which the C streams with that latency) (24,000 queries on a",
            "200 MHz OFDM signal at gain 2), and the held-out APA model (`benchmarks/heldout_pa.py`,",
            "20,000 queries on its measured train split, scored on the test split):",
        ],
    )
    if gmp:
        ok16 = all(v <= GMP16_BAR_DB for (_, var), v in worst.items() if var == "c16")
        ok12 = all(v <= GMP12_BAR_DB for (n, var), v in worst.items() if var == "c12" and "heldout" in n)
        gmp += _para(
            f"Acceptance (GMP at 16 bits within {GMP16_BAR_DB} dB of float in ACPR and EVM, noisy and",
            f"noise-free, on every amplifier): {verdict(ok16)}; at 12 bits within {GMP12_BAR_DB} dB on the",
            f"held-out amplifier: {verdict(ok12)}.",
        )
    gru, worst_gru = _signal_section(
        data,
        "gru",
        ["The GRU inverse (`--inverse gru`, `ila`, 24,000 queries) of `sim:pa_gmp`, exported as C:"],
    )
    if gru:
        ok = all(v <= GRU16_BAR_DB for (_, var), v in worst_gru.items() if var == "c16")
        gru += _para(f"Acceptance (GRU at 16 bits within {GRU16_BAR_DB} dB of float): {verdict(ok)}.")
    return [*out, *gmp, *gru, *_mlp_section(data), *_onboard_section(data)]
