"""DPD through the fake radio against the same training on its amplifier directly.

For each amplifier, the same `hwloop.train` (defaults: ``auto``, 20,000
training queries, seed 0, with ``--signal``) runs twice:

- ``direct``: on the amplifier device itself, targets the signal times G_d
  (its own output units);
- ``radio``: on ``bench:FILE.toml`` with a ``[radio]`` table, against a fake
  radio (`hwloop.simulators.fake_radio`, reached through libiio's own client
  and pyadi-iio) with a fresh instance of the same amplifier between its TX and
  RX: random integer and fractional delay and phase, a residual carrier offset,
  IQ imbalance (image 32 dB down), a -40 dBFS DC offset, 12-bit converters,
  -72 dBFS noise and a free-running capture start. Its output units are the
  ADC's samples over the session's small-signal gain, so its targets are the
  signal times G_r = G_d / |g|, g the amplifier's small-signal gain measured
  on it directly with the radio's own calibration signal: the same physical
  targets.

Each predistorter is then fed the held-out test signal at its trained gain
and the drive played into the amplifier directly (noise-free): ACPR (worse
adjacent channel), EVM and NMSE against the targets. The amplifiers:
``sim:pa_wh`` (noise 1e-3) on ``ofdm:n=16000,papr=8,seed=0`` / ``seed=1`` at
G_r = 0.8 (into compression), and the held-out neural APA model
(benchmarks/heldout_pa.py, noise 3e-4) on its own measured train / test
signals at G_d = 1, opened as a plugin device: this script registers the
``heldout:`` scheme in the ``hwloop.devices`` entry-point group, as a third-
party package would, and the fake radio gets it from `hwloop.open_device`.
Target: the radio within 1 dB ACPR of direct. Writes
``benchmarks/results/radio_dpd.json`` (stamped, benchmarks/provenance.py).

    python benchmarks/radio_dpd.py [--pas pa_wh,apa] [--queries 20000]

The radio is armed inside this process (HWLOOP_ALLOW_RF=1, operator
"benchmarks/radio_dpd.py"): it talks to the fake radio only. Its bench file
gives the watchdog its largest grace (``rf_grace_s = 0.8``): this measures DPD,
on a machine others may load, not the watchdog (tests/test_radio_interlock.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save, stamp

NAME = "radio_dpd"
ROOTS = [
    "hwloop.drivers.bench.radio_device",
    "hwloop.simulators.fake_radio.radio",
    "hwloop.strategies.dpd",
    "hwloop.run",
]
OFDM = {"train": "ofdm:n=16000,papr=8,seed=0", "test": "ofdm:n=16384,papr=8,seed=1", "fs": 800e6, "bw": 200e6}


def open_heldout(uri: str):
    """``heldout:NAME?noise=N&seed=S``: benchmarks/heldout_pa.py's model as a device (a plugin factory)."""
    from heldout_pa import HeldOutPA

    from hwloop.registry import Param, parse_params

    parts = urlsplit(uri)
    params = parse_params(parts.query, {"noise": Param(float, 3e-4), "seed": Param(int, 0)}, where="heldout")
    return HeldOutPA(parts.path or "apa", params["noise"], params["seed"])


def register_plugin(site: Path) -> None:
    """The ``heldout`` scheme in the ``hwloop.devices`` group, as an installed package declares it."""
    info = site / "hwloop_heldout_bench-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hwloop-heldout-bench\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[hwloop.devices]\nheldout = radio_dpd:open_heldout\n")
    sys.path.insert(0, str(site))


def small_signal_gain(dev) -> complex:
    """The amplifier's small-signal gain with the radio's own calibration signal (-20 dB, after a guard)."""
    from hwloop.drivers.bench.device import calibration_signal

    z = calibration_signal(4096, 0.1, 1.0)
    x = np.concatenate([np.zeros(256), z])
    dev.reset()
    y = dev.query(np.stack([x.real, x.imag], axis=1).astype(np.float32))
    y = y[:, 0].astype(np.float64) + 1j * y[:, 1]
    return complex(np.vdot(x, y) / np.vdot(x, x))


def signals(pa: str, tmp: Path) -> dict:
    """Train/test signals, the --signal value, fs and bw, and the direct gain G_d of an amplifier."""
    from hwloop.dpd.signals import load_signal

    if pa == "apa":
        from heldout_pa import signals as measured
        from heldout_pa import spec

        sig, meta = measured("apa"), spec("apa")
        path = tmp / "apa_train.npz"
        np.savez(path, x=sig["train"], fs=meta["fs"])
        return {"train": sig["train"], "test": sig["test"], "signal": str(path), "fs": meta["fs"],
                "bw": meta["bw"], "g_direct": 1.0, "uri": "heldout:apa?noise=3e-4&seed=0",
                "fresh": "heldout:apa?noise=3e-4&seed=7", "clean": "heldout:apa?noise=0&seed=5"}  # fmt: skip
    return {"train": load_signal(OFDM["train"]), "test": load_signal(OFDM["test"]), "signal": OFDM["train"],
            "fs": OFDM["fs"], "bw": OFDM["bw"], "g_radio": 0.8, "uri": f"sim:{pa}?noise=1e-3&seed=0",
            "fresh": f"sim:{pa}?noise=1e-3&seed=7", "clean": f"sim:{pa}?noise=0&seed=5"}  # fmt: skip


