"""``report.png``: one picture of a finished run, drawn from its run directory alone.

No device is needed: the transfer curves come from the logged training
pairs (`hwloop.querylog.read_rows`, read-only), the closed loop from the
evaluation record the run kept (``evaluation.npz``: targets t, inputs M(t),
answers F(M(t)), see `hwloop.rundir.RunDir`), and the curves from
``metrics.json``. matplotlib is imported only inside `write_report` (Agg
canvas, no pyplot), so importing hwloop stays light.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from hwloop.errors import HwloopError
from hwloop.report.data import RunData, load_run
from hwloop.report.iq import draw_iq, has_signal, is_iq
from hwloop.report.panels import (
    closed_loop_panel,
    error_limit,
    error_panel,
    finite,
    fmt_db,
    loss_panel,
    queries_panel,
    rounds_panel,
    transfer_panel,
)
from hwloop.report.rounds import read_rounds

REPORT_FILE = "report.png"
FIGSIZE = (14.0, 9.0)
DPI = 110


def write_report(run_dir: str | Path, *, out: str | Path | None = None) -> Path:
    """Draw ``report.png`` for a run; returns the path written (``RUN/report.png`` by default)."""
    data = load_run(run_dir)
    target = Path(out) if out is not None else data.run_dir / REPORT_FILE
    fig = draw_report(data)
    tmp = target.with_name(f".{target.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=DPI, format="png")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def draw_report(data: RunData) -> Any:
    """The report's matplotlib Figure (Agg canvas) for a run read by `load_run`."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise HwloopError(f"hwloop report needs matplotlib ({exc}); pip install matplotlib") from None
    iq = is_iq(data)
    fig = Figure(figsize=(FIGSIZE[0], FIGSIZE[1] * (4 / 3 if iq else 1)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    if iq:
        top, bottom = fig.subfigures(2, 1, height_ratios=[3, 1])
        _draw(top, data)
        draw_iq(bottom, data)
    else:
        _draw(fig, data)
    return fig


def _title(data: RunData) -> str:
    m, cfg = data.metrics, data.config
    device = m.get("device") or cfg.get("device") or data.run_dir.name
    strategy = m.get("strategy") or cfg.get("strategy") or "?"
    first = (
        f"hwloop run {data.run_dir.name}: {device}, {data.in_dim}\u2192{data.out_dim}, strategy {strategy}"
    )
    parts = [
        f"closed-loop NMSE {fmt_db(m.get('closed_loop_nmse_db'))}",
        f"noise floor {fmt_db(m.get('noise_floor_db'))}",
    ]
    if "closed_loop_nmse_clean_db" in m:
        parts.append(f"noise-free score {fmt_db(m.get('closed_loop_nmse_clean_db'))}")
    if m.get("queries_used") is not None:
        parts.append(f"{m['queries_used']} training + {m.get('eval_queries', '?')} evaluation queries")
    if finite(m.get("wall_s")) is not None:
        parts.append(f"{m['wall_s']:.1f} s")
    lines = [first, ", ".join(parts)]
    if has_signal(data):
        lines.append(_signal_line(m))
    if m.get("parent_run") or data.config.get("parent_run"):
        rec = read_rounds(m)
        measured = [r for r in rec.rounds if r.group != "predicted"]
        lines.append(
            f"calibrated from {m.get('parent_run') or data.config.get('parent_run')}: "
            f"{len(measured)} rounds on this unit, kept {rec.kept_text or m.get('kept', '?')}"
        )
    ev = m.get("eval")
    if isinstance(ev, dict):  # `hwloop eval`'s figures, kept apart from training's
        shown = [f"closed-loop NMSE {fmt_db(ev.get('closed_loop_nmse_db'))}"]
        shown += [f"ACPR {ev['acpr_dbc']:.1f} dBc"] if finite(ev.get("acpr_dbc")) is not None else []
        shown += [f"EVM {fmt_db(ev['evm_db'])}"] if "evm_db" in ev else []
        lines.append(f"hwloop eval on {ev.get('device', '?')}: " + ", ".join(shown))
    return "\n".join(lines) + ("".join(f"  [{n}]" for n in data.notes))


def _signal_line(m: dict) -> str:
    """A signal run's figures, as far as metrics.json has them (older runs lack some keys)."""
    parts = []
    for key, name, unit in (
        ("acpr_dbc", "ACPR", "dBc"),
        ("aclr_db", "ACLR", "dB"),
        ("evm_db", "EVM", "dB"),
        ("nmse_steady_db", "steady-state NMSE", "dB"),
    ):
        if (v := finite(m.get(key))) is not None:
            parts.append(f"{name} {v:.1f} {unit}")
    none = finite(m.get("acpr_dbc_no_dpd"))
    if none is not None:
        parts.append(f"without predistortion ACPR {none:.1f} dBc")
    if (peak := finite(m.get("drive_peak"))) is not None:
        parts.append(f"drive peak {peak:.3g}")
    return "signal: " + (", ".join(parts) if parts else "figures not recorded")


def _draw(fig: Any, data: RunData) -> None:
    d = data.out_dim
    grid = fig.add_gridspec(3, d + 1, width_ratios=[1.0] * d + [max(1.2, 0.55 * d + 0.4)])
    rng = np.random.default_rng(0)
    limit = error_limit(data)
    for j in range(d):
        transfer_panel(fig.add_subplot(grid[0, j]), data, j, rng)
        closed_loop_panel(fig.add_subplot(grid[1, j]), data, j)
        error_panel(fig.add_subplot(grid[2, j]), data, j, limit)
    loss_panel(fig.add_subplot(grid[0, d]), data)
    rounds_panel(fig.add_subplot(grid[1, d]), data)
    queries_panel(fig.add_subplot(grid[2, d]), data)
    fig.suptitle(_title(data), fontsize=12)
