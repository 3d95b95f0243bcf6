"""docs/drift.md's tables, from benchmarks/results/drift.json (benchmarks/drift.py), for render_docs.py."""

from __future__ import annotations

from typing import Any

LABELS = {"nominal": "25 C, 5.0 V", "temp=0": "0 C", "temp=45": "45 C", "temp=65": "65 C", "temp=85": "85 C"}
LABELS |= {"vdd=4.5": "4.5 V", "vdd=5.5": "5.5 V", "temp=-15": "-15 C"}


def _label(key: str) -> str:
    return LABELS.get(key, key)


def drift_conditions(r: Any) -> list[str]:
    """What a condition does to the held-out APA model and to a predistorter trained at 25 C."""
    rows = [
        "| condition | small-signal gain (dB) | compression at peak (dB) | AM/PM at peak (deg) "
        "| ACPR, no DPD | ACPR, the 25 C predistorter | its EVM (dB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, c in r["drift"]["apa"]["conditions"].items():
        rows.append(
            f"| {_label(key)} | {c['gain_db']:.2f} | {c['compression_db']:.2f} | {c['am_pm_deg']:.1f} "
            f"| {c['no_dpd']['acpr_dbc']:.1f} | {c['parent_dpd']['acpr_dbc']:.1f} "
            f"| {c['parent_dpd']['evm_db']:.1f} |"
        )
    return rows


def drift_recal(r: Any) -> list[str]:
    """Recalibration with 5 % of the parent's queries against a full retraining, at three conditions."""
    rows = [
        "| condition | parent as it is | full retraining | recalibration | recal - full "
        "| EVM full / recal (dB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, c in r["drift"]["apa"]["recal"].items():
        rows.append(
            f"| {_label(key)} | {c['parent_as_is']['acpr_dbc']:.1f} "
            f"| {c['full']['acpr_dbc']:.1f} ({c['full']['queries']:,} q) "
            f"| {c['recal']['acpr_dbc']:.1f} ({c['recal']['queries']:,} q) "
            f"| {c['recal_minus_full_acpr_db']:+.2f} dB "
            f"| {c['full']['evm_db']:.1f} / {c['recal']['evm_db']:.1f} |"
        )
    return rows


def drift_track(r: Any) -> list[str]:
    """Every checkpoint of the tracked ramp: the version in service against a fresh full training."""
    rows = [
        "| check | temp (C) | in service | tracked ACPR | full training ACPR | tracked - full "
        "| untracked ACPR | queries so far |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for p in r["drift"]["apa"]["track"]["checkpoints"]:
        rows.append(
            f"| {p['check']} | {p['temp']:.1f} | v{p['version']} | {p['tracked']['acpr_dbc']:.1f} "
            f"| {p['full']['acpr_dbc']:.1f} | {p['tracked_minus_full_acpr_db']:+.2f} dB "
            f"| {p['untracked']['acpr_dbc']:.1f} | {p['queries_so_far']:,} |"
        )
    return rows


TABLES = {"drift-conditions": drift_conditions, "drift-recal": drift_recal, "drift-track": drift_track}
