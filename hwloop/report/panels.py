"""The report's panels for every run: transfer, closed loop, error, fit loss, rounds, queries.

Each draws one matplotlib Axes from a `hwloop.report.figure.RunData`; a panel
with nothing recorded to draw says so in the panel instead of staying blank.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from hwloop.report.rounds import finite, read_rounds

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from hwloop.report.data import RunData

MAX_SCATTER = 20_000  # points per scatter; more only slows drawing down
LOSS_EVERY = 100  # fit steps between two train_curve entries (see hwloop.inverses.models)


def fmt_db(v: object) -> str:
    if v is None:
        return "not recorded"
    if isinstance(v, (int, float)) and math.isfinite(v):
        return f"{v:.1f} dB"
    return "exact (-inf dB)"


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


def transfer_panel(ax: Axes, data: RunData, j: int, rng: np.random.Generator) -> None:
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


def closed_loop_panel(ax: Axes, data: RunData, j: int) -> None:
    ax.set_title(f"linearised closed loop, output {j}", fontsize=10)
    if data.eval_t is None or data.eval_y is None or len(data.eval_t) == 0:
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


def error_limit(data: RunData) -> float | None:
    """One y range for every output's error panel (I and Q on one scale): the largest |y - t|."""
    if data.eval_t is None or data.eval_y is None or data.eval_t.size == 0:
        return None
    worst = float(np.max(np.abs(data.eval_y - data.eval_t)))
    sigma = finite(data.metrics.get("noise_std")) or 0.0
    return 1.08 * max(worst, sigma) if max(worst, sigma) > 0 else None


def error_panel(ax: Axes, data: RunData, j: int, limit: float | None = None) -> None:
    if data.eval_t is None or data.eval_y is None or len(data.eval_t) == 0:
        ax.set_title(f"closed-loop error, output {j}", fontsize=10)
        _note(ax, "evaluation queries not recorded")
        return
    t, err = data.eval_t[:, j], data.eval_y[:, j] - data.eval_t[:, j]
    ax.set_title(f"closed-loop error, output {j} (rms {np.sqrt(np.mean(err**2)):.1e})", fontsize=10)
    ax.scatter(t, err, s=5, alpha=_alpha(len(t)), color="tab:purple", edgecolors="none", rasterized=True,
               label="y \u2212 t per target")  # fmt: skip
    ax.axhline(0.0, color="black", lw=0.8)
    sigma = finite(data.metrics.get("noise_std"))
    if sigma is not None and sigma > 0:
        ax.axhspan(
            -sigma,
            sigma,
            color="tab:orange",
            alpha=0.2,
            label=f"\u00b11\u03c3 measurement noise ({sigma:.1e})",
        )
    if limit is not None:
        ax.set_ylim(-limit, limit)
    ax.set_xlabel(f"target t{j} (device units)")
    ax.set_ylabel(f"error y{j} \u2212 t{j} (device units)")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    ax.grid(alpha=0.3)
    _legend(ax, j)


def loss_panel(ax: Axes, data: RunData) -> None:
    ax.set_title("training: fit loss (every fit of the run, in order)", fontsize=10)
    curve = data.metrics.get("train_curve")
    if (not isinstance(curve, list) or not curve) and any(
        r.acpr_dbc is not None for r in read_rounds(data.metrics).rounds
    ):
        acpr_per_round(ax, data)
        return
    if not isinstance(curve, list) or not curve:
        _note(ax, "train_curve not recorded in metrics.json")
        return
    vals = np.array([finite(v) if finite(v) is not None else np.nan for v in curve], dtype=np.float64)
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


def round_scores(data: RunData) -> list[float | None]:
    """Each measured round's NMSE, in the order `read_rounds` gives (predicted finals left out)."""
    return [r.nmse_db for r in read_rounds(data.metrics).rounds if r.group != "predicted"]


def best_round(data: RunData) -> int | None:
    """Index, in `round_scores`' order, of the round whose checkpoint was kept."""
    return read_rounds(data.metrics).kept_index


def _floor_line(ax: Axes, data: RunData) -> None:
    floor = finite(data.metrics.get("noise_floor_db"))
    if floor is not None:
        ax.axhline(floor, color="tab:red", ls="--", lw=1, label=f"noise floor {floor:.1f} dB")


def _kept_star(ax: Axes, x: float, y: float, text: str | None) -> None:
    ax.plot([x], [y], "*", ms=15, color="gold", mec="black", zorder=6, label=f"kept: {text or 'this one'}")


