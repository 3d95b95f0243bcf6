"""Section of docs/BENCHMARKS.md for DPD through the RF bench (benchmarks/bench_dpd.py)."""

from __future__ import annotations

from render_common import missing, provenance, table, verdict


def section_bench(data: dict) -> list[str]:
    """DPD trained through the fake bench against the same training on its amplifier directly."""
    out = ["## DPD through the RF bench", ""]
    cells = data.get("cells", {})
    if not cells:
        return out + missing("bench_dpd", "python benchmarks/bench_dpd.py")
    out += [
        f"`hwloop.train` with `--signal {data.get('train_signal')}` (defaults, "
        f"{next(iter(cells.values()))['bench']['queries_used']:,} queries) once through `bench:` on the fake",
        "bench (`hwloop serve-bench`: generator and analyser over PyVISA SOCKET, random integer and",
        "fractional delay, path gain and phase, analyser noise, free-running capture start) with the",
        "amplifier behind it, and once on that amplifier directly. Both predistorters are scored on the",
        f"held-out signal `{data.get('held_out_signal')}` through the path they were trained on (ACPR",
        "of the measured output, worse adjacent channel). Target: the bench within 1 dB of direct.",
        "",
    ]
    rows = []
    for pa, c in cells.items():
        d, b = c["direct"], c["bench"]
        rows.append(
            [
                f"`{c.get('pa', pa)}`",
                f"{d['acpr_no_dpd_dbc']:.1f}",
                f"{d['acpr_dbc']:.1f}",
                f"{b['acpr_dbc']:.1f}",
                f"{c['acpr_bench_minus_direct_db']:+.2f}",
                f"{c['generator_max']['peak_dbm']:.2f}",
                verdict(c["acpr_bench_minus_direct_db"] <= 1.0),
            ]
        )
    header = ["amplifier", "no DPD (dBc)", "direct (dBc)", "bench (dBc)", "bench - direct (dB)",
              "peak at generator (dBm)", "within 1 dB"]  # fmt: skip
    out += table(header, rows)
    return [*out, "", f"Command: `{data.get('command')}`. " + provenance(data, table="bench"), ""]
