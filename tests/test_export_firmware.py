"""The device corrects itself: an inverse trained on the simulated ATmega328P, exported and applied on board.

1. `hwloop.train` (ILA) against the plain firmware under simavr, over its pty.
2. `hwloop export --format c` of that run, and the firmware rebuilt with
   ``make INVERSE=.../hwl_inv.h``: INFO_OK names the export (``1.0+inv:<hash8>``).
3. The same noise-free reachable targets t = F(x0) three ways: the float
   inverse on the host driving the plain board, the export's numpy reference
   on the host driving it, and the board with the inverse on board taking t
   itself. The on-board closed loop must be within 3 dB of the host's.
4. A noise-free build shows the board computes exactly the export's words:
   its answers are F(x) for x the reference's drive words, to float32 rounding.

Needs gcc-avr, avr-libc, simavr and libsimavr-dev (CI installs them).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from export_fixtures import cli_json, trained
from serial_fixtures import (
    FIRMWARE,
    FIRMWARE_TOOLS,
    build_firmware,
    require_toolchain,
    start_runner,
    stop_process,
)

import hwloop
from hwloop.drivers.serial_device import open_serial
from hwloop.export.loaded import load_exported
from hwloop.metrics import nmse_db
from hwloop.rundir import TrainOptions

ONBOARD_BAR_DB = 3.0
TARGETS = 800


def rapp(x: np.ndarray) -> np.ndarray:
    """The firmware's sensor without its noise."""
    return x / np.sqrt(np.sqrt(1.0 + x**4))


def rebuild(tmp: Path, header: Path, *extra: str) -> Path:
    """The firmware with an exported inverse (and the simavr runner) in a directory of its own."""
    require_toolchain(*FIRMWARE_TOOLS, simavr_headers=True)
    for target, args in ((FIRMWARE, [f"INVERSE={header}", *extra]), (FIRMWARE / "runner", [])):
        res = subprocess.run(
            ["make", "-C", str(target), f"BUILD={tmp}", *args], capture_output=True, text=True, timeout=300
        )
        assert res.returncode == 0, f"make in {target} failed:\n{res.stdout}\n{res.stderr}"
    size = subprocess.run(["avr-size", str(tmp / "hwloop.elf")], capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in size.stdout.splitlines()[1].split()[:3])
    assert text + data <= 32 * 1024 - 512 and data + bss <= 2048 - 512, (
        size.stdout
    )  # flash, and RAM with stack room
    return tmp


def ask(build: Path, tmp: Path, rows: np.ndarray) -> tuple[str, np.ndarray]:
    """Boot ``build`` under simavr, send ``rows`` as QUERY inputs; (firmware string, answers)."""
    proc, pty = start_runner(build, tmp)
    try:
        dev = open_serial(f"serial://{pty}?timeout=10")
        try:
            return dev.info.firmware, dev.query(rows.astype(np.float32)).astype(np.float64)
        finally:
            dev.close()
    finally:
        stop_process(proc)


@pytest.mark.slow
def test_the_board_applies_its_exported_inverse_within_3_db_of_the_host(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    plain = build_firmware(tmp_path_factory)
    run = tmp_path / "run"
    proc, pty = start_runner(plain, tmp_path)
    try:
        hwloop.train(
            f"serial://{pty}",
            strategy="ila",
            queries=3000,
            seed=0,
            run_dir=run,
            options=TrainOptions(fit_steps=3000, eval_targets=500),
        )
    finally:
        stop_process(proc)
    export = tmp_path / "export"
    m = cli_json("export", "--run", str(run), "--format", "c", "--bits", "16", "--out", str(export))
    onboard = rebuild(tmp_path / "fw-inv", export / "hwl_inv.h")

    x0 = np.random.default_rng(7).uniform(-1, 1, (TARGETS, 1))
    t = rapp(x0)
    inv, exp = hwloop.load_inverse(run), load_exported(export)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    _, y_host = ask(plain, tmp_path / "a", np.concatenate([inv.apply(t), exp.apply(t), t]))
    fw, y_board = ask(onboard, tmp_path / "b", t)
    host, host_ref = nmse_db(y_host[:TARGETS], t), nmse_db(y_host[TARGETS : 2 * TARGETS], t)
    bare, board = nmse_db(y_host[2 * TARGETS :], t), nmse_db(y_board, t)
    print(
        f"closed loop: host float {host:.2f} dB, host export {host_ref:.2f} dB, on board {board:.2f} dB, "
        f"no inverse {bare:.2f} dB ({fw})"
    )
    assert fw == f"1.0+inv:{m['hash8']}"
    assert host < -40 and bare > -30
    assert board - host <= ONBOARD_BAR_DB
    assert abs(board - host_ref) <= 1.0  # the same words, only the noise differs

    # Noise-free: the board's answers are the sensor at exactly the reference's drive words.
    quiet = rebuild(tmp_path / "fw-quiet", export / "hwl_inv.h", "NOISE_SIGMA=0")
    _, y_quiet = ask(quiet, tmp_path / "c", t[:200])
    x_words = exp.apply(t[:200]).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(y_quiet, rapp(x_words), rtol=0, atol=3e-7)


def test_the_firmware_refuses_an_inverse_it_cannot_hold(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """A tapped (stateful) export does not build into the firmware: one #error, not a wrong device."""
    require_toolchain(*FIRMWARE_TOOLS)  # else make's "avr-gcc: No such file" would pass for the #error
    export = tmp_path / "export"
    cli_json(
        "export", "--run", str(trained("tapped", tmp_path_factory)), "--format", "c", "--out", str(export)
    )
    res = subprocess.run(
        ["make", "-C", str(FIRMWARE), f"BUILD={tmp_path / 'fw'}", f"INVERSE={export / 'hwl_inv.h'}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode != 0 and "must be a memoryless 1 -> 1 export" in res.stderr, res.stderr
