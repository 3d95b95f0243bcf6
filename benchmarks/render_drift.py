"""The drift section of docs/BENCHMARKS.md, from benchmarks/results/drift.json (benchmarks/drift.py)."""

from __future__ import annotations

from render_common import missing, provenance, table, verdict

RECAL_GAP_DB = 0.5  # recalibration within this of a full retraining (ACPR)
TRACK_GAP_DB = 1.0  # tracking within this of a fresh full training at every checkpoint
TRACK_SHARE = 0.10  # ...spending at most this share of retraining at every checkpoint
NAMES = {"apa": "held-out APA model", "pa_wh": "`sim:pa_wh`", "pa_gmp": "`sim:pa_gmp`"}


def _acpr(c: dict) -> str:
    return f"{c['acpr_dbc']:.1f} ({c['acpr_clean_dbc']:.1f})"


def _conditions(data: dict, pas: list[str]) -> list[str]:
    rows, recs = [], []
    for pa in pas:
        for key, c in data[pa].get("conditions", {}).items():
            recs.append(c)
            rows.append(
                [
                    NAMES.get(pa, pa),
                    key,
                    f"{c['gain_db']:.2f}",
                    f"{c['compression_db']:.2f}",
                    f"{c['am_pm_deg']:.2f}",
                    f"{c['no_dpd']['acpr_dbc']:.1f}",
                    _acpr(c["parent_dpd"]),
                    f"{c['parent_dpd']['evm_db']:.1f}",
                ]
            )
    if not rows:
        return []
    return [
        "What a condition does (simulators/conditions.py): small-signal gain, gain compression and",
        "AM/PM at the peak drive |x| = 1 (constant drives, noise-free), ACPR of the test signal without",
        "predistortion, and with the predistorter trained at 25 deg C (`auto`, 50,000 queries) as it is",
        "(in brackets: the noise-free output's ACPR).",
        "",
        *table(
            [
                "amplifier",
                "condition",
                "gain (dB)",
                "compression (dB)",
                "AM/PM (deg)",
                "ACPR no DPD",
                "ACPR, 25 C predistorter",
                "EVM (dB)",
            ],
            rows,
        ),
        "",
        provenance(data, recs, table="drift conditions"),
        "",
    ]


def _recal(data: dict, pas: list[str]) -> list[str]:
    rows, recs, gaps = [], [], []
    for pa in pas:
        for query, c in data[pa].get("recal", {}).items():
            recs.append(c)
            gaps.append(c["recal_minus_full_acpr_db"])
            rows.append(
                [
                    NAMES.get(pa, pa),
                    query,
                    _acpr(c["parent_as_is"]),
                    f"{_acpr(c['full'])}, {c['full']['queries']:,} q",
                    f"{_acpr(c['recal'])}, {c['recal']['queries']:,} q",
                    f"{c['recal_minus_full_acpr_db']:+.2f}",
                    f"{c['full']['evm_db']:.1f} / {c['recal']['evm_db']:.1f}",
                ]
            )
    if not rows:
        return []
    ok = all(g <= RECAL_GAP_DB for g in gaps)
    return [
        f"After a condition change, `--init-from` the parent (`auto`, {data['parent_queries']:,} queries at",
        f"25 deg C) with {data['share']:.0%} of its training queries, against a full retraining (`auto`,",
        f"{data['parent_queries']:,}) at the new condition; ACPR in dBc on the test signal (noise-free in",
        "brackets):",
        "",
        *table(
            [
                "amplifier",
                "condition",
                "parent as is",
                "full retraining",
                "recalibration",
                "recal - full (dB)",
                "EVM full / recal (dB)",
            ],
            rows,
        ),
        "",
        f"Recalibration within {RECAL_GAP_DB} dB ACPR of the full retraining at every condition: "
        f"{verdict(ok)} (worst {max(gaps):+.2f} dB).",
        "",
        provenance(data, recs, table="drift recalibration"),
        "",
    ]


def _track(data: dict, pas: list[str]) -> list[str]:
    out = []
    for pa in pas:
        t = data[pa].get("track")
        if not t or not t.get("checkpoints"):
            continue
        s = t["session"]
        rows = [
            [
                str(p["check"]),
                f"{p['temp']:.1f}",
                f"v{p['version']}",
                f"{p['tracked']['acpr_dbc']:.1f}",
                f"{p['full']['acpr_dbc']:.1f}",
                f"{p['tracked_minus_full_acpr_db']:+.2f}",
                f"{p['untracked']['acpr_dbc']:.1f}",
                f"{p['queries_so_far']:,}",
            ]
            for p in t["checkpoints"]
        ]
        worst = t["worst_tracked_minus_full_acpr_db"]
        ok = worst <= TRACK_GAP_DB and t["share_of_retraining"] <= TRACK_SHARE
        out += [
            f"`hwloop track` with its defaults on the {NAMES.get(pa, pa)} heating along `{t['ramp']}`",
            f"(budget {t['budget']:,}): {s['checks']} checks, {s['adaptations']} recalibrations, "
            f"{s['queries_used']:,} queries",
            f"({s['check_queries_used']:,} checking, {s['adapt_queries_used']:,} recalibrating).",
            "At every check the version in service (after the check's decision) is scored at that check's",
            "temperature against a fresh full training there (`auto`, 50,000 queries); untracked: the",
            "25 deg C predistorter.",
            "",
            *table(
                [
                    "check",
                    "temp (C)",
                    "in service",
                    "tracked ACPR",
                    "full ACPR",
                    "tracked - full",
                    "untracked ACPR",
                    "queries so far",
                ],
                rows,
            ),
            "",
            f"Within {TRACK_GAP_DB} dB of a fresh full training at every checkpoint (worst {worst:+.2f} dB)",
            f"while spending {t['share_of_retraining']:.1%} of the {t['retrain_every_checkpoint_queries']:,}",
            f"queries retraining at every checkpoint would (at most {TRACK_SHARE:.0%}): {verdict(ok)}.",
            "",
            provenance(data, [t], table=f"drift tracking {pa}"),
            "",
        ]
    return out


def section_drift(data: dict) -> list[str]:
    """Amplifiers whose condition moves: the conditions, recalibration, tracking (issue 32)."""
    out = ["## Amplifiers whose condition moves: recalibration and tracking", ""]
    pas = [k for k in ("apa", "pa_wh", "pa_gmp") if isinstance(data.get(k), dict)]
    if not pas:
        return out + missing("drift", "python benchmarks/drift.py")
    out += [f"Command: `{data['command']}`.", ""]
    return out + _conditions(data, pas) + _recal(data, pas) + _track(data, pas)
