"""Malformed invocations: one clear line on stderr, no traceback, exit 2 (usage) or 1 (runtime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hwloop
from hwloop.cli import cli
from hwloop.run import TrainOptions


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished tiny run, and a few malformed files next to it."""
    d = tmp_path_factory.mktemp("errors")
    run = d / "run"
    hwloop.train(
        "sim:tanh",
        strategy="ila",
        queries=200,
        seed=0,
        run_dir=run,
        options=TrainOptions(fit_steps=50, eval_targets=32, noise_repeats=16),
    )
    (d / "bad.toml").write_text("queries = [1,\n")
    (d / "unknown.toml").write_text("[train]\nquries = 5\n")
    np.save(d / "t3.npy", np.zeros((4, 3), np.float32))
    np.save(d / "tnan.npy", np.full((4, 1), np.nan, np.float32))
    (d / "not.npy").write_text("not numpy")
    np.savez(d / "mismatch.npz", x=np.zeros((40, 1)), y=np.zeros((30, 1)))
    np.savez(d / "noxy.npz", a=np.zeros((40, 1)))
    np.savez(d / "dims.npz", x=np.zeros((40, 2)), y=np.zeros((40, 2)))
    (d / "data.txt").write_text("x0,y0\n1,2\n")
    (d / "badrow.csv").write_text("x0,y0\n" + "0.1,0.2\n" * 20 + "0.1,oops\n")
    corrupt = d / "corrupt"
    corrupt.mkdir()
    (corrupt / "queries.sqlite").write_bytes(b"garbage" * 100)
    (corrupt / "config.toml").write_text("device = \n")
    noconf = d / "noconf"
    noconf.mkdir()
    badinv = d / "badinv"
    badinv.mkdir()
    (badinv / "inverse.keras").write_bytes(b"not a zip")
    (badinv / "device.json").write_text((run / "device.json").read_text())
    np.save(d / "m11.npy", np.ones((1, 1)))
    np.save(d / "half.npy", np.full((1, 1), 0.5))
    offline = d / "offline"
    hwloop.train(None, strategy="ila", run_dir=offline, options=TrainOptions(fit_steps=30, from_log=str(run)))
    return {"d": d, "run": run, "corrupt": corrupt, "noconf": noconf, "badinv": badinv, "offline": offline}


