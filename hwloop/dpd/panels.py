"""The pictures a DPD engineer reads for an I/Q run: spectrum before and after, AM/AM, AM/PM.

Drawn from the evaluation record of a run on an I/Q device (``evaluation.npz``):
the targets t, the drive M(t), the output with predistortion and, for a run
with ``--signal``, the output for the signal sent without predistortion.
Without that last one, AM/AM and AM/PM are those of the logged training
pairs (the device itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes


def is_iq(evaluation: dict[str, np.ndarray] | None, in_dim: int, out_dim: int) -> bool:
    return evaluation is not None and in_dim == out_dim == 2


def draw_iq(
    fig: Any, ev: dict[str, np.ndarray], train_x: np.ndarray, train_y: np.ndarray, metrics: dict
) -> None:
    """Three panels on the figure's bottom row: spectrum, AM/AM, AM/PM."""
    grid = fig.add_gridspec(1, 3)
    fs = float(metrics.get("fs") or 800e6)
    bw = metrics.get("bw")
    _spectrum(fig.add_subplot(grid[0, 0]), ev, fs, bw, metrics)
    x_dpd, y_dpd = _c(ev["inputs"]), _c(ev["outputs"])
    t = _c(ev["targets"])
    if "outputs_no_dpd" in ev:
        scale = float(metrics.get("no_dpd_drive_scale") or 1.0)
        x_raw, y_raw = t * scale, _c(ev["outputs_no_dpd"])
        label_raw = "device alone (signal as drive)"
    else:
        x_raw, y_raw = _c(train_x), _c(train_y)
        label_raw = "device alone (logged pairs)"
    am, pm = fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[0, 2])
    _amam_ampm(am, pm, x_raw, y_raw, label_raw, "tab:red")
    _amam_ampm(am, pm, t, y_dpd, "with the inverse (target -> output)", "tab:green")
    am.set_title("AM/AM", fontsize=10)
    pm.set_title("AM/PM", fontsize=10)
    for ax in (am, pm):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    am.set_xlabel("|input| (drive, or target for the linearised chain)")
    am.set_ylabel("|output|")
    pm.set_xlabel("|input|")
    pm.set_ylabel("phase(output / input), degrees")
    del x_dpd


def _c(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return a[:, 0] + 1j * a[:, 1]


def _thin(n: int, k: int = 6000) -> np.ndarray:
    return np.linspace(0, n - 1, min(n, k)).astype(int)


def _amam_ampm(am: Axes, pm: Axes, x: np.ndarray, y: np.ndarray, label: str, color: str) -> None:
    idx = _thin(len(x))
    xs, ys = x[idx], y[idx]
    keep = np.abs(xs) > 1e-6
    am.scatter(
        np.abs(xs), np.abs(ys), s=3, alpha=0.3, color=color, edgecolors="none", label=label, rasterized=True
    )
    phase = np.degrees(np.angle(ys[keep] / xs[keep]))
    pm.scatter(
        np.abs(xs[keep]), phase, s=3, alpha=0.3, color=color, edgecolors="none", label=label, rasterized=True
    )


def _spectrum(ax: Axes, ev: dict[str, np.ndarray], fs: float, bw: object, metrics: dict) -> None:
    from scipy import signal as sps

    ax.set_title("output spectrum (Welch, Hann)", fontsize=10)
    curves = [("target", ev["targets"], "0.4")]
    if "outputs_no_dpd" in ev:
        curves.append(
            (f"no predistortion ({_db(metrics.get('acpr_dbc_no_dpd'))})", ev["outputs_no_dpd"], "tab:red")
        )
    curves.append((f"with the inverse ({_db(metrics.get('acpr_dbc'))})", ev["outputs"], "tab:green"))
    for label, arr, color in curves:
        z = _c(arr)
        f, p = sps.welch(
            z, fs=fs, window="hann", nperseg=min(2048, len(z)), return_onesided=False, detrend=False
        )
        order = np.argsort(f)
        ax.plot(f[order] / 1e6, 10 * np.log10(np.maximum(p[order], 1e-30)), lw=1, color=color, label=label)
    if isinstance(bw, (int, float)):
        for edge in (-bw / 2e6, bw / 2e6):
            ax.axvline(edge, color="0.6", ls=":", lw=1)
    ax.set_xlabel("frequency (MHz)")
    ax.set_ylabel("PSD (dB/Hz)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower center")


def _db(v: object) -> str:
    return f"ACPR {v:.1f} dBc" if isinstance(v, (int, float)) else "ACPR not recorded"
