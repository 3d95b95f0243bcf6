"""The pictures a DPD engineer reads for an I/Q run: spectrum, AM/AM, AM/PM.

Drawn from the evaluation record (``evaluation.npz``: targets t, drive M(t),
output F(M(t)), and for a signal run the output without predistortion when
the evaluation measured it) and the query log. Without the evaluation's
no-predistortion output, a signal run's reference is training's first round,
which drove the bare signal: its logged answers (the windows of
``dpd_stretch``) are the "no predistortion" trace.

- Spectrum (signal runs only): Welch PSD of the target, the output without
  and with predistortion, each relative to its own in-band mean, so the
  adjacent channels compare as ACPR does; the y range runs from the traces'
  floor to their peak.
- AM/AM and AM/PM: the amplifier alone (drive -> output), the predistorter
  (target -> drive) and the linearised chain (target -> output), each axis
  zoomed to the data; phases only where the magnitude is above a tenth of
  its peak (below, a phase is mostly noise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from hwloop.report.rounds import _stretch_len, finite

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from hwloop.report.data import RunData

MAX_POINTS = 6000  # per AM/AM or AM/PM curve
PHASE_ABOVE = 0.1  # of the peak magnitude: below it phase is not drawn


def is_iq(data: RunData) -> bool:
    return data.in_dim == data.out_dim == 2 and data.evaluation is not None


def has_signal(data: RunData) -> bool:
    """A run trained or scored on a signal (DPD): ACPR and a spectrum mean something."""
    opts = data.config.get("options") if isinstance(data.config.get("options"), dict) else {}
    return bool(opts.get("signal")) or finite(data.metrics.get("acpr_dbc")) is not None


def no_dpd_pairs(data: RunData) -> tuple[np.ndarray, np.ndarray, list[int], str] | None:
    """(drive, output, window lengths, where from) of the signal sent without predistortion."""
    ev, m = data.evaluation or {}, data.metrics
    if "outputs_no_dpd" in ev:
        scale = finite(m.get("no_dpd_drive_scale")) or 1.0
        t = _c(ev["targets"])
        return t * scale, _c(ev["outputs_no_dpd"]), [len(t)], "measured at evaluation"
    ref = m.get("no_dpd_reference")
    if ref is not None and "round 1" not in str(ref):  # the reference was not training's first round
        return None
    stretch = m.get("dpd_stretch")
    n = _stretch_len(stretch)
    if n is None or n > len(data.train_x) or not isinstance(m.get("dpd_rounds"), list):
        return None
    windows = stretch if all(isinstance(w, list) for w in stretch) else [stretch]
    lengths = [int(w[1]) - int(w[0]) for w in windows]
    return _c(data.train_x[:n]), _c(data.train_y[:n]), lengths, "training round 1"


def draw_iq(fig: Any, data: RunData) -> None:
    """The bottom row: spectrum (signal runs), AM/AM and AM/PM."""
    signal = has_signal(data)
    grid = fig.add_gridspec(1, 3 if signal else 2)
    ev = data.evaluation or {}
    t, x, y = _c(ev["targets"]), _c(ev["inputs"]), _c(ev["outputs"])
    raw = no_dpd_pairs(data) if signal else None
    if signal:
        _spectrum(fig.add_subplot(grid[0, 0]), data, t, y, raw)
    am, pm = fig.add_subplot(grid[0, 1 if signal else 0]), fig.add_subplot(grid[0, 2 if signal else 1])
    if raw is not None:
        alone = (raw[0], raw[1], f"amplifier alone (no predistortion, {raw[3]})")
    else:
        alone = (_c(data.train_x), _c(data.train_y), "device alone (logged training pairs)")
    curves = [
        (*alone, "tab:red"),
        (t, x, "predistorter / inverse: target -> drive", "tab:blue"),
        (t, y, "linearised: target -> output", "tab:green"),
    ]
    _am_pm(am, pm, curves)


def _c(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return a[:, 0] + 1j * a[:, 1]


def _welch(z: np.ndarray, fs: float, lengths: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Welch PSD (Hann, 2048, half overlap), averaged over contiguous windows."""
    from scipy import signal as sps

    parts, start = [], 0
    for n in lengths or [len(z)]:
        seg = z[start : start + n]
        start += n
        if len(seg) >= 64:
            parts.append(seg)
    if not parts:
        parts = [z]
    nper = min(2048, min(len(s) for s in parts))
    psds = []
    for seg in parts:
        f, p = sps.welch(seg, fs=fs, window="hann", nperseg=nper, return_onesided=False, detrend=False)
        psds.append(p * len(seg))
    order = np.argsort(f)
    return f[order], (np.sum(psds, axis=0) / sum(len(s) for s in parts))[order]