def rounds_panel(ax: Axes, data: RunData) -> None:
    rec = read_rounds(data.metrics)
    ax.set_title("closed-loop NMSE per training round (measured on the device)", fontsize=10)
    if not rec.rounds:
        strategy = data.metrics.get("strategy_run") or data.metrics.get("strategy", "this strategy")
        _note(ax, f"no device-in-the-loop rounds recorded\n({strategy} fits once, then is evaluated)")
        return
    r = np.arange(len(rec.rounds))
    nmse = np.array([np.nan if p.nmse_db is None else p.nmse_db for p in rec.rounds])
    se = np.array([0.0 if p.se_db is None else p.se_db for p in rec.rounds])
    measured = np.array([p.group != "predicted" for p in rec.rounds])
    ax.errorbar(r[measured], nmse[measured], yerr=se[measured], fmt="o-", color="tab:blue", capsize=3,
                label="round's own answers (\u00b1 its uncertainty)")  # fmt: skip
    if (~measured).any():
        ax.plot(r[~measured], nmse[~measured], "s", color="tab:cyan", mec="black",
                label="final inverse, predicted on held answers")  # fmt: skip
    judged = np.array([np.nan if p.judged_db is None else p.judged_db for p in rec.rounds])
    if np.isfinite(judged).any():
        ax.plot(r, judged, "v", color="tab:orange", label="judged on rows no fit saw")
    k = rec.kept_index
    if k is not None:
        y = judged[k] if np.isfinite(judged[k]) else nmse[k]
        if np.isfinite(y):
            _kept_star(ax, k, y, rec.kept_text)
    _floor_line(ax, data)
    ax.set_xticks(r, [p.label for p in rec.rounds], fontsize=8, rotation=20 if len(r) > 4 else 0)
    ax.set_xlabel("round (as metrics.json numbers it)")
    ax.set_ylabel("NMSE (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.85)


def queries_panel(ax: Axes, data: RunData) -> None:
    ax.set_title("closed-loop NMSE vs training queries spent", fontsize=10)
    m = data.metrics
    rec = read_rounds(m)
    drew = False
    pts = [(p.queries, p) for p in rec.rounds if p.queries is not None]
    if pts:
        xs = np.array([q for q, _ in pts], dtype=float)
        ys = np.array([np.nan if p.nmse_db is None else p.nmse_db for _, p in pts])
        ax.plot(xs, ys, "o-", color="tab:blue", label="each round, on its own answers")
        judged = np.array([np.nan if p.judged_db is None else p.judged_db for _, p in pts])
        if np.isfinite(judged).any():
            ax.plot(xs, judged, "v", color="tab:orange", label="judged on rows no fit saw")
        for q, p in pts:
            if p.kept:
                y = p.judged_db if p.judged_db is not None else p.nmse_db
                if y is not None:
                    _kept_star(ax, q, y, rec.kept_text)
        drew = True
    final, used = finite(m.get("closed_loop_nmse_db")), m.get("queries_used")
    if final is not None and isinstance(used, int):
        ax.plot([used], [final], "D", ms=9, color="tab:green", mec="black", zorder=5,
                label=f"final, on held-out targets: {final:.1f} dB")  # fmt: skip
        drew = True
    none = finite(m.get("nmse_db_no_dpd"))
    if none is not None:
        ax.axhline(none, color="tab:red", ls="-.", lw=1, label=f"no predistortion {none:.1f} dB")
    if not drew:
        _note(ax, "closed_loop_nmse_db / queries_used not recorded")
        return
    _floor_line(ax, data)
    budget = data.config.get("queries")
    if isinstance(budget, int) and not isinstance(budget, bool):
        ax.axvline(budget, color="0.5", ls=":", lw=1, label=f"budget {budget}")
    spans = [v for v in (budget, used, *(q for q, _ in pts)) if isinstance(v, (int, np.integer)) and v > 0]
    ax.set_xlim(0, 1.05 * float(max(spans, default=1)))
    ax.margins(y=0.12)
    ax.set_xlabel("queries (training, cumulative)")
    ax.set_ylabel("NMSE (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", framealpha=0.75)


def acpr_per_round(ax: Axes, data: RunData) -> None:
    """A predistorter is fitted by least squares, not by optimizer steps: its fit is read off
    the ACPR each round's drive measured (and the no-DPD reference)."""
    ax.set_title("training: ACPR of each measured round", fontsize=10)
    rec = read_rounds(data.metrics)
    acpr = np.array([np.nan if p.acpr_dbc is None else p.acpr_dbc for p in rec.rounds])
    r = np.arange(len(rec.rounds))
    ax.plot(r, acpr, "s-", color="tab:purple", label="ACPR of the round's output")
    k = rec.kept_index
    if k is not None and np.isfinite(acpr[k]):
        _kept_star(ax, k, acpr[k], rec.kept_text)
    none = finite(data.metrics.get("acpr_dbc_no_dpd"))
    if none is not None:
        ax.axhline(none, color="tab:red", ls="--", lw=1, label=f"no predistortion {none:.1f} dBc")
    final = finite(data.metrics.get("acpr_dbc"))
    if final is not None:
        ax.axhline(final, color="tab:green", ls=":", lw=1.2, label=f"final, held-out {final:.1f} dBc")
    ax.set_xticks(r, [p.label for p in rec.rounds], fontsize=8, rotation=20 if len(r) > 4 else 0)
    ax.set_xlabel("round (as metrics.json numbers it)")
    ax.set_ylabel("ACPR (dBc)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.85)
