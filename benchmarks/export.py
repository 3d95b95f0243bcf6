"""What exporting costs: closed-loop figures of every export against the float inverse it came from.

- GMP predistorters (``ila`` on ``sim:pa_gmp`` and ``sim:pa_wh``, seed 1,
  24,000 queries on ``ofdm:n=8192,papr=8,seed=3`` at gain 2) exported as C at
  16, 12 and 8 bits, scored on a held-out OFDM signal (``seed=11``, 16,384
  samples): ACPR, EVM, NMSE against the float predistorter, same evaluation.
- MLP inverses (``ila``, 5,000 queries, 4,000 fit steps) on ``sim:rapp``,
  ``sim:tanh`` and ``sim:saleh`` (noise 1e-3), and the tapped inverse on
  ``sim:wh`` (sequence ILA, 10,000 queries): C at 16/12/8 bits (16-bit input
  and output words), C at 8 bits with 8-bit words throughout, TFLite float16
  and full-integer int8; closed-loop NMSE on 2,000 reachable targets, on the
  noisy device and against the noise-free one.
- The on-board inverse: ILA (5,000 queries) against the ATmega328P firmware
  under simavr, exported as C at 16 and 12 bits, flashed with ``make
  INVERSE=...``; the closed loop on 1,000 noise-free reachable targets with
  the inverse on board against the float inverse on the host; flash, and
  wall time per sample under simavr.

Every evaluation is `hwloop.evaluate` as ``hwloop eval --exported`` runs it.

    python benchmarks/export.py [--only gmp,mlp,onboard]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load, machine, save, stamp

NAME = "export"
ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "drivers" / "firmware"
TRAIN_SIGNAL = "ofdm:bw=200e6,fs=800e6,n=8192,papr=8,seed=3"
HELD_SIGNAL = "ofdm:bw=200e6,fs=800e6,n=16384,papr=8,seed=11"
GAIN = 2.0
MLP_SIMS = {
    "rapp": "sim:rapp?noise=1e-3&seed=0",
    "tanh": "sim:tanh?noise=1e-3&seed=0",
    "saleh": "sim:saleh?noise=1e-3&seed=0",
    "wh": "sim:wh?noise=1e-3&seed=0",
}
ROOTS = [  # what the figures depend on: export and evaluation, the strategies that trained, the devices
    "hwloop.export.build",
    "hwloop.export.loaded",
    "hwloop.run",
    "hwloop.evaluate",
    "hwloop.strategies.ila",
    "hwloop.strategies.dpd",
    "hwloop.simulators.catalog",
    "hwloop.drivers.serial_device",
]
C_VARIANTS = {"c16": (16, 16), "c12": (12, 16), "c8": (8, 16), "c8/io8": (8, 8)}
TFLITE_KIND = {16: "float16", 8: "int8"}


def _evaluator(uri: str, signal: bool):
    """A function scoring one inverse on ``uri`` as ``hwloop eval`` does (fresh device each time)."""
    from hwloop.dpd.signals import load_signal
    from hwloop.evaluate import EvalBudget, evaluate, evaluate_signal
    from hwloop.metered import MeteredDevice
    from hwloop.registry import open_device

    budget = EvalBudget.for_run(4000, targets=None if signal else 2000)
    targets = GAIN * load_signal(HELD_SIGNAL) if signal else None

    def score(apply) -> dict:
        dev = open_device(uri)
        try:
            metered = MeteredDevice(dev, None, budget=0)
            if signal:
                ev = evaluate_signal(metered, apply, targets, budget, fs=800e6, bw=200e6, seed=1)
            else:
                ev = evaluate(metered, apply, budget, seed=1)
        finally:
            dev.close()
        keep = ("acpr_dbc", "evm_db", "nmse_db", "closed_loop_nmse_db", "closed_loop_nmse_clean_db")
        return {k: round(float(ev.scores[k]), 3) for k in keep if ev.scores.get(k) is not None}

    return score


def _exports(run: Path, tmp: Path, variants: dict) -> dict:
    """Export ``run`` as each variant: name -> (loaded export, manifest)."""
    from hwloop.export.build import export_run
    from hwloop.export.loaded import load_exported

    out = {}
    for name, (fmt, kw) in variants.items():
        d = tmp / name.replace("/", "_")
        m = export_run(run, fmt, d, **kw)
        target = d / m["models"][TFLITE_KIND[kw["bits"]]]["file"] if fmt == "tflite" else d
        out[name] = (load_exported(target), m)
    return out


def bench_gmp(tmp: Path) -> dict:
    import hwloop
    from hwloop.rundir import TrainOptions

    cells = {}
    for pa in ("pa_gmp", "pa_wh"):
        uri = f"sim:{pa}?seed=1"
        run = tmp / f"gmp_{pa}"
        t0 = time.perf_counter()
        opts = TrainOptions(signal=TRAIN_SIGNAL, gain=GAIN, fs=800e6, bw=200e6)
        hwloop.train(uri, strategy="ila", queries=24000, seed=0, run_dir=run, options=opts)
        score = _evaluator(uri, signal=True)
        inv = hwloop.load_inverse(run)
        cell = {"train_wall_s": round(time.perf_counter() - t0, 1), "float": score(inv.apply)}
        variants = {f"c{b}": ("c", {"bits": b}) for b in (16, 12, 8)}
        for name, (exp, m) in _exports(run, tmp / f"x_{pa}", variants).items():
            cell[name] = {**score(exp.apply), "terms": len(inv.model.cfg.terms()), "hash8": m["hash8"]}
        cells[pa] = cell
        print(pa, cell, flush=True)
    return cells


def bench_mlp(tmp: Path) -> dict:
    import hwloop
    from hwloop.rundir import TrainOptions

    cells = {}
    for sim, uri in MLP_SIMS.items():
        run = tmp / f"mlp_{sim}"
        queries = 10_000 if sim == "wh" else 5000
        hwloop.train(
            uri, strategy="ila", queries=queries, seed=0, run_dir=run, options=TrainOptions(fit_steps=4000)
        )
        inv = hwloop.load_inverse(run)
        score = _evaluator(uri, signal=False)
        cell = {"family": type(inv).__name__, "float": score(inv.apply)}
        variants = {n: ("c", {"bits": b, "io_bits": io}) for n, (b, io) in C_VARIANTS.items()}
        variants |= {"tflite/float16": ("tflite", {"bits": 16}), "tflite/int8": ("tflite", {"bits": 8})}
        for name, (exp, _) in _exports(run, tmp / f"x_{sim}", variants).items():
            cell[name] = score(exp.apply)
        cells[sim] = cell
        print(sim, cell, flush=True)
    return cells


def _make(build: Path, *args: str) -> None:
    for target, extra in ((FIRMWARE, list(args)), (FIRMWARE / "runner", [])):
        subprocess.run(
            ["make", "-s", "-C", str(target), f"BUILD={build}", *extra], check=True, capture_output=True
        )


def _board(build: Path):
    """Boot ``build``'s firmware under simavr; (process, pty path)."""
    log = build / "runner.out"
    fh = open(log, "wb")  # noqa: SIM115 - the runner writes to it for as long as it lives
    proc = subprocess.Popen([str(build / "hwloop-simavr"), str(build / "hwloop.elf")], stdout=fh, stderr=fh)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("PTY "):
                return proc, line.split(None, 1)[1].strip()
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"simavr did not start:\n{log.read_text()}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _query(build: Path, rows):
    import numpy as np

    from hwloop.drivers.serial_device import open_serial

    proc, pty = _board(build)
    try:
        dev = open_serial(f"serial://{pty}?timeout=10")
        try:
            t0 = time.perf_counter()
            y = dev.query(np.asarray(rows, np.float32)).astype(np.float64)
            return dev.info.firmware, y, time.perf_counter() - t0
        finally:
            dev.close()
    finally:
        _stop(proc)


