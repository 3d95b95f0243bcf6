"""The report's tracking panels: a tracked run's figures over time, its versions and what they cost.

Drawn from ``RUN/track/history.json`` alone (`hwloop.tracking`): every check's
ACPR and EVM against the tracking queries spent so far, the versions marked
where they were adopted, and the amplifier's condition when the device
reported one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwloop.rundir import read_json_object

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

HISTORY = Path("track") / "history.json"


def read_history(run_dir: Path) -> dict[str, Any] | None:
    """The run's tracking history, or None if it was never tracked."""
    history = read_json_object(Path(run_dir) / HISTORY)
    return history if history and history.get("checks") else None


def _spent(checks: list[dict]) -> list[int]:
    """Tracking queries spent when each check was made, summed over the sessions."""
    out, before, last = [], 0, {}
    for c in checks:
        s = c.get("session", "")
        if s not in last and last:
            before += max(last.values())
        last[s] = int(c.get("queries") or 0)
        out.append(before + last[s])
    return out


def track_panel(ax: Axes, history: dict[str, Any]) -> None:
    """ACPR and EVM of every check against the queries spent; a line where each version came in."""
    checks = history["checks"]
    x = _spent(checks)
    ax.plot(x, [c["acpr_dbc"] for c in checks], "o-", ms=3, color="C0", label="ACPR (dBc)")
    ax.plot(x, [c["evm_db"] for c in checks], "s-", ms=3, color="C1", label="EVM (dB)")
    for xi, c in zip(x, checks, strict=True):
        if c.get("adapted_to") is not None:
            ax.axvline(xi, color="0.6", lw=0.8, ls="--")
            ax.annotate(
                f"v{c['adapted_to']}",
                (xi, 1.0),
                xycoords=("data", "axes fraction"),
                fontsize=7,
                ha="left",
                va="top",
                color="0.35",
            )
    ax.set_xlabel("tracking queries (checks and recalibrations)")
    ax.set_ylabel("dB")
    n_versions = len(history.get("versions", []))
    ax.set_title(f"tracked: {len(checks)} checks, {n_versions} versions (dashed: a new version)", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)


def condition_panel(ax: Axes, history: dict[str, Any]) -> None:
    """The device's condition at each check (temperature, supply) when it reported one; else the
    queries each version cost."""
    checks = history["checks"]
    temps = [
        (xi, c["condition"])
        for xi, c in zip(_spent(checks), checks, strict=True)
        if isinstance(c.get("condition"), dict) and "temp" in c["condition"]
    ]
    if temps:
        ax.plot([t[0] for t in temps], [t[1]["temp"] for t in temps], "o-", ms=3, color="C3")
        ax.set_ylabel("temperature (deg C)")
        ax.set_xlabel("tracking queries")
        ax.set_title("the amplifier's condition at each check", fontsize=10)
        ax.grid(alpha=0.3)
        return
    versions = history.get("versions", [])
    ax.bar([f"v{v['version']}" for v in versions], [v.get("queries") or 0 for v in versions], color="C2")
    ax.set_ylabel("queries")
    ax.set_title("what each version cost (v0: its training)", fontsize=10)
