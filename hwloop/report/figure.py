"""``report.png``: one picture of a finished run, drawn from its run directory alone.

No device is needed: the transfer curves come from the logged training
pairs (`hwloop.querylog.read_rows`, read-only), the closed loop from the
evaluation record the run kept (``evaluation.npz``: targets t, inputs M(t),
answers F(M(t)), see `hwloop.rundir.RunDir`), and the curves from
``metrics.json``. matplotlib is imported only inside `write_report` (Agg
canvas, no pyplot), so importing hwloop stays light.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwloop.config import read_toml
from hwloop.dpd.panels import draw_iq, is_iq
from hwloop.errors import HwloopError, RunDirError, UsageError
from hwloop.querylog import read_rows
from hwloop.rundir import RunDir, read_json_object

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

REPORT_FILE = "report.png"
FIGSIZE = (14.0, 9.0)
DPI = 110
MAX_SCATTER = 20_000  # points per scatter; more only slows drawing down
LOSS_EVERY = 100  # fit steps between two train_curve entries (see hwloop.inverses.models)


@dataclass
class RunData:
    """Everything the report draws, read once from the run directory."""

    run_dir: Path
    in_dim: int
    out_dim: int
    low: list[float] | None
    high: list[float] | None
    metrics: dict[str, Any]
    config: dict[str, Any]
    train_x: np.ndarray
    train_y: np.ndarray
    train_call_ends: list[int]  # cumulative training rows after each training call
    eval_t: np.ndarray | None
    eval_y: np.ndarray | None
    notes: list[str] = field(default_factory=list)
    evaluation: dict[str, np.ndarray] | None = None


def write_report(run_dir: str | Path, *, out: str | Path | None = None) -> Path:
    """Draw ``report.png`` for a run; returns the path written (``RUN/report.png`` by default)."""
    data = load_run(run_dir)
    target = Path(out) if out is not None else data.run_dir / REPORT_FILE
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise HwloopError(f"hwloop report needs matplotlib ({exc}); pip install matplotlib") from None
    iq = is_iq(data.evaluation, data.in_dim, data.out_dim)
    fig = Figure(figsize=(FIGSIZE[0], FIGSIZE[1] * (4 / 3 if iq else 1)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    if iq and data.evaluation is not None:
        top, bottom = fig.subfigures(2, 1, height_ratios=[3, 1])
        _draw(top, data)
        draw_iq(bottom, data.evaluation, data.train_x, data.train_y, data.metrics)
    else:
        _draw(fig, data)
    tmp = target.with_name(f".{target.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=DPI, format="png")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


# ---------------------------------------------------------------- reading


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory; anything missing or unreadable is a `RunDirError`."""
    rd = RunDir(run_dir)
    run = rd.path
    if not run.is_dir():
        raise RunDirError(f"run directory {run} does not exist")
    if not rd.log_path.is_file():
        raise RunDirError(f"{run} holds no query log (queries.sqlite): not a run directory")
    metrics = rd.read_metrics()
    device = read_json_object(run / "device.json")
    config = _read_config(run / "config.toml")
    notes = []
    if metrics is None:
        notes.append("metrics.json missing: the run did not finish")
    in_dim, out_dim, rows = read_rows(rd.log_path, "train")
    info = device or config.get("device_info") or {}
    low, high = info.get("low"), info.get("high")
    if not (isinstance(low, list) and isinstance(high, list) and len(low) == len(high) == in_dim):
        low = high = None
    train_x = np.concatenate([x for _, x, _ in rows]) if rows else np.zeros((0, in_dim))
    train_y = np.concatenate([y for _, _, y in rows]) if rows else np.zeros((0, out_dim))
    ends = list(np.cumsum([len(x) for _, x, _ in rows]).tolist())
    ev = rd.load_evaluation()
    eval_t = None if ev is None else ev["targets"]
    eval_y = None if ev is None else ev["outputs"]
    return RunData(
        run,
        in_dim,
        out_dim,
        low,
        high,
        metrics or {},
        config,
        train_x,
        train_y,
        ends,
        eval_t,
        eval_y,
        notes,
        ev,
    )


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return read_toml(path)
    except UsageError as exc:
        raise RunDirError(str(exc)) from None


# ---------------------------------------------------------------- drawing


def _fmt_db(v: object) -> str:
    if v is None:
        return "not recorded"
    if isinstance(v, (int, float)) and math.isfinite(v):
        return f"{v:.1f} dB"
    return "exact (-inf dB)"


