"""Harness overhead: a whole `hwloop train` against plain Keras doing the same fit.

hwloop wraps a regression fit in a device driver, a query log, a progress
bar, closed-loop evaluation and saving; this measures what that costs on an
instant simulator, where the fit dominates. Both sides run as fresh
subprocesses, so TensorFlow's import counts on both:

* hwloop: ``hwloop train --device "sim:tanh?noise=1e-3" --strategy ila --out DIR --json``
  (10,000 queries, 8,000 Adam steps of batch 256, evaluation, saving);
* plain Keras: the same 10,000 (y, x) pairs (read from the first hwloop
  run's query log), the same model (`hwloop.inverses.models.build_regressor`), and
  ``model.compile(optimizer=Adam(CosineDecay(2e-2, 8000, alpha=1e-3)), loss="mse")``
  + ``model.fit`` on a repeated, shuffled ``tf.data`` pipeline with
  ``steps_per_epoch * epochs`` = 8,000 steps of batch 256.

A third side, for reference only, is hwloop's own fit loop bare
(`hwloop.inverses.models.fit_regression` on the same pairs and model, nothing else):
hwloop / bare is what the harness adds around its fit (CLI, device, query
log, evaluation, saving), whereas hwloop / plain Keras also folds in the
difference between the two fit loops.

The sides alternate, ``--repeats`` times each; the figure is the median wall
of each side and the ratio of the medians. Results go to
benchmarks/results/overhead.json.

``--profile`` runs the CLI once more under cProfile and adds where its time
goes (cumulative seconds of the harness's main parts) to the same file.

    python benchmarks/overhead.py [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load, machine, save, stamp, today

NAME = "overhead"
DEVICE = "sim:tanh?noise=1e-3"
STEPS = 8000  # the CLI's --fit-steps default; ILA fits once
BATCH = 256  # FitConfig.batch
LR, LR_FINAL = 2e-2, 2e-5  # FitConfig.lr, FitConfig.lr_final
STEPS_PER_EPOCH = 100


# (label, file suffix, function) whose cumulative time the profile reports, outermost first.
PROFILE_PARTS = (
    ("whole CLI process", "bin/hwloop", "<module>"),
    ("TensorFlow import (cli._needs_tensorflow)", "hwloop/cli.py", "_needs_tensorflow"),
    ("hwloop.run.train", "hwloop/run.py", "train"),
    ("  fit (models.fit_regression, 8,000 steps)", "hwloop/models.py", "fit_regression"),
    ("  device queries + query log (MeteredDevice.query)", "hwloop/metered.py", "query"),
    ("    of which SQLite commits (QueryLog.append)", "hwloop/querylog.py", "append"),
    ("  closed-loop evaluation (evaluate.evaluate)", "hwloop/evaluate.py", "evaluate"),
    ("  saving the inverse (inverse.save_model)", "hwloop/inverse.py", "save_model"),
)


def display_cmd() -> str:
    """The CLI command as a user types it, for the page."""
    return f'hwloop train --device "{DEVICE}" --strategy ila --out DIR --json'


def hwloop_cmd(out: Path) -> list[str]:
    """The CLI exactly as a user types it (the console script beside this interpreter)."""
    exe = Path(sys.executable).parent / "hwloop"
    return [str(exe), "train", "--device", DEVICE, "--strategy", "ila", "--out", str(out), "--json"]


def plain_cmd(pairs: Path) -> list[str]:
    return [sys.executable, __file__, "--plain-keras", str(pairs)]


def bare_cmd(pairs: Path) -> list[str]:
    return [sys.executable, __file__, "--bare-fit", str(pairs)]


def timed(cmd: list[str]) -> tuple[float, str]:
    """Wall time of a subprocess from spawn to exit, and its stdout."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, proc.stdout


def export_pairs(run_dir: Path, dest: Path) -> int:
    """The training pairs of an hwloop run, from its query log, for the plain-Keras side."""
    import numpy as np

    from hwloop.querylog import open_run_log

    with open_run_log(run_dir) as qlog:
        x, y = qlog.arrays("train")
    np.savez(dest, x=x, y=y)
    return len(x)