CASES: list[tuple[str, list[str], int, str]] = [
    ("resume an offline run", ["train", "--resume", "--out", "{offline}"], 2, "was trained offline"),
    ("unknown scheme", ["train", "--device", "nosuch:x"], 2, "unknown device scheme 'nosuch'"),
    ("bad parameter value", ["train", "--device", "sim:rapp?noise=loud"], 2, "not a valid float"),
    ("unknown parameter", ["probe", "--device", "sim:rapp?nosie=0.1"], 2, "unknown parameter 'nosie'"),
    ("negative noise", ["probe", "--device", "sim:rapp?noise=-1"], 2, "noise must be >= 0"),
    ("unknown simulator", ["train", "--device", "sim:nosuch"], 2, "unknown simulator 'nosuch'"),
    ("not a URI", ["probe", "--device", "::"], 2, "not a device URI"),
    ("unknown strategy", ["train", "--device", "sim", "--strategy", "magic"], 2, "'magic' is not one of"),
    ("budget too small", ["train", "--device", "sim", "--queries", "3"], 2, "3 is not in the range"),
    ("no device", ["train"], 2, "give --device URI"),
    ("zero rate", ["train", "--device", "sim", "--max-rate", "0"], 2, "--max-rate"),
    ("missing port", ["probe", "--device", "serial:///dev/ttyNOPE0"], 1, "/dev/ttyNOPE0: cannot open"),
    ("unknown command", ["nosuchcommand"], 2, "No such command"),
    ("missing config", ["probe", "--device", "sim", "--config", "{d}/none.toml"], 2, "does not exist"),
    ("bad TOML", ["probe", "--device", "sim", "--config", "{d}/bad.toml"], 2, "not valid TOML"),
    ("unknown TOML key", ["train", "--config", "{d}/unknown.toml"], 2, "unknown option(s) for train: quries"),
    (
        "apply: missing run",
        ["apply", "--run", "{d}/none", "--in", "{d}/t3.npy", "--out", "{d}/x.npy"],
        2,
        "does not exist",
    ),
    (
        "apply: wrong shape",
        ["apply", "--run", "{run}", "--in", "{d}/t3.npy", "--out", "{d}/x.npy"],
        2,
        "shape (n, 1)",
    ),
    (
        "apply: non-finite",
        ["apply", "--run", "{run}", "--in", "{d}/tnan.npy", "--out", "{d}/x.npy"],
        2,
        "non-finite",
    ),
    (
        "apply: not npy",
        ["apply", "--run", "{run}", "--in", "{d}/not.npy", "--out", "{d}/x.npy"],
        2,
        "is not a .npy array",
    ),
    (
        "apply: corrupted inverse",
        ["apply", "--run", "{badinv}", "--in", "{d}/t3.npy", "--out", "{d}/x.npy"],
        2,
        "cannot load the inverse",
    ),
    ("eval: other device", ["eval", "--run", "{run}", "--device", "sim:saleh_iq"], 2, "1->1 device"),
    (
        "log: corrupted run",
        ["log", "--run", "{corrupt}", "--export", "{d}/x.npz"],
        2,
        "not a readable query log",
    ),
    ("train over a run", ["train", "--device", "sim", "--out", "{run}"], 2, "already holds a run"),
    ("resume without out", ["train", "--resume"], 2, "--resume needs the run directory"),
    ("resume no config, no device", ["train", "--resume", "--out", "{noconf}"], 2, "holds no run yet"),
    ("resume corrupted", ["train", "--resume", "--out", "{corrupt}"], 2, "not valid TOML"),
    (
        "resume other budget",
        ["train", "--resume", "--out", "{run}", "--queries", "999"],
        2,
        "was started with --queries 200",
    ),
    ("data: missing file", ["train", "--from-data", "{d}/none.npz"], 2, "does not exist"),
    ("data: x/y mismatch", ["train", "--from-data", "{d}/mismatch.npz"], 2, "the same n"),
    ("data: no x, y", ["train", "--from-data", "{d}/noxy.npz"], 2, "arrays named 'x' and 'y'"),
    ("data: wrong type", ["train", "--from-data", "{d}/data.txt"], 2, "data files are .npz"),
    ("data: bad CSV row", ["train", "--from-data", "{d}/badrow.csv"], 2, "a CSV row is malformed"),
    (
        "data: other device",
        ["train", "--device", "sim", "--from-data", "{d}/dims.npz"],
        2,
        "holds 2->2 pairs, the device is 1->1",
    ),
    ("log and data", ["train", "--from-log", "{run}", "--from-data", "{d}/dims.npz"], 2, "not both"),
    ("serve: no transport", ["serve", "--device", "sim"], 2, "exactly one of --pty or --listen"),
    # contradictory or unsupported combinations: refused before anything is sent or written
    ("hold without init-from", ["train", "--device", "sim", "--hold", "0"], 2, "--hold needs --init-from"),
    ("hold: not indices", ["train", "--device", "sim", "--hold", "a,b"], 2, "--hold takes output indices"),
    (
        "mask for spsa",
        ["train", "--device", "sim", "--strategy", "spsa", "--mask", "{d}/m11.npy"],
        2,
        "--mask is not supported for spsa",
    ),
    ("mask of 0.5", ["train", "--device", "sim", "--mask", "{d}/half.npy"], 2, "0 and 1 only"),
    (
        "mask with memory",
        ["train", "--device", "sim:wh", "--mask", "{d}/m11.npy"],
        2,
        "not supported for a device with memory",
    ),
    (
        "hold with memory",
        ["train", "--device", "sim:wh", "--hold", "0", "--init-from", "{run}"],
        2,
        "memoryless devices only",
    ),
    (
        "heads from the CLI",
        ["train", "--device", "sim", "--hold-mechanism", "heads"],
        2,
        "'--hold-mechanism'",
    ),
    (
        "eval queries and targets",
        ["train", "--device", "sim", "--eval-queries", "100", "--eval-targets", "50"],
        2,
        "not both",
    ),
    (
        "spsa with memory",
        ["train", "--device", "sim:wh", "--strategy", "spsa"],
        2,
        "does not handle devices with memory",
    ),
    (
        "signal with spsa",
        ["train", "--device", "sim:pa_gmp", "--signal", "ofdm:n=4096", "--strategy", "spsa"],
        2,
        "spsa has none",
    ),
    (
        "signal on a 1-D device",
        ["train", "--device", "sim", "--signal", "ofdm:n=4096"],
        2,
        "needs an I/Q device",
    ),
    (
        "spsa with prior pairs",
        ["train", "--device", "sim", "--strategy", "spsa", "--from-log", "{run}"],
        2,
        "cannot join training for spsa",
    ),
    (
        "init-from other dims",
        ["train", "--device", "sim:saleh_iq", "--init-from", "{run}"],
        2,
        "inverts a 1->1 device",
    ),
    ("init-from other range", ["train", "--device", "sim:saleh", "--init-from", "{run}"], 2, "safe range"),
    (
        "resume with a new mask",
        ["train", "--resume", "--out", "{run}", "--mask", "{d}/m11.npy"],
        2,
        "was started with --mask",
    ),
    (
        "resume with init-from",
        ["train", "--resume", "--out", "{run}", "--init-from", "{run}"],
        2,
        "was started with --init-from",
    ),
    (
        "resume on another device",
        ["train", "--resume", "--out", "{run}", "--device", "sim:rapp"],
        2,
        "trained on another device",
    ),
    ("gain without a signal", ["train", "--device", "sim", "--gain", "2"], 2, "--gain would not act"),
    (
        "band without a signal",
        ["train", "--device", "sim", "--fs", "1e9", "--bw", "1e8"],
        2,
        "--fs, --bw would not act",
    ),
    ("memory depth, memoryless", ["train", "--device", "sim", "--memory-depth", "9"], 2, "has no memory"),
    ("tapped, memoryless", ["train", "--device", "sim", "--inverse", "tapped"], 2, "device with memory"),
    (
        "fit steps for the GMP",
        ["train", "--device", "sim:pa_gmp", "--signal", "ofdm:n=4096", "--fit-steps", "300"],
        2,
        "--fit-steps would not act",
    ),
    (
        "channels beyond fs",
        ["train", "--device", "sim:pa_gmp", "--signal", "ofdm:n=4096", "--fs", "500e6"],
        2,
        "do not fit at fs",
    ),
    ("offline with max rate", ["train", "--from-log", "{run}", "--max-rate", "10"], 2, "offline training"),
    (
        "holdout without a signal",
        ["train", "--device", "sim", "--holdout", "0.3"],
        2,
        "--holdout would not act",
    ),
    (
        "holdout with an eval signal",
        [
            "train",
            "--device",
            "sim:pa_gmp",
            "--signal",
            "ofdm:n=4096",
            "--eval-signal",
            "ofdm:n=4096,seed=2",
            "--holdout",
            "0.3",
        ],
        2,
        "--holdout would not act",
    ),
    (
        "cfr papr without cfr",
        ["train", "--device", "sim:pa_gmp", "--signal", "ofdm:n=4096", "--cfr-papr", "7"],
        2,
        "--cfr-papr would not act",
    ),
    (
        "log export to .txt",
        ["log", "--run", "{run}", "--export", "{d}/queries.txt"],
        2,
        "FILE.npz or FILE.csv",
    ),
]


@pytest.mark.parametrize(("what", "args", "code", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_one_clear_line_and_exit_code(
    env: dict[str, Path], what: str, args: list[str], code: int, fragment: str
) -> None:
    argv = [a.format(**env) for a in args]
    res = CliRunner().invoke(cli, argv)
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == code, (what, res.exit_code, res.stderr)
    assert len(lines) == 1, (what, res.stderr)
    assert lines[0].startswith("hwloop: error: ") and fragment in lines[0], (what, lines[0])
    assert "Traceback" not in res.output


def test_there_are_at_least_twenty_distinct_cases() -> None:
    assert len({c[0] for c in CASES}) >= 20
