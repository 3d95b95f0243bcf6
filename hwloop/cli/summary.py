"""The one line ``hwloop train`` and ``hwloop eval`` print: the figures a user of the job reads.

With a signal (DPD) that is ACPR (the worse adjacent channel) beside the bare
signal's at the same average drive power, ACLR, EVM, steady-state NMSE (and
with the cold start), the peak drive and the queries; each figure with its
standard error once that reaches half a dB (a short scored stretch). A
calibration run (``--init-from``) names its parent run and its rounds.
"""

from __future__ import annotations

from hwloop.cli.common import fmt_db


def run_summary(m: dict) -> str:
    """The run's one line: with a signal the DPD figures (`signal_summary`), else the closed loop;
    a calibration also names its parent run and rounds."""
    head = f"{m['strategy']} on {m['device']}: "
    tail = (
        f"{m['queries_used']} training + {m['eval_queries']} evaluation queries, "
        f"{m['wall_s']:.1f} s -> {m['run_dir']}"
    )
    if m.get("acpr_dbc") is not None:
        return head + signal_summary(m) + ", " + tail
    body = f"closed-loop NMSE {fmt_db(m['closed_loop_nmse_db'])}, noise floor {fmt_db(m['noise_floor_db'])}, "
    if m.get("parent_run"):
        rounds = m.get("rounds")
        count = f"{len(rounds)} rounds" if isinstance(rounds, list) else "its rounds"
        kept = f" (kept: {m['kept']})" if m.get("kept") else ""
        body += f"calibrated from {m['parent_run']} in {count}{kept}, "
    return head + body + tail


def _pm(m: dict, key: str, se_key: str, unit: str) -> str:
    """A figure with its standard error when that is large enough to matter (0.5 dB or more)."""
    v, se = m.get(key), m.get(se_key)
    if v is None:
        return "n/a"
    shown = f"{v:.1f}"
    if isinstance(se, (int, float)) and se >= 0.5:
        shown += f" +- {se:.1f}" if se < 99 else " (too short to say)"
    return f"{shown} {unit}"


def signal_summary(m: dict) -> str:
    """What a DPD engineer reads first: ACPR (the worse adjacent channel) beside the bare signal's at
    the same average drive power, ACLR, EVM, steady-state NMSE (and with the cold start), the peak
    drive."""
    none = m.get("acpr_dbc_no_dpd")
    ref = f"no DPD {none:.1f} dBc at equal power" if isinstance(none, (int, float)) else "no DPD reference"
    floor = m.get("acpr_floor_dbc")
    if (
        isinstance(floor, (int, float))
        and isinstance(m.get("acpr_dbc"), (int, float))
        and m["acpr_dbc"] < floor + 3
    ):
        ref += f"; the signal's own, the floor: {floor:.1f}"
    parts = [
        f"ACPR {_pm(m, 'acpr_dbc', 'acpr_se_db', 'dBc')} ({ref})",
        f"ACLR {_pm(m, 'aclr_db', '', 'dB')}",
        f"EVM {_pm(m, 'evm_db', 'evm_se_db', 'dB')}",
        f"NMSE {_pm(m, 'nmse_steady_db', 'nmse_steady_se_db', 'dB')} steady"
        + (
            f" ({m['nmse_db']:.1f} with the cold start)" if isinstance(m.get("nmse_db"), (int, float)) else ""
        ),
    ]
    if m.get("drive_peak") is not None:
        parts.append(f"drive peak {m['drive_peak']:.3f}")
    if m.get("dpd_latency_samples"):
        parts.append(f"latency {m['dpd_latency_samples']} samples")
    return ", ".join(parts)