def _finite(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _note(ax: Axes, text: str) -> None:
    ax.text(
        0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.35", fontsize=10, wrap=True
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(ax: Axes, column: int, loc: str = "best") -> None:
    """Per-output panels repeat each other: the first column's legend explains them all."""
    if column == 0:
        ax.legend(fontsize=8, loc=loc, markerscale=3, framealpha=0.85)


def _thin(n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most MAX_SCATTER rows, chosen evenly at random."""
    if n <= MAX_SCATTER:
        return np.arange(n)
    return np.sort(rng.choice(n, size=MAX_SCATTER, replace=False))


def _alpha(n: int) -> float:
    return float(np.clip(60.0 / math.sqrt(max(n, 1)), 0.08, 0.6))


def _own_input(j: int, data: RunData) -> int:
    """The input plotted against output j: input j for square devices, else input 0."""
    return j if data.in_dim == data.out_dim else 0


def _title(data: RunData) -> str:
    m, cfg = data.metrics, data.config
    device = m.get("device") or cfg.get("device") or data.run_dir.name
    strategy = m.get("strategy") or cfg.get("strategy") or "?"
    first = (
        f"hwloop run {data.run_dir.name}: {device}, {data.in_dim}\u2192{data.out_dim}, strategy {strategy}"
    )
    parts = [
        f"closed-loop NMSE {_fmt_db(m.get('closed_loop_nmse_db'))}",
        f"noise floor {_fmt_db(m.get('noise_floor_db'))}",
    ]
    if "closed_loop_nmse_clean_db" in m:
        parts.append(f"noise-free score {_fmt_db(m.get('closed_loop_nmse_clean_db'))}")
    if m.get("queries_used") is not None:
        parts.append(f"{m['queries_used']} training + {m.get('eval_queries', '?')} evaluation queries")
    if _finite(m.get("wall_s")) is not None:
        parts.append(f"{m['wall_s']:.1f} s")
    return first + "\n" + ", ".join(parts) + ("".join(f"  [{n}]" for n in data.notes))


def _draw(fig: Any, data: RunData) -> None:
    d = data.out_dim
    grid = fig.add_gridspec(3, d + 1, width_ratios=[1.0] * d + [max(1.2, 0.55 * d + 0.4)])
    rng = np.random.default_rng(0)
    for j in range(d):
        _transfer_panel(fig.add_subplot(grid[0, j]), data, j, rng)
        _closed_loop_panel(fig.add_subplot(grid[1, j]), data, j)
        _error_panel(fig.add_subplot(grid[2, j]), data, j)
    _loss_panel(fig.add_subplot(grid[0, d]), data)
    _rounds_panel(fig.add_subplot(grid[1, d]), data)
    _queries_panel(fig.add_subplot(grid[2, d]), data)
    fig.suptitle(_title(data), fontsize=12)


def _transfer_panel(ax: Axes, data: RunData, j: int, rng: np.random.Generator) -> None:
    i = _own_input(j, data)
    ax.set_title(f"device transfer: y{j} vs x{i}", fontsize=10)
    n = data.train_x.shape[0]
    if n == 0:
        _note(ax, "no training queries logged")
        return
    idx = _thin(n, rng)
    ax.scatter(
        data.train_x[idx, i],
        data.train_y[idx, j],
        s=4,
        alpha=_alpha(len(idx)),
        color="tab:blue",
        edgecolors="none",
        label=f"logged training pairs ({n})",
        rasterized=True,
    )
    if data.low is not None and data.high is not None:
        for k, v in enumerate((data.low[i], data.high[i])):
            ax.axvline(v, color="tab:red", ls=":", lw=1, label="safe input range" if k == 0 else None)
    ax.set_xlabel(f"input x{i} (device units)")
    ax.set_ylabel(f"output y{j} (device units)")
    ax.grid(alpha=0.3)
    _legend(ax, j)


def _closed_loop_panel(ax: Axes, data: RunData, j: int) -> None:
    ax.set_title(f"linearised closed loop, output {j}", fontsize=10)
    if data.eval_t is None or data.eval_y is None:
        _note(ax, "evaluation queries not recorded")
        return
    t, y = data.eval_t[:, j], data.eval_y[:, j]
    ax.scatter(t, y, s=5, alpha=_alpha(len(t)), color="tab:green", edgecolors="none", rasterized=True,
               label=f"held-out targets ({len(t)})")  # fmt: skip
    lo, hi = float(min(t.min(), y.min())), float(max(t.max(), y.max()))
    ax.plot([lo, hi], [lo, hi], color="black", ls="--", lw=1, label="ideal y = t")
    ax.set_xlabel(f"target t{j} (device units)")
    ax.set_ylabel(f"y{j} = F(M(t)){j} (device units)")
    ax.grid(alpha=0.3)
    _legend(ax, j, loc="upper left")


def _error_panel(ax: Axes, data: RunData, j: int) -> None:
    if data.eval_t is None or data.eval_y is None:
        ax.set_title(f"closed-loop error, output {j}", fontsize=10)
        _note(ax, "evaluation queries not recorded")
        return
    t, err = data.eval_t[:, j], data.eval_y[:, j] - data.eval_t[:, j]
    ax.set_title(f"closed-loop error, output {j} (rms {np.sqrt(np.mean(err**2)):.1e})", fontsize=10)
    ax.scatter(t, err, s=5, alpha=_alpha(len(t)), color="tab:purple", edgecolors="none", rasterized=True,
               label="y \u2212 t per target")  # fmt: skip
    ax.axhline(0.0, color="black", lw=0.8)
    sigma = _finite(data.metrics.get("noise_std"))
    if sigma is not None and sigma > 0:
        ax.axhspan(
            -sigma,
            sigma,
            color="tab:orange",
            alpha=0.2,
            label=f"\u00b11\u03c3 measurement noise ({sigma:.1e})",
        )
    ax.set_xlabel(f"target t{j} (device units)")
    ax.set_ylabel(f"error y{j} \u2212 t{j} (device units)")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    ax.grid(alpha=0.3)
    _legend(ax, j)


def _loss_panel(ax: Axes, data: RunData) -> None:
    ax.set_title("training: fit loss (every fit of the run, in order)", fontsize=10)
    curve = data.metrics.get("train_curve")
    if not isinstance(curve, list) or not curve:
        _note(ax, "train_curve not recorded in metrics.json")
        return
    vals = np.array([_finite(v) if _finite(v) is not None else np.nan for v in curve], dtype=np.float64)
    steps = np.arange(len(vals)) * LOSS_EVERY
    ok = np.isfinite(vals) & (vals > 0)
    if not ok.any():
        _note(ax, "train_curve holds no positive loss")
        return
    ax.plot(steps[ok], vals[ok], color="tab:blue", lw=1.2, label=f"loss every {LOSS_EVERY} steps")
    ax.set_yscale("log")
    ax.set_xlabel("fit step (fits concatenated)")
    ax.set_ylabel("loss (standardised MSE)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")


def _round_scores(data: RunData) -> list[float | None]:
    rounds = data.metrics.get("round_nmse_db")
    if not isinstance(rounds, list):
        return []
    return [_finite(v) for v in rounds]


def _round_queries(data: RunData, k: int) -> list[int] | None:
    """Training queries spent once each round's answers were in (metrics ``round_spent``)."""
    spent = data.metrics.get("round_spent")
    if k == 0 or not isinstance(spent, list) or len(spent) != k:
        return None
    return [int(v) for v in spent]


def _floor_line(ax: Axes, data: RunData) -> None:
    floor = _finite(data.metrics.get("noise_floor_db"))
    if floor is not None:
        ax.axhline(floor, color="tab:red", ls="--", lw=1, label=f"noise floor {floor:.1f} dB")


def _rounds_panel(ax: Axes, data: RunData) -> None:
    ax.set_title("closed-loop NMSE per training round (measured on the device)", fontsize=10)
    scores = _round_scores(data)
    if not scores:
        strategy = data.metrics.get("strategy", "this strategy")
        _note(ax, f"round_nmse_db not recorded\n({strategy} has no device-in-the-loop rounds)")
        return
    r = np.arange(len(scores))
    v = np.array([np.nan if s is None else s for s in scores])
    ax.plot(r, v, "o-", color="tab:blue", label="round NMSE (fresh targets)")
    best = data.metrics.get("best_round")
    if isinstance(best, int) and 0 <= best < len(scores) and scores[best] is not None:
        ax.plot([best], [scores[best]], "*", ms=14, color="gold", mec="black", label=f"kept: round {best}")
    _floor_line(ax, data)
    ax.set_xticks(r)
    ax.set_xlabel("round")
    ax.set_ylabel("NMSE (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.85)


def _queries_panel(ax: Axes, data: RunData) -> None:
    ax.set_title("closed-loop NMSE vs training queries spent", fontsize=10)
    m = data.metrics
    scores = _round_scores(data)
    drew = False
    xs = _round_queries(data, len(scores))
    if scores and xs is not None:
        v = np.array([np.nan if s is None else s for s in scores])
        ax.plot(xs, v, "o-", color="tab:blue", label="during training (each round)")
        drew = True
    final, used = _finite(m.get("closed_loop_nmse_db")), m.get("queries_used")
    if final is not None and isinstance(used, int):
        ax.plot(
            [used],
            [final],
            "D",
            ms=9,
            color="tab:green",
            mec="black",
            label=f"final, held-out: {final:.1f} dB",
        )
        drew = True
    if not drew:
        _note(ax, "closed_loop_nmse_db / queries_used not recorded")
        return
    _floor_line(ax, data)
    budget = data.config.get("queries")
    if isinstance(budget, int) and not isinstance(budget, bool):
        ax.axvline(budget, color="0.5", ls=":", lw=1, label=f"budget {budget}")
    spans = [v for v in (budget, used, *(xs or [])) if isinstance(v, (int, np.integer)) and v > 0]
    right = max(spans, default=1)
    ax.set_xlim(0, 1.05 * float(right))
    ax.margins(y=0.12)
    ax.set_xlabel("queries (training, cumulative)")
    ax.set_ylabel("NMSE (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.85)