def _relative_db(f: np.ndarray, p: np.ndarray, bw: float) -> np.ndarray:
    band = np.abs(f) <= bw / 2
    ref = np.mean(p[band]) if band.any() and np.mean(p[band]) > 0 else np.max(p)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(np.maximum(p, 0) / ref)


def _spectrum(ax: Axes, data: RunData, t: np.ndarray, y: np.ndarray, raw: Any) -> None:
    m = data.metrics
    fs = finite(m.get("fs")) or 800e6
    bw = finite(m.get("bw")) or finite((data.config.get("options") or {}).get("bw")) or 200e6
    ax.set_title("output spectrum (Welch, Hann), relative to the channel", fontsize=10)
    traces = []
    if raw is not None:
        acpr = finite(m.get("acpr_dbc_no_dpd"))
        label = "no predistortion" + (f" (ACPR {acpr:.1f} dBc)" if acpr is not None else "")
        traces.append((label, _welch(raw[1], fs, raw[2]), dict(color="tab:red", lw=1.0)))
    acpr = finite(m.get("acpr_dbc"))
    label = "with predistortion" + (f" (ACPR {acpr:.1f} dBc)" if acpr is not None else "")
    traces.append((label, _welch(y, fs), dict(color="tab:green", lw=1.0)))
    own = _own_acpr(t, fs, bw)
    label = "target" + (f" (the signal's own ACPR {own:.1f} dBc)" if own is not None else "")
    traces.append((label, _welch(t, fs), dict(color="black", lw=0.9, ls="--", zorder=5)))
    outputs, peak = [], -np.inf
    for label, (f, p), style in traces:
        db = _relative_db(f, p, bw)
        ax.plot(f / 1e6, db, label=label, **style)
        ok = db[np.isfinite(db)]
        peak = max(peak, float(ok.max(initial=-np.inf)))
        if style["color"] != "black":  # the measured outputs set the floor; a clean target may lie below
            outputs.append(ok)
    vals = np.concatenate(outputs) if outputs else np.zeros(0)
    if vals.size and np.isfinite(peak):
        floor = float(np.percentile(vals, 0.5))
        ax.set_ylim(floor - 15.0, peak + 3.0)  # room below the floor for the legend
    for edge in (-bw / 2e6, bw / 2e6):
        ax.axvline(edge, color="0.6", ls=":", lw=1)
    ax.set_xlim(-fs / 2e6, fs / 2e6)
    ax.set_xlabel("frequency (MHz)")
    ax.set_ylabel("PSD relative to the in-band mean (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower center", framealpha=0.9)


def _own_acpr(t: np.ndarray, fs: float, bw: float) -> float | None:
    """The target's own ACPR: no output can be cleaner than the signal it is asked for."""
    from hwloop.dpd.metrics import acpr_db

    try:
        v = acpr_db(np.stack([t.real, t.imag], axis=1), fs, bw)
    except Exception:  # a short or odd record: the legend says nothing rather than fail
        return None
    return v if np.isfinite(v) else None


def _thin(n: int) -> np.ndarray:
    return np.linspace(0, n - 1, min(n, MAX_POINTS)).astype(int)


def _am_pm(am: Axes, pm: Axes, curves: list[tuple[np.ndarray, np.ndarray, str, str]]) -> None:
    x_hi, y_hi, phases = 0.0, 0.0, []
    for x, y, label, color in curves:
        idx = _thin(len(x))
        xs, ys = x[idx], y[idx]
        ax_, ay_ = np.abs(xs), np.abs(ys)
        style = dict(s=3, alpha=0.3, color=color, edgecolors="none", label=label, rasterized=True)
        am.scatter(ax_, ay_, **style)
        x_hi, y_hi = max(x_hi, float(ax_.max(initial=0))), max(y_hi, float(ay_.max(initial=0)))
        keep = ax_ > PHASE_ABOVE * ax_.max(initial=0)
        ph = np.degrees(np.angle(ys[keep] / xs[keep]))
        pm.scatter(ax_[keep], ph, **style)
        phases.append(ph)
    am.set_xlim(0, 1.03 * x_hi or 1)
    am.set_ylim(0, 1.05 * y_hi or 1)
    every = np.concatenate(phases) if phases else np.zeros(0)
    if every.size:
        lo, hi = np.percentile(every, [0.5, 99.5])
        pad = max(0.15 * (hi - lo), 0.5)
        pm.set_ylim(lo - pad, hi + pad)
    pm.set_xlim(0, 1.03 * x_hi or 1)
    am.set_title("AM/AM", fontsize=10)
    pm.set_title(f"AM/PM (where |input| > {PHASE_ABOVE:g} of its peak)", fontsize=10)
    am.set_xlabel("|input| (drive, or target)")
    am.set_ylabel("|output| (or |drive| for the predistorter)")
    pm.set_xlabel("|input| (drive, or target)")
    pm.set_ylabel("phase(output / input), degrees")
    for ax in (am, pm):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best", markerscale=3, framealpha=0.85)