def plain_keras(pairs: Path) -> None:
    """Child process: the plain-Keras fit; prints its own timings as one JSON line."""
    t0 = time.perf_counter()
    import keras
    import numpy as np
    import tensorflow as tf

    from hwloop.inverses.models import build_regressor

    t_import = time.perf_counter() - t0
    data = np.load(pairs)
    x, y = data["x"].astype(np.float32), data["y"].astype(np.float32)
    keras.utils.set_random_seed(0)
    model = build_regressor(y, x, seed=0, name="inverse")
    schedule = keras.optimizers.schedules.CosineDecay(LR, decay_steps=STEPS, alpha=LR_FINAL / LR)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    ds = (
        tf.data.Dataset.from_tensor_slices((y, x))
        .shuffle(len(x), seed=0)
        .repeat()
        .batch(BATCH, drop_remainder=True)
    )
    t1 = time.perf_counter()
    hist = model.fit(ds, steps_per_epoch=STEPS_PER_EPOCH, epochs=STEPS // STEPS_PER_EPOCH, verbose=0)
    t_fit = time.perf_counter() - t1
    print(
        json.dumps(
            {
                "import_s": round(t_import, 2),
                "fit_s": round(t_fit, 2),
                "steps": int(model.optimizer.iterations.numpy()),
                "final_loss": float(hist.history["loss"][-1]),
                "jit_compile": bool(model.jit_compile),
                "total_in_process_s": round(time.perf_counter() - t0, 2),
            }
        )
    )


def bare_fit(pairs: Path) -> None:
    """Child process: hwloop's fit loop alone on the same pairs; prints its timings as one JSON line."""
    t0 = time.perf_counter()
    import keras
    import numpy as np

    from hwloop.inverses.models import FitConfig, build_regressor, fit_regression

    t_import = time.perf_counter() - t0
    data = np.load(pairs)
    x, y = data["x"].astype(np.float32), data["y"].astype(np.float32)
    keras.utils.set_random_seed(0)
    model = build_regressor(y, x, seed=0, name="inverse")
    t1 = time.perf_counter()
    curve = fit_regression(model, y, x, FitConfig(steps=STEPS, batch=BATCH, lr=LR, lr_final=LR_FINAL), seed=0)
    t_fit = time.perf_counter() - t1
    print(
        json.dumps(
            {
                "import_s": round(t_import, 2),
                "fit_s": round(t_fit, 2),
                "steps": STEPS,
                "final_loss": curve[-1],
                "total_in_process_s": round(time.perf_counter() - t0, 2),
            }
        )
    )


def profile() -> list[dict]:
    """One CLI run under cProfile: cumulative seconds of PROFILE_PARTS (inflated a little by profiling)."""
    import pstats

    with tempfile.TemporaryDirectory() as tmp:
        prof = Path(tmp) / "cli.prof"
        exe = hwloop_cmd(Path(tmp) / "run")
        timed([sys.executable, "-m", "cProfile", "-o", str(prof), *exe])
        stats = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    parts = []
    for label, suffix, func in PROFILE_PARTS:
        cum = max(
            (v[3] for (fname, _, name), v in stats.items() if fname.endswith(suffix) and name == func),
            default=None,
        )
        if cum is not None:
            parts.append({"part": label, "s": round(cum, 2)})
    return parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--plain-keras", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--bare-fit", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--profile", action="store_true", help="also profile one CLI run (cProfile)")
    ap.add_argument("--profile-only", action="store_true", help="only add the profile to existing results")
    args = ap.parse_args()
    if args.profile_only:
        data = load(NAME)
        data.update(profile=profile(), profile_date=today())
        save(NAME, data)
        print(data["profile"])
        return
    if args.plain_keras is not None:
        plain_keras(args.plain_keras)
        return
    if args.bare_fit is not None:
        bare_fit(args.bare_fit)
        return
    hw_walls: list[float] = []
    plain_walls: list[float] = []
    bare_walls: list[float] = []
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        pairs = Path(tmp) / "pairs.npz"
        for i in range(args.repeats):
            out = Path(tmp) / f"run{i}"
            wall, stdout = timed(hwloop_cmd(out))
            m = json.loads(stdout)
            if i == 0:
                n_pairs = export_pairs(out, pairs)
            hw_walls.append(wall)
            runs.append(
                {
                    "side": "hwloop",
                    "wall_s": round(wall, 2),
                    "train_wall_s": m["wall_s"],
                    "device_s": m.get("device_s"),
                    "closed_loop_nmse_db": m["closed_loop_nmse_db"],
                }
            )
            print(runs[-1], flush=True)
            wall, stdout = timed(plain_cmd(pairs))
            plain_walls.append(wall)
            runs.append({"side": "plain_keras", "wall_s": round(wall, 2), **json.loads(stdout)})
            print(runs[-1], flush=True)
            wall, stdout = timed(bare_cmd(pairs))
            bare_walls.append(wall)
            runs.append({"side": "bare_fit", "wall_s": round(wall, 2), **json.loads(stdout)})
            print(runs[-1], flush=True)
    hw, plain = statistics.median(hw_walls), statistics.median(plain_walls)
    bare = statistics.median(bare_walls)
    save(
        NAME,
        {
            "machine": machine(),
            **stamp(["hwloop.cli.app", "hwloop.run", "hwloop.strategies.ila", "hwloop.simulators.catalog"]),
            "command": "python benchmarks/overhead.py",
            "hwloop_command": display_cmd(),
            "device": DEVICE,
            "pairs": n_pairs,
            "steps": STEPS,
            "batch": BATCH,
            "repeats": args.repeats,
            "hwloop_median_s": round(hw, 2),
            "plain_keras_median_s": round(plain, 2),
            "ratio": round(hw / plain, 3),
            "bare_fit_median_s": round(bare, 2),
            "ratio_vs_bare_fit": round(hw / bare, 3),
            "runs": runs,
            **({"profile": profile(), "profile_date": today()} if args.profile else {}),
        },
    )
    print(f"hwloop {hw:.1f} s, plain Keras {plain:.1f} s (ratio {hw / plain:.2f}), bare fit {bare:.1f} s")


if __name__ == "__main__":
    main()
