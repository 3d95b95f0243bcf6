"""What ``hwloop probe --device bench:...`` adds for a bench: delay, gain, noise floor, compression.

- delay: the calibration capture's total shift (the free-running capture
  start plus the path's delay, modulo the ARB period: it changes with every
  capture) and its fractional part (the path's, fixed for the session);
- gain: small-signal power gain and phase from the generator's output to the
  analyser's input, from the calibration capture;
- noise floor: the analyser's noise per sample (spread across the captured
  periods), in dBm and below the calibration signal;
- compression: AM/AM of a slow magnitude ramp up to the peak limit (shaped
  so its RMS stays under the RMS limit), gain relative to small signal at
  ten input levels, the gain at the peak and the 1 dB compression input if
  reached.

A radio reports the same in dBFS at its DAC and ADC (``gain_db`` from DAC full
scale to ADC full scale, at the file's TX and RX gains), and what its receiver
adds: ``dc_offset_dbfs``, ``image_rejection_db`` (before the session's
correction) and ``image_rejection_corrected_db``, ``cfo_hz`` (the residual
carrier offset) and ``headroom_db`` (ADC full scale above the small-signal
output at the TX peak limit).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

RAMP = 4096


def _ramp(peak: float, rms: float) -> np.ndarray:
    """0 .. peak as (t/T)^q, q the smallest whole power whose RMS peak/sqrt(2q+1) stays under ``rms``."""
    q = max(1, math.ceil(((peak / (0.99 * rms)) ** 2 - 1) / 2))
    return peak * np.linspace(0.0, 1.0, RAMP) ** q


def probe_report(dev: Any) -> dict[str, Any]:
    """The bench's own measurements, merged into the probe's report."""
    cal = dev.calibration
    env = dev.info.envelope
    r = _ramp(env.peak, env.rms)
    x = np.stack([r, np.zeros_like(r)], axis=1).astype(np.float32)
    dev.reset()
    y = dev.query(x)
    mag = np.hypot(y[:, 0], y[:, 1]).astype(np.float64)
    radio = hasattr(dev.cfg, "radio")
    fs_dbm = 0.0 if radio else dev.cfg.signal.full_scale_dbm
    unit = "dbfs" if radio else "dbm"
    use = r > 0.05 * env.peak
    gain_db = 20 * np.log10(np.maximum(mag[use], 1e-12) / r[use])
    levels = fs_dbm + 20 * np.log10(r[use])
    edges = np.linspace(levels.min(), levels.max(), 11)
    am_am = []
    for lo, hi in itertools.pairwise(edges):
        sel = (levels >= lo) & (levels <= hi)
        if sel.any():
            am_am.append([round(float(levels[sel].mean()), 3), round(float(gain_db[sel].mean()), 3)])
    below = np.nonzero(gain_db < -1.0)[0]
    report = {
        "delay_samples": round(float(cal["shift_samples"]), 4),
        "delay_fraction_samples": round(float(cal["fraction"]), 4),
        "gain_db": round(float(cal["gain_db"]), 3),
        "phase_deg": round(float(cal["phase_deg"]), 2),
        f"noise_floor_{unit}": round(float(cal[f"noise_{unit}"]), 2),
        "noise_floor_dbc": None if cal["snr_db"] is None else round(-float(cal["snr_db"]), 2),
        "compression_db_at_peak": round(float(np.mean(gain_db[-max(1, len(gain_db) // 50) :])), 3),
        f"p1db_input_{unit}": round(float(levels[below[0]]), 2) if len(below) else None,
        f"am_am_{unit}_db": am_am,
    }
    if radio:
        keys = ("dc_dbfs", "image_rejection_db", "image_rejection_corrected_db", "cfo_hz", "headroom_db")
        report.update({k: round(float(cal[k]), 2) for k in keys})
        report["dc_offset_dbfs"] = report.pop("dc_dbfs")
    else:
        report["reference_level_dbm"] = cal["ref_level_dbm"]
    return {"bench": report}
