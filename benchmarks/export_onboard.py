"""The on-board part of benchmarks/export.py: an inverse trained against the simulated ATmega328P,
exported at 16 and 12 bits, built into its firmware and measured there.

ILA (5,000 queries) against the firmware under simavr; the closed loop on 1,000 noise-free
reachable targets with the inverse on board, against the float inverse on the host driving the
plain firmware and against the export's numpy reference on the host; flash, static RAM, and wall
time per sample under simavr (a simulator's pace, not a cycle count).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "drivers" / "firmware"
TOOLS = ("make", "cc", "avr-gcc", "avr-objcopy", "avr-size")
PACKAGES = "make gcc gcc-avr avr-libc simavr libsimavr-dev libelf-dev"  # what .ci/run installs


def missing_toolchain() -> str | None:
    """What the on-board part lacks to build the firmware and its simavr runner, as one line, or
    None: checked before the benchmark's hour of other parts, not at its end."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not Path("/usr/include/simavr/sim_avr.h").exists():
        missing.append("the simavr headers")
    return f"the on-board part needs {', '.join(missing)}: apt-get install {PACKAGES}" if missing else None


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
        _, y_ref, _ = _query(plain, load_exported(d, run=run).apply(t))
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
