"""The device-farm section of docs/BENCHMARKS.md, from benchmarks/results/farm.json."""

from __future__ import annotations

from render_common import missing, provenance, table, verdict


def section_farm(data: dict) -> list[str]:
    """(g) Device farms: wall time against latency-bound units, vs single runs."""
    out = ["## g. Device farms on Ray", ""]
    if not data:
        return out + missing("farm", "python benchmarks/farm.py")
    acc = data["acceptance"]
    out += [
        f"Units `{data['device']}` (K = 0..7), each device call taking a fixed latency; options",
        f"`{' '.join(data['train_options'])}`. Farm = one `hwloop farm` command on the first N",
        "units; single = one `hwloop train` command per unit, summed. Both are whole commands in a",
        "fresh interpreter (imports, Ray start-up included). dNMSE: a farm unit's closed-loop NMSE",
        "minus that of the single run on the same unit.",
        f"Command: `{data['command']}`.",
        "",
        *table(
            [
                "units",
                "farm wall s",
                "sum of single walls s",
                "ratio (per repeat)",
                "slowest unit s",
                "longest training s",
                "max abs dNMSE dB",
            ],
            [
                [
                    str(r["units"]),
                    f"{r['process_wall_s']:.1f}",
                    f"{r['sum_single_process_wall_s']:.1f}",
                    f"{r['ratio']:.2f} ({', '.join(f'{x:.2f}' for x in r['ratios'])})",
                    f"{r['max_unit_wall_s']:.1f}",
                    f"{r['max_unit_train_wall_s']:.1f}",
                    f"{r['max_abs_nmse_delta_db']:.2f}",
                ]
                for r in data["farms"]
            ],
        ),
        "",
        "Wall times are means over the repeats. A unit's time in the farm beyond its training is",
        "its Ray worker starting and importing TensorFlow, CPU work the units share with each other;",
        "Ray's start and stop are paid once per farm.",
        "",
        f"Four units: farm/sum = {acc['four_units_ratio']:.2f} (criterion <= 0.6: "
        f"{verdict(acc['four_units_ratio_ok'])}); every unit within 1.5 dB of its single run: "
        f"{verdict(acc['nmse_within_1_5_db'])} (largest difference {acc['max_abs_nmse_delta_db']:.2f} dB).",
        "",
        provenance(data),
        "",
    ]
    return out
