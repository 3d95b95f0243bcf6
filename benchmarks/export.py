"""What exporting costs: every export against the float inverse it came from, per family, width and device.

Device kinds, each trained as a user would and scored as ``hwloop eval --exported`` scores (same
evaluation for float and export, fresh device, seed 1), on the noisy device (noise 1e-3) and
against its noise-free twin (``clean``/``clean_sequence``), both columns:

- one output: MLP inverses (``ila``, 5,000 queries, 4,000 fit steps) of ``sim:rapp``, ``sim:saleh``,
  ``sim:tanh``;
- I/Q 2 -> 2, memoryless: held-out amplifiers (`heldout_iq`: modified Rapp with AM/PM, seeds 0 and 1;
  Ghorbani, seed 0; each behind an I/Q modulator with imbalance) and ``sim:saleh_iq``, trained by
  ``hwloop train``'s defaults (``auto``, 10,000 queries);
- 3 -> 3: ``sim:mimo3``, defaults;
- with memory: the tapped MLP of ``sim:wh`` (sequence ILA, 10,000 queries); GMP predistorters
  (``ila``) of ``sim:pa_gmp``, ``sim:pa_wh`` and ``sim:pa_wh?frac_delay=0.5&nmp_zero=1.5``
  (``pa_nmp``, not minimum phase: its predistorter has leading taps, its export their latency),
  24,000 queries on ``ofdm:n=8192,papr=8,seed=3`` at gain 2, scored on ``seed=11``; of the held-out
  APA model (`heldout_pa`, noise 3e-4; 20,000 queries on its measured train split, scored on the
  test split); the GRU inverse of ``sim:pa_gmp``
  (``--inverse gru``, same signal and budget).

Exports: C with ``w`` weight bits, ``a`` activation bits and 16-bit words (``c16``, ``c12``,
``w8a16``, ``c8`` = w8a8), 8-bit words throughout (``c8/io8``), ``c8+qat`` (w8a8 after
quantisation-aware fine-tuning with 2,000 device queries, memoryless MLPs), TFLite float16,
int16x8 (int8 weights, int16 activations) and full int8, and on the held-out I/Q amplifiers full
int8 converted from words fine-tuned with 8 bits throughout (``tflite/int8+qat``, 2,000 queries);
GMP tables and the GRU at 16/12/10/8 bits.
The on-board inverse: ILA against the ATmega328P firmware under simavr, exported at 16 and 12 bits
and built in; closed loop on 1,000 noise-free reachable targets, flash and wall time per sample.

    python benchmarks/export.py [--only gmp,gru,mlp,onboard] [--cells rapp,heldout_rapp_pm/0,...]
                                [--runs DIR]   (DIR keeps the trained runs for the next invocation)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load, machine, save, stamp
from export_onboard import bench_onboard, missing_toolchain

NAME = "export"
TRAIN_SIGNAL = "ofdm:bw=200e6,fs=800e6,n=8192,papr=8,seed=3"
HELD_SIGNAL = "ofdm:bw=200e6,fs=800e6,n=16384,papr=8,seed=11"
GAIN = 2.0
APA_NOISE = 3e-4  # -61 dB below the output RMS, as the simulators' default noise
QAT_QUERIES = 2000
QAT_KEEP = ("queries_used", "distill_before_db", "distill_after_db", "first_nmse_db", "chosen_nmse_db")
ROOTS = [  # what the figures depend on: export and evaluation, the strategies that trained, the devices
    "hwloop.export.build",
    "hwloop.export.loaded",
    "hwloop.export.qat",
    "hwloop.run",
    "hwloop.evaluate",
    "hwloop.strategies.ila",
    "hwloop.strategies.auto",
    "hwloop.strategies.dpd",
    "hwloop.strategies.sequence",
    "hwloop.simulators.catalog",
    "hwloop.drivers.serial_device",
]
ONE = {"strategy": "ila", "queries": 5000, "fit_steps": 4000}
DEFAULTS: dict = {}  # hwloop train's own: auto, 10,000 queries
MLP_CELLS = {  # name: (device, training, kind)
    "rapp": ("sim:rapp?noise=1e-3&seed=0", ONE, "one output"),
    "saleh": ("sim:saleh?noise=1e-3&seed=0", ONE, "one output"),
    "tanh": ("sim:tanh?noise=1e-3&seed=0", ONE, "one output"),
    "heldout_rapp_pm/0": (("rapp_pm", 0), DEFAULTS, "I/Q 2->2"),
    "heldout_rapp_pm/1": (("rapp_pm", 1), DEFAULTS, "I/Q 2->2"),
    "heldout_ghorbani/0": (("ghorbani", 0), DEFAULTS, "I/Q 2->2"),
    "saleh_iq": ("sim:saleh_iq?noise=1e-3&seed=0", DEFAULTS, "I/Q 2->2"),
    "mimo3": ("sim:mimo3?noise=1e-3&seed=0", DEFAULTS, "3->3"),
    "wh": ("sim:wh?noise=1e-3&seed=0", {"strategy": "ila", "queries": 10000, "fit_steps": 4000}, "memory"),
}
C_VARIANTS = {
    "c16": {"bits": 16},
    "c12": {"bits": 12},
    "w8a16": {"weight_bits": 8, "act_bits": 16},
    "c8": {"bits": 8},
    "c8/io8": {"bits": 8, "io_bits": 8},
}
TFLITE = {"tflite/float16": {"bits": 16}, "tflite/int16x8": {"weight_bits": 8, "act_bits": 16}}
TFLITE["tflite/int8"] = {"bits": 8}
WIDTHS = (16, 12, 10, 8)
SIGNAL_PAS = {  # GMP predistorters trained on the OFDM signal; pa_nmp is not minimum phase (leading taps)
    "pa_gmp": "sim:pa_gmp?seed=1",
    "pa_wh": "sim:pa_wh?seed=1",
    "pa_nmp": "sim:pa_wh?seed=1&frac_delay=0.5&nmp_zero=1.5",
}


def device(spec):
    """A fresh device: a URI, or a held-out I/Q amplifier (shape, seed)."""
    from hwloop.registry import open_device

    if isinstance(spec, tuple):
        from heldout_iq import heldout_iq

        return heldout_iq(spec[0], seed=spec[1])
    return open_device(spec)


def _keep(scores: dict) -> dict:
    keys = ("acpr_dbc", "evm_db", "nmse_db", "closed_loop_nmse_db", "closed_loop_nmse_clean_db")
    return {k: round(float(scores[k]), 3) for k in keys if scores.get(k) is not None}


def mlp_scorer(spec):
    """Score an inverse on ``spec`` as ``hwloop eval`` does: 2,000 targets, noisy and noise-free."""
    from hwloop.evaluate import EvalBudget, evaluate
    from hwloop.metered import MeteredDevice

    budget = EvalBudget.for_run(4000, targets=2000)

    def score(apply) -> dict:
        dev = device(spec)
        try:
            ev = evaluate(MeteredDevice(dev, None, budget=0), apply, budget, seed=1)
        finally:
            dev.close()
        return _keep(ev.scores)

    return score


def signal_scorer(spec, targets, fs: float, bw: float, clean_dev):
    """Score a predistorter on a signal: the noisy device as ``hwloop eval --signal`` does, and the
    noise-free drive-to-output map of ``clean_dev`` on the same drive."""
    import numpy as np

    from hwloop.dpd.metrics import dpd_report
    from hwloop.evaluate import EvalBudget, evaluate_signal
    from hwloop.metered import MeteredDevice

    budget = EvalBudget.for_run(4000)

    def score(apply) -> dict:
        dev = device(spec) if not callable(spec) else spec()
        try:
            metered = MeteredDevice(dev, None, budget=0)
            ev = evaluate_signal(metered, apply, targets, budget, fs=fs, bw=bw, seed=1)
            x = metered.safe(np.asarray(apply(targets), np.float32))
        finally:
            dev.close()
        y = clean_dev.clean_sequence(x)
        return {"noisy": _keep(ev.scores), "clean": dpd_report(y, targets, fs=fs, bw=bw, gain=1.0)}

    return score


def _run(runs: Path, name: str, train) -> Path:
    """The run ``name`` in ``runs``, trained by ``train(path)`` unless an earlier invocation left it."""
    path = runs / name.replace("/", "_")
    if not (path / "metrics.json").is_file():
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        train(path)
    return path


def _export(run: Path, out: Path, fmt: str, **kw):
    from hwloop.export.build import export_run
    from hwloop.export.loaded import load_exported

    t0 = time.perf_counter()
    m = export_run(run, fmt, out, force=True, **kw)
    kinds = m.get("models") or {}
    target = out / next(iter(kinds.values()))["file"] if fmt == "tflite" else out
    return load_exported(target, run=run), m, round(time.perf_counter() - t0, 1)


def bench_mlp(tmp: Path, runs: Path, cells: list[str], done=None) -> dict:
    import hwloop
    from hwloop.export.build import QAT
    from hwloop.rundir import TrainOptions

    out_cells = {}
    for name in cells:
        spec, training, kind = MLP_CELLS[name]
        kw = dict(training)
        strategy, queries = kw.pop("strategy", "auto"), kw.pop("queries", 10_000)

        def train(path: Path, spec=spec, strategy=strategy, queries=queries, kw=kw) -> None:
            hwloop.train(
                device(spec),
                strategy=strategy,
                queries=queries,
                seed=0,
                run_dir=path,
                options=TrainOptions(**kw),
            )

        run = _run(runs, f"mlp_{name}", train)
        inv = hwloop.load_inverse(run)
        score = mlp_scorer(spec)
        cell = {"kind": kind, "family": type(inv).__name__, "float": score(inv.apply)}
        for var, widths in C_VARIANTS.items():
            exp, m, wall = _export(run, tmp / "x", "c", **widths)
            cell[var] = {**score(exp.apply), "export_s": wall}
        tuned = {"c8+qat": "c"} if name != "wh" else {}
        tuned |= {"tflite/int8+qat": "tflite"} if name.startswith("heldout_") else {}
        for var, fmt in tuned.items():
            copy = tmp / f"qat_{name.replace('/', '_')}"  # fine-tuning logs queries: tune a copy of the run
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(run, copy)
            exp, m, wall = _export(copy, tmp / "x", fmt, bits=8, qat=QAT(QAT_QUERIES, device(spec)))
            q = m["qat"]
            cell[var] = {**score(exp.apply), "export_s": wall, **{k: q[k] for k in QAT_KEEP}}
            cell[var]["best_round"] = q["rounds"]["best_round"]
        for var, widths in TFLITE.items():
            exp, m, wall = _export(run, tmp / "t", "tflite", **widths)
            cell[var] = {**score(exp.apply), "export_s": wall}
        out_cells[name] = cell
        print(name, cell, flush=True)
        if done is not None:
            done(name, cell)  # saved as it is measured: a later cell's failure keeps it
    return out_cells


def _apa(tmp: Path):
    """The held-out APA model's pieces: train file, test targets, spec, device factories."""
    import numpy as np
    from heldout_pa import HeldOutPA, signals, spec

    meta = spec("apa")
    sig = signals("apa")
    train_file = tmp / "apa_train.npz"
    np.savez(train_file, x=sig["train"], fs=meta["fs"])
    return (
        train_file,
        sig["test"].astype(np.float32),
        meta,
        lambda seed: HeldOutPA("apa", APA_NOISE, seed=seed),
    )