def score(clean_uri: str, inverse, test: np.ndarray, gain: float, fs: float, bw: float) -> dict:
    """The predistorter fed the test signal at its trained gain, the drive played into the clean amplifier."""
    import hwloop
    from hwloop.dpd.metrics import acpr_db, evm_db, nmse_db

    t = test * gain
    x = inverse.apply(t).astype(np.float32)
    dev = hwloop.open_device(clean_uri)
    x, clipped = dev.info.envelope.clip(x)
    dev.reset()
    y = dev.query(x)
    z, tz = y[:, 0] + 1j * y[:, 1], t[:, 0] + 1j * t[:, 1]
    return {
        "acpr_dbc": round(acpr_db(z, fs, bw), 2),
        "evm_db": round(evm_db(z, tz, None, fs, bw), 2),
        "nmse_db": round(nmse_db(z, tz, None), 2),
        "drive_peak": round(float(np.abs(x[:, 0] + 1j * x[:, 1]).max()), 4),
        "drive_clipped": int(clipped),
    }


def train(dev, sig: dict, gain: float, budget: int, run_dir: Path) -> tuple[dict, object]:
    import hwloop
    from hwloop.rundir import TrainOptions

    t0 = time.perf_counter()
    res = hwloop.train(dev, queries=budget, seed=0, run_dir=run_dir,
                       options=TrainOptions(signal=sig["signal"], gain=gain, bw=sig["bw"]))  # fmt: skip
    m = res.metrics
    keys = ("queries_used", "eval_queries", "acpr_dbc", "acpr_dbc_no_dpd", "evm_db", "nmse_db", "strategy")
    return {**{k: m.get(k) for k in keys}, "wall_s": round(time.perf_counter() - t0, 1)}, res.inverse


def run_pa(pa: str, budget: int, seed: int, tmp: Path) -> dict:
    import hwloop
    from hwloop.drivers.bench.device import open_bench
    from hwloop.simulators.fake_radio.radio import FakeRadio

    sig = signals(pa, tmp)
    g = small_signal_gain(hwloop.open_device(sig["uri"]))
    g_direct = sig.get("g_direct", sig.get("g_radio", 1.0) * abs(g))
    g_radio = g_direct / abs(g)
    direct, inv_d = train(hwloop.open_device(sig["uri"]), sig, g_direct, budget, tmp / f"{pa}_direct")
    direct["on_amplifier"] = score(sig["clean"], inv_d, sig["test"], g_direct, sig["fs"], sig["bw"])
    with FakeRadio(hwloop.open_device(sig["fresh"]), seed=seed) as fr:
        bench = tmp / f"{pa}_radio.toml"
        bench.write_text(fr.toml(rf_grace_s=0.8))  # DPD is measured here, not the watchdog: its largest grace
        os.environ.update(HWLOOP_ALLOW_RF="1", HWLOOP_OPERATOR="benchmarks/radio_dpd.py")
        dev = open_bench(f"bench:{bench}")
        try:
            radio, inv_r = train(dev, sig, g_radio, budget, tmp / f"{pa}_radio")
            cal = dev.calibration
        finally:
            dev.close()
        buffers = fr.buffers()
        path = fr.path
        fake = {"delay": path.delay, "cfo_hz": path.cfo_hz, "image_rejection_db": path.image_rejection_db,
                "dc_dbfs": path.dc_dbfs, "noise_dbfs": path.noise_dbfs}  # fmt: skip
    radio["on_amplifier"] = score(sig["clean"], inv_r, sig["test"], g_radio, sig["fs"], sig["bw"])
    diff = radio["on_amplifier"]["acpr_dbc"] - direct["on_amplifier"]["acpr_dbc"]
    return {
        "pa": sig["uri"],
        "signal": sig["signal"],
        "gain_direct": round(g_direct, 4),
        "gain_radio": round(g_radio, 4),
        "small_signal_gain_db": round(20 * np.log10(abs(g)), 3),
        "direct": direct,
        "radio": radio,
        "acpr_radio_minus_direct_db": round(diff, 3),
        "fake_radio": {k: round(float(v), 4) for k, v in fake.items()},
        "calibration": {
            "cfo_hz": round(cal["cfo_hz"], 2),
            "image_rejection_db": round(cal["image_rejection_db"], 2),
            "image_rejection_corrected_db": round(cal["image_rejection_corrected_db"], 2),
            "dc_dbfs": round(cal["dc_dbfs"], 2),
            "fraction_samples": round(cal["fraction"], 4),
            "snr_db": round(cal["snr_db"], 2),
        },
        "tx_buffers": len(buffers),
        "tx_max": {
            "peak_dbfs": round(max(b.peak_dbfs for b in buffers), 4),
            "rms_dbfs": round(max(b.rms_dbfs for b in buffers), 4),
            "papr_db": round(max(b.papr_db for b in buffers), 3),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pas", default="pa_wh,apa")
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0, help="seed of the fake radio's impairments")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        register_plugin(Path(tmp) / "site")
        cells = {pa: run_pa(pa, args.queries, args.seed, Path(tmp)) for pa in args.pas.split(",")}
    data = {
        "name": NAME,
        **stamp(ROOTS),
        "machine": machine(),
        "command": f"python benchmarks/radio_dpd.py --pas {args.pas} --queries {args.queries} "
        f"--seed {args.seed}",
        "target": "radio ACPR within 1 dB of the direct training (both fed the test signal at their trained "
        "gain, scored on the amplifier)",
        "cells": cells,
        "within_1db": all(c["acpr_radio_minus_direct_db"] <= 1.0 for c in cells.values()),
    }
    save(NAME, data)
    for pa, c in cells.items():
        d, r = c["direct"]["on_amplifier"]["acpr_dbc"], c["radio"]["on_amplifier"]["acpr_dbc"]
        print(f"{pa}: direct {d} dBc, radio {r} dBc (difference {c['acpr_radio_minus_direct_db']:+.2f} dB)")


if __name__ == "__main__":
    main()
