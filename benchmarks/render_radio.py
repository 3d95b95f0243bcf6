"""Section of docs/BENCHMARKS.md for DPD through the fake radio (benchmarks/radio_dpd.py)."""

from __future__ import annotations

from render_common import missing, provenance, table, verdict


def section_radio(data: dict) -> list[str]:
    """DPD trained through the fake radio against the same training on its amplifier directly."""
    out = ["## DPD through a radio", ""]
    cells = data.get("cells", {})
    if not cells:
        return out + missing("radio_dpd", "python benchmarks/radio_dpd.py")
    first = next(iter(cells.values()))
    out += [
        f"`hwloop.train` (defaults, {first['radio']['queries_used']:,} training queries, `--signal`) once",
        "through `bench:` with a `[radio]` table against the fake radio (`hwloop serve-bench --radio`:",
        "libiio's network protocol, reached by pylibiio and pyadi-iio; random integer and fractional delay",
        "and phase, residual carrier offset, IQ imbalance, DC offset, 12-bit converters, noise,",
        "free-running capture start) with the amplifier behind it, and once on that amplifier directly",
        "with the same physical targets. Each predistorter is fed the held-out test signal at its trained",
        "gain and its drive played into the amplifier directly (noise-free); ACPR is the worse adjacent",
        "channel. `heldout:apa` is benchmarks/heldout_pa.py's neural model of a measured amplifier, opened",
        "as a plugin device. Target: the radio within 1 dB of direct.",
        "",
    ]
    rows = []
    for pa, c in cells.items():
        d, r = c["direct"], c["radio"]
        rows.append(
            [
                f"`{c.get('pa', pa)}`",
                f"{r['acpr_dbc_no_dpd']:.1f}" if r.get("acpr_dbc_no_dpd") is not None else "",
                f"{d['on_amplifier']['acpr_dbc']:.1f}",
                f"{r['on_amplifier']['acpr_dbc']:.1f}",
                f"{c['acpr_radio_minus_direct_db']:+.2f}",
                f"{d['on_amplifier']['evm_db']:.1f} / {r['on_amplifier']['evm_db']:.1f}",
                f"{c['tx_max']['peak_dbfs']:.2f}",
                verdict(c["acpr_radio_minus_direct_db"] <= 1.0),
            ]
        )
    header = ["amplifier", "no DPD, radio (dBc)", "direct (dBc)", "radio (dBc)", "radio - direct (dB)",
              "EVM direct / radio (dB)", "peak at DAC (dBFS)", "within 1 dB"]  # fmt: skip
    out += table(header, rows)
    cal = []
    for pa, c in cells.items():
        k, f = c["calibration"], c["fake_radio"]
        cal.append(
            f"`{c.get('pa', pa)}`: carrier offset {k['cfo_hz']:+.1f} Hz (fake {f['cfo_hz']:+.1f}), image "
            f"rejection {k['image_rejection_db']:.1f} dB (fake {f['image_rejection_db']:.1f}), "
            f"{k['image_rejection_corrected_db']:.1f} dB after correction"
        )
    out += ["", "Calibration against the fake's settings: " + "; ".join(cal) + "."]
    return [*out, "", f"Command: `{data.get('command')}`. " + provenance(data, table="radio"), ""]