def bench_gmp(tmp: Path, runs: Path, with_gru: bool = False) -> dict:
    import hwloop
    from hwloop.dpd.signals import load_signal
    from hwloop.registry import open_device
    from hwloop.rundir import TrainOptions

    cells = {}
    targets = (GAIN * load_signal(HELD_SIGNAL)).astype("float32")
    plans = []
    if not with_gru:
        for pa, uri in SIGNAL_PAS.items():
            opts = TrainOptions(signal=TRAIN_SIGNAL, gain=GAIN, fs=800e6, bw=200e6)
            scorer = signal_scorer(uri, targets, 800e6, 200e6, open_device(f"{uri}&noise=0"))
            plans.append((pa, uri, 24000, opts, scorer))
        train_file, test, meta, apa = _apa(tmp)
        opts = TrainOptions(signal=str(train_file), bw=meta["bw"])
        scorer = signal_scorer(lambda: apa(5), test, meta["fs"], meta["bw"], apa(5))
        plans.append(("heldout_apa", apa(0), 20000, opts, scorer))
    else:
        opts = TrainOptions(signal=TRAIN_SIGNAL, gain=GAIN, fs=800e6, bw=200e6, inverse="gru")
        scorer = signal_scorer(
            "sim:pa_gmp?seed=1", targets, 800e6, 200e6, open_device("sim:pa_gmp?seed=1&noise=0")
        )
        plans.append(("gru_pa_gmp", "sim:pa_gmp?seed=1", 24000, opts, scorer))
    for name, dev, queries, opts, score in plans:

        def train(path: Path, dev=dev, queries=queries, opts=opts) -> None:
            hwloop.train(dev, strategy="ila", queries=queries, seed=0, run_dir=path, options=opts)

        t0 = time.perf_counter()
        run = _run(runs, name, train)
        inv = hwloop.load_inverse(run)
        cell = {"train_wall_s": round(time.perf_counter() - t0, 1), "float": score(inv.apply)}
        cell["lookahead"] = int(getattr(inv, "latency", 0))  # leading taps: the export's latency
        for b in WIDTHS:
            exp, m, wall = _export(run, tmp / f"x_{name}", "c", bits=b)
            cell[f"c{b}"] = {**score(exp.apply), "hash8": m["hash8"], "export_s": wall}
        cells[name] = cell
        print(name, cell, flush=True)
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--only", default="gmp,gru,mlp,onboard", help="comma-separated parts: gmp, gru, mlp, onboard"
    )
    ap.add_argument("--cells", default=",".join(MLP_CELLS), help="mlp: which devices")
    ap.add_argument("--runs", default=None, help="keep trained runs here and reuse them")
    args = ap.parse_args()
    if "onboard" in args.only.split(",") and (lacking := missing_toolchain()):
        ap.error(f"{lacking} (or leave it out: --only gmp,gru,mlp)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    data = load(NAME) or {}

    def keep_cell(name: str, cell: dict) -> None:
        data["mlp"] = {**(data.get("mlp") or {}), name: {**cell, **stamp(ROOTS)}}
        save(NAME, {**data, "machine": machine(), "command": "python benchmarks/export.py"})

    with tempfile.TemporaryDirectory(prefix="hwloop-export-bench-") as tmp:
        runs = Path(args.runs) if args.runs else Path(tmp) / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        parts = {
            "gmp": lambda: bench_gmp(Path(tmp), runs),
            "gru": lambda: bench_gmp(Path(tmp), runs, with_gru=True),
            "mlp": lambda: bench_mlp(Path(tmp), runs, args.cells.split(","), keep_cell),
            "onboard": lambda: bench_onboard(Path(tmp)),
        }
        for part in args.only.split(","):
            t0 = time.perf_counter()
            cells = parts[part]()
            if part == "mlp":  # a sweep of some cells keeps the others' figures (each stamped)
                data["mlp"] = {
                    **(data.get("mlp") or {}),
                    **{k: {**v, **stamp(ROOTS)} for k, v in cells.items()},
                }
            else:
                data[part] = {**cells, **stamp(ROOTS)}
            data[f"{part}_wall_s"] = round(time.perf_counter() - t0, 1)
    data |= {**stamp(ROOTS), "machine": machine(), "command": "python benchmarks/export.py"}
    save(NAME, data)
    print(f"wrote benchmarks/results/{NAME}.json")


if __name__ == "__main__":
    main()