def bench_onboard(tmp: Path) -> dict:
    import numpy as np

    import hwloop
    from hwloop.export.build import export_run
    from hwloop.export.loaded import load_exported
    from hwloop.metrics import nmse_db
    from hwloop.rundir import TrainOptions

    plain = tmp / "fw"
    _make(plain)
    proc, pty = _board(plain)
    run = tmp / "avr_run"
    try:
        res = hwloop.train(
            f"serial://{pty}",
            strategy="ila",
            queries=5000,
            seed=0,
            run_dir=run,
            options=TrainOptions(fit_steps=4000, eval_targets=500),
        )
    finally:
        _stop(proc)
    x0 = np.random.default_rng(7).uniform(-1, 1, (1000, 1))
    t = x0 / np.sqrt(np.sqrt(1.0 + x0**4))
    inv = hwloop.load_inverse(run)
    _, y, _ = _query(plain, np.concatenate([inv.apply(t), t]))
    out = {
        "train": {k: res.metrics[k] for k in ("closed_loop_nmse_db", "noise_floor_db", "queries_used")},
        "host_float_nmse_db": round(nmse_db(y[:1000], t), 3),
        "no_inverse_nmse_db": round(nmse_db(y[1000:], t), 3),
    }
    for bits in (16, 12):
        d = tmp / f"avr_c{bits}"
        m = export_run(run, "c", d, bits=bits)
        fw = tmp / f"fw_c{bits}"
        _make(fw, f"INVERSE={d / 'hwl_inv.h'}")
        size = subprocess.run(
            ["avr-size", str(fw / "hwloop.elf")], capture_output=True, text=True, check=True
        )
        text, data, bss = (int(v) for v in size.stdout.splitlines()[1].split()[:3])
        _, y_ref, _ = _query(plain, load_exported(d).apply(t))
        firmware, y_board, wall = _query(fw, t)
        out[f"c{bits}"] = {
            "firmware": firmware,
            "hash8": m["hash8"],
            "flash_bytes": text + data,
            "ram_static_bytes": data + bss,
            "host_export_nmse_db": round(nmse_db(y_ref, t), 3),
            "onboard_nmse_db": round(nmse_db(y_board, t), 3),
            "simavr_ms_per_sample": round(1000 * wall / len(t), 2),
        }
        print(bits, out[f"c{bits}"], flush=True)
    print("onboard", out, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="gmp,mlp,onboard", help="comma-separated parts: gmp, mlp, onboard")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    data = load(NAME) or {}
    parts = {"gmp": bench_gmp, "mlp": bench_mlp, "onboard": bench_onboard}
    with tempfile.TemporaryDirectory(prefix="hwloop-export-bench-") as tmp:
        for part in args.only.split(","):
            t0 = time.perf_counter()
            data[part] = parts[part](Path(tmp))
            data[f"{part}_wall_s"] = round(time.perf_counter() - t0, 1)
    data |= {**stamp(ROOTS), "machine": machine(), "command": "python benchmarks/export.py"}
    save(NAME, data)
    print(f"wrote benchmarks/results/{NAME}.json")


if __name__ == "__main__":
    main()
