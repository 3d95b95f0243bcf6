"""The recurrent (GRU) inverse for devices with memory: streaming, save/load, training, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hwloop
from hwloop.cli import cli
from hwloop.errors import ShapeError, UsageError
from hwloop.strategies.registry import choose


def _inverse(low: float = -1.0, high: float = 1.0, seed: int = 0):
    """An untrained GRU inverse (random weights) whose standardisation comes from random sequences."""
    from hwloop.inverses.gru import GRUInverse, build_gru_model

    rng = np.random.default_rng(seed)
    t = [rng.normal(0, 0.5, (400, 2)).astype(np.float32)]
    x = [rng.normal(0, 0.5, (400, 2)).astype(np.float32)]
    model = build_gru_model(t, x, units=8, seed=seed)
    lo, hi = np.full(2, low, np.float32), np.full(2, high, np.float32)
    info = {"name": "test", "in_dim": 2, "out_dim": 2, "low": lo.tolist(), "high": hi.tolist()}
    return GRUInverse(model, lo, hi, info)


def test_stream_gives_the_samples_of_apply_and_carries_the_state() -> None:
    inv = _inverse()
    t = np.random.default_rng(5).normal(0, 0.5, (300, 2)).astype(np.float32)
    whole = inv.apply(t)
    assert whole.shape == (300, 2) and inv.in_dim == 2 and inv.out_dim == 2
    s = inv.stream()
    pieces = [s.send(t[a:b]) for a, b in [(0, 1), (1, 38), (38, 38), (38, 138), (138, 300)]]
    assert [len(p) for p in pieces] == [1, 37, 0, 100, 162]
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-5)
    # The state matters: the second half from a zero state is not the second half of the whole.
    fresh = inv.stream().send(t[150:])
    assert np.max(np.abs(fresh[:20] - whole[150:170])) > 1e-3
    # Like apply on the tail, a stream restarted from zero (a reset) agrees with it.
    np.testing.assert_allclose(fresh, inv.apply(t[150:]), atol=1e-5)


def test_apply_clips_to_the_safe_range_and_checks_shapes() -> None:
    inv = _inverse(low=-0.05, high=0.02)
    t = np.random.default_rng(1).normal(0, 2.0, (200, 2)).astype(np.float32)
    x = inv.apply(t)
    assert x.min() >= -0.05 and x.max() <= 0.02
    assert np.any(x == -0.05) and np.any(x == 0.02)
    assert inv.apply(np.zeros((0, 2))).shape == (0, 2)
    with pytest.raises(ShapeError):
        inv.apply(np.zeros((10, 3)))
    with pytest.raises(ShapeError):
        inv.stream().send(np.full((4, 2), np.nan))


def test_save_and_load_in_a_fresh_interpreter(tmp_path: Path) -> None:
    inv = _inverse(seed=3)
    run = tmp_path / "run"
    run.mkdir()
    inv.save(run)
    memory = json.loads((run / "device.json").read_text())["inverse_memory"]
    assert memory == {"kind": "gru", "units": 8}
    t = np.random.default_rng(2).normal(0, 0.5, (120, 2)).astype(np.float32)
    np.save(tmp_path / "t.npy", t)
    code = (
        "import sys, numpy as np, hwloop; "
        f"inv = hwloop.load_inverse({str(run)!r}); "
        f"np.save({str(tmp_path / 'x.npy')!r}, inv.apply(np.load({str(tmp_path / 't.npy')!r}))); "
        "print(type(inv).__name__, inv.in_dim, inv.out_dim)"
    )
    root = str(Path(hwloop.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "GRUInverse 2 2"
    np.testing.assert_allclose(np.load(tmp_path / "x.npy"), inv.apply(t), atol=1e-6)


def test_windows_stay_inside_one_sequence() -> None:
    from hwloop.inverses.gru import _window_starts

    starts, at_reset = _window_starts([10, 3, 6], 4)
    # Sequence 0 holds rows 0..9, sequence 1 (too short) rows 10..12, sequence 2 rows 13..18.
    assert starts.tolist() == [0, 1, 2, 3, 4, 5, 6, 13, 14, 15]
    assert at_reset.tolist() == [True] + [False] * 6 + [True, False, False]
    with pytest.raises(UsageError):
        _window_starts([3, 2], 4)


def test_choose_refuses_gru_where_no_strategy_trains_it() -> None:
    assert choose("auto", stateful=True, inverse="gru") == "sequence"
    assert choose("ila", stateful=True, inverse="gru") == "sequence"
    for kwargs, fragment in [
        ({"requested": "auto", "stateful": False}, "device with memory"),
        ({"requested": "surrogate", "stateful": True, "signal": True}, "sequence ILA"),
        ({"requested": "surrogate", "stateful": True}, "sequence ILA"),
        ({"requested": "auto", "stateful": False, "offline": True}, "device with memory"),
    ]:
        with pytest.raises(UsageError, match=fragment):
            choose(**kwargs, inverse="gru")
    with pytest.raises(UsageError, match="unknown inverse family"):
        choose("auto", stateful=True, inverse="lstm")
    # With a signal: the GMP by default or when named, the tapped and GRU inverses by sequence ILA.
    assert choose("auto", stateful=True, signal=True) == "dpd"
    assert choose("surrogate", stateful=True, signal=True, inverse="gmp") == "dpd"
    assert choose("iila", stateful=True, signal=True, inverse="gru") == "sequence"
    assert choose("ila", stateful=True, signal=True, inverse="tapped") == "sequence"
    with pytest.raises(UsageError, match="give --signal"):
        choose("auto", stateful=True, inverse="gmp")
    with pytest.raises(UsageError, match="direct learning on a signal is the GMP"):
        choose("surrogate", stateful=True, signal=True, inverse="tapped")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--device", "sim:rapp"], "device with memory"),
        (["--device", "sim:pa_gmp", "--signal", "ofdm:n=4096", "--strategy", "surrogate"], "sequence ILA"),
    ],
)
def test_cli_refuses_gru_in_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    out = tmp_path / "r"
    res = CliRunner().invoke(cli, ["train", *args, "--inverse", "gru", "--out", str(out)])
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("hwloop: error: ") and fragment in lines[0], lines
    assert not out.exists()


def test_train_gru_on_a_device_with_memory(tmp_path: Path) -> None:
    from hwloop.inverses.gru import GRUInverse

    out = tmp_path / "wh"
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "--device",
            "sim:wh",
            "--inverse",
            "gru",
            "--queries",
            "6000",
            "--fit-steps",
            "600",
            "--json",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["strategy_run"] == "sequence" and m["inverse_kind"] == "gru" and m["queries_used"] == 6000
    assert m["closed_loop_nmse_db"] < -20, m["closed_loop_nmse_db"]
    assert json.loads((out / "metrics.json").read_text())["inverse_kind"] == "gru"
    assert 'inverse = "gru"' in (out / "config.toml").read_text()
    inv = hwloop.load_inverse(out)
    assert isinstance(inv, GRUInverse) and inv.in_dim == 1 and inv.out_dim == 1


def test_a_finished_gru_run_resumed_is_answered_from_its_log(tmp_path: Path) -> None:
    """The refinement round's queries come from the trained GRU: they repeat only if training does."""
    from hwloop.rundir import TrainOptions
    from hwloop.simulators.catalog import make_sim

    opts = TrainOptions(inverse="gru", fit_steps=100, eval_targets=200, noise_repeats=16)
    first = hwloop.train("sim:wh", strategy="auto", queries=1200, seed=1, run_dir=tmp_path, options=opts)
    dev = make_sim("wh")  # the same device (a run is bound to it), opened anew
    again = hwloop.train(dev, run_dir=tmp_path, resume=True)
    assert dev.stats.queries == 0
    assert again.metrics["replayed_rows"] == first.metrics["queries_used"] + first.metrics["eval_queries"]
    assert again.metrics["closed_loop_nmse_db"] == first.metrics["closed_loop_nmse_db"]
