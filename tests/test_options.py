"""One rule for options, whatever their source: an option that would not act is refused.

Every combination is tried from each source a user has: the command line,
an ``HWLOOP_*`` environment variable, a ``--config`` TOML file, and
``hwloop.train``'s keywords. Each refusal is exit 2 (a `UsageError` in
Python), one line naming the option and where it came from, and nothing is
written: no run directory, no query sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import hwloop
from hwloop.cli import cli
from hwloop.errors import UsageError
from hwloop.rundir import TrainOptions

SIGNAL = ["--device", "sim:pa_gmp", "--signal", "ofdm:n=4096"]
TRAIN_KEYWORDS = ("strategy", "queries", "mask", "hold", "init_from")  # hwloop.train's own keywords


@dataclass(frozen=True)
class Case:
    """A combination: the other settings on the command line, the option that would not act
    (given from the source under test), and a fragment of the reason."""

    name: str
    base: list[str]
    option: str
    value: Any
    why: str
    python: dict = field(default_factory=dict)  # the base settings as hwloop.train keywords


CASES = [
    Case("gain without a signal", ["--device", "sim:tanh"], "gain", 3, "no --signal", {"device": "sim:tanh"}),
    Case("cfr papr without a signal", ["--device", "sim:tanh"], "cfr_papr", 5, "no --signal"),
    Case("memory depth, memoryless", ["--device", "sim:tanh"], "memory_depth", 9, "has no memory"),
    Case(
        "eval targets with a signal",
        SIGNAL,
        "eval_targets",
        100,
        "scored on a stretch",
        {"device": "sim:pa_gmp", "signal": "ofdm:n=4096"},
    ),
    Case("mask offline", ["--from-data", "{pairs}"], "mask", "{mask}", "offline", {"from_data": "{pairs}"}),
    Case(
        "mask with hold",
        ["--device", "sim:mimo3", "--init-from", "{parent}", "--hold", "0"],
        "mask",
        "{mask}",
        "--init-from starts from",
        {"device": "sim:mimo3", "init_from": "{parent}", "hold": [0]},
    ),
    Case(
        "mask with init-from",
        ["--device", "sim:mimo3", "--init-from", "{parent}"],
        "mask",
        "{mask}",
        "--init-from starts from",
        {"device": "sim:mimo3", "init_from": "{parent}"},
    ),
    Case(
        "memory depth with a GRU",
        ["--device", "sim:wh", "--inverse", "gru"],
        "memory_depth",
        9,
        "GRU inverse carries its own state",
        {"device": "sim:wh", "inverse": "gru"},
    ),
    Case(
        "cfr papr with cfr none",
        [*SIGNAL, "--cfr", "none"],
        "cfr_papr",
        6,
        "--cfr is none",
        {"device": "sim:pa_gmp", "signal": "ofdm:n=4096", "cfr": "none"},
    ),
    # found beside the listed ones: settings no code path reads for the strategy that runs
    Case("queries offline", ["--from-data", "{pairs}"], "queries", 500, "offline", {"from_data": "{pairs}"}),
    Case("memory depth offline", ["--from-data", "{pairs}"], "memory_depth", 3, "offline"),
    Case(
        "a strategy beside init-from",
        ["--device", "sim:mimo3", "--init-from", "{parent}"],
        "strategy",
        "ila",
        "calibrates a new unit one way",
        {"device": "sim:mimo3", "init_from": "{parent}"},
    ),
    Case(
        "iila beside hold",
        ["--device", "sim:mimo3", "--init-from", "{parent}", "--hold", "0"],
        "strategy",
        "iila",
        "one inverse model fit",
        {"device": "sim:mimo3", "init_from": "{parent}", "hold": [0]},
    ),
]
for _c in CASES:  # the cases without their own Python spelling take the first one's device
    if not _c.python:
        object.__setattr__(
            _c, "python", {"device": "sim:tanh"} if "--device" in _c.base else {"from_data": "{pairs}"}
        )

SOURCES = ("flag", "env", "config", "python")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("options")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 3)).astype(np.float32)
    np.savez(d / "pairs.npz", x=x, y=np.tanh(x))
    np.save(d / "mask.npy", np.eye(3, dtype=np.int64))
    (d / "parent").mkdir()  # the refusal comes before the parent run is read
    return {
        "pairs": str(d / "pairs.npz"),
        "mask": str(d / "mask.npy"),
        "parent": str(d / "parent"),
        "dir": str(d),
    }


def _fill(v: Any, files: dict[str, str]) -> Any:
    if isinstance(v, str):
        return v.format(**files)
    if isinstance(v, list):
        return [_fill(i, files) for i in v]
    return v


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _toml(v: Any) -> str:
    return f'"{v}"' if isinstance(v, str) else str(v)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_an_option_that_would_not_act_is_refused_from_every_source(
    case: Case, source: str, files: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    value = _fill(case.value, files)
    if source == "python":
        kw = {k: _fill(v, files) for k, v in case.python.items()}
        device = kw.pop("device", None)
        direct = {k: kw.pop(k) for k in list(kw) if k in TRAIN_KEYWORDS}
        opts = {**kw}
        if case.option in TRAIN_KEYWORDS:
            direct[case.option] = np.load(value) if case.option == "mask" else value
        else:
            opts[case.option] = value
        with pytest.raises(UsageError) as err:
            hwloop.train(device, run_dir=out, options=TrainOptions(**opts), **direct)
        text = str(err.value)
        assert case.why in text, text
        if case.option != "strategy":  # choose() refuses a strategy, and spells it as the CLI does
            assert f"{case.option} would not act" in text and "passed to hwloop.train" in text, text
    else:
        args = ["train", *_fill(case.base, files), "--out", str(out)]
        env: dict[str, str] = {}
        if source == "flag":
            args += [_flag(case.option), str(value)]
            where = "on the command line"
        elif source == "env":
            env[f"HWLOOP_TRAIN_{case.option.upper()}"] = str(value)
            where = f"in HWLOOP_TRAIN_{case.option.upper()}"
        else:
            cfg = tmp_path / "hw.toml"
            cfg.write_text(f"[train]\n{case.option} = {_toml(value)}\n")
            args += ["--config", str(cfg)]
            where = f"in config file {cfg}"
        res = CliRunner().invoke(cli, args, env=env)
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 2, (res.exit_code, res.output)
        assert len(lines) == 1 and lines[0].startswith("hwloop: error: "), res.stderr
        named = f"{_flag(case.option)} would not act" if case.option != "strategy" else "--strategy"
        assert named in lines[0] and case.why in lines[0], lines[0]
        if case.option != "strategy":  # choose() refuses a strategy; it knows no sources
            assert where in lines[0], lines[0]
    assert not out.exists()  # refused before anything was written


def test_a_config_file_value_that_acts_is_taken(files: dict[str, str], tmp_path: Path) -> None:
    """The same file-given settings run where they act: a gain with a signal is in the plan."""
    cfg = tmp_path / "hw.toml"
    cfg.write_text('[train]\ndevice = "sim:tanh"\nfit_steps = 123\nqueries = 700\n')
    res = CliRunner().invoke(cli, ["train", "--config", str(cfg), "--print-config"])
    assert res.exit_code == 0, res.output
    assert "fit_steps = 123" in res.stdout and "queries = 700" in res.stdout


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["--gain", "2"], {}, "--gain would not act"),
        ([], {"HWLOOP_EVAL_FS": "1e9"}, "--fs would not act"),
        (["--signal", "ofdm:n=4096", "--eval-targets", "100"], {}, "--eval-targets would not act"),
        (["--config", "{cfg}"], {}, "--bw would not act"),
    ],
)
def test_eval_refuses_options_that_would_not_act(
    args: list[str], env: dict[str, str], fragment: str, tmp_path: Path
) -> None:
    cfg = tmp_path / "e.toml"
    cfg.write_text("[eval]\nbw = 1e8\n")
    argv = ["eval", "--run", str(tmp_path / "no-run"), "--device", "sim:tanh"]
    res = CliRunner().invoke(cli, [*argv, *[a.format(cfg=cfg) for a in args]], env=env)
    assert res.exit_code == 2 and fragment in res.stderr, res.output
    assert "does not exist" not in res.stderr  # refused before the run is read


def test_farm_refuses_before_any_unit_starts(tmp_path: Path) -> None:
    from hwloop.farm.units import plan_farm

    with pytest.raises(UsageError, match=r"gain would not act.*passed to hwloop.run_farm"):
        plan_farm(["sim:tanh"], tmp_path / "f", False, {"gain": 3.0})
    res = CliRunner().invoke(
        cli, ["farm", "--device", "sim:tanh", "--out", str(tmp_path / "f")], env={"HWLOOP_FARM_GAIN": "3"}
    )
    assert res.exit_code == 2 and "--gain would not act" in res.stderr and "HWLOOP_FARM_GAIN" in res.stderr
    assert not (tmp_path / "f").exists()
