"""Few-shot recalibration of a GMP predistorter from a parent run (``--signal S --init-from RUN``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tomllib
from click.testing import CliRunner

import hwloop
from hwloop.cli import cli
from hwloop.dpd.gmp import peak_limit
from hwloop.dpd.metrics import acpr_db, nmse_db
from hwloop.dpd.signals import cplx, iq, load_signal
from hwloop.errors import UsageError
from hwloop.rundir import TrainOptions
from hwloop.strategies.condition_model import ConditionedSurrogate, fit_base
from hwloop.strategies.dpd import training_stretch
from hwloop.strategies.recalibrate import steady_rows
from hwloop.strategies.registry import choose

SIGNAL = "ofdm:n=8192,papr=8,seed=3"


def answers(uri: str, x: np.ndarray) -> np.ndarray:
    dev = hwloop.open_device(uri)
    dev.reset()
    return cplx(dev.query(iq(x)))


@pytest.fixture(scope="module")
def base_model() -> tuple[object, np.ndarray]:
    """A forward GMP of sim:pa_wh fitted on two drives, and a third drive to test on."""
    sig = 0.8 * cplx(load_signal("ofdm:n=6000,papr=8,seed=11"))
    drives = [sig[:3000], sig[3000:] * 0.9]
    base, info = fit_base([(x, answers("sim:pa_wh?noise=0", x)) for x in drives])
    assert info["sequences"] == 2 and info["samples"] == 6000
    return base, 0.8 * cplx(load_signal("ofdm:n=3000,papr=8,seed=12"))


def test_the_model_columns_are_its_derivatives(base_model: tuple) -> None:
    """Every column of the Gauss-Newton system against a central finite difference."""
    base, x = base_model
    rng = np.random.default_rng(0)
    model = ConditionedSurrogate(base)
    for name in ("a", "b", "r", "m"):
        v = getattr(model, name)
        setattr(model, name, 0.02 * (rng.normal(size=v.shape) + 1j * rng.normal(size=v.shape)))
    x = x[:400]
    y0, cols = model._columns(x)
    np.testing.assert_allclose(y0, model(x), atol=1e-12)
    eps = 1e-6
    for j in rng.choice(cols.shape[1], 24, replace=False):
        d = np.zeros(cols.shape[1])
        d[j] = eps
        up, down = model.copy(), model.copy()
        up._step(d)
        down._step(-d)
        fd = (up(x) - down(x)) / (2 * eps)
        scale = max(np.max(np.abs(fd)), 1e-9)
        assert np.max(np.abs(fd - cols[:, j])) / scale < 1e-5, j


def test_a_condition_the_model_can_express_is_recovered(base_model: tuple) -> None:
    base, x = base_model
    rng = np.random.default_rng(1)
    truth = ConditionedSurrogate(base)
    truth.a[0], truth.b[0], truth.b[2] = -0.03, -0.05 + 0.02j, 0.01
    truth.m[1] = 0.01j  # an AM/PM
    truth.r[1] = 0.005
    drive = x * np.exp(1j * rng.uniform(0, 2 * np.pi))
    fitted = ConditionedSurrogate(base)
    info = fitted.fit([(drive[:1500], truth(drive[:1500]))])
    assert info["start_nmse_db"] > -30 and info["nmse_db"] < -70
    assert nmse_db(fitted(drive[1500:]), truth(drive[1500:]), 1.0) < -65  # rows it never saw


def test_the_corrected_model_follows_a_real_condition_change(base_model: tuple, tmp_path: Path) -> None:
    base, x = base_model
    hot = answers("sim:pa_wh?noise=1e-3&seed=2&temp=65", x[:1500])
    model = ConditionedSurrogate(base)
    info = model.fit([(x[:1500], hot)])
    clean = answers("sim:pa_wh?noise=0&temp=65", x[1500:])
    before, after = nmse_db(base(x[1500:]), clean, 1.0), nmse_db(model(x[1500:]), clean, 1.0)
    assert before > -30 and after < -50, (before, after)
    assert info["answers"] == 1500 and info["steps"]
    loaded = ConditionedSurrogate.load(model.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(loaded(x), model(x))
    assert loaded.info == model.info


def test_recalibration_keeps_rounds_by_trainings_rule() -> None:
    # one rule for every DPD round: ACPR first, then EVM, each up to its uncertainty (tests/test_dpd_judge.py)
    import hwloop.strategies.recalibrate as recal
    from hwloop.dpd import judge

    assert recal.keep_round is judge.keep_round and recal.judge is judge.judge
    stretch = training_stretch(load_signal(SIGNAL), 2048)
    ok = steady_rows(stretch)
    assert ok.sum() == 2048 - 16 * len(stretch.windows) and not ok[0]


def test_signal_with_init_from_runs_the_recalibration() -> None:
    assert choose("auto", stateful=True, signal=True, init_from=True) == "recalibrate"
    assert choose("auto", stateful=True, signal=True, init_from=True, inverse="gmp") == "recalibrate"
    for kwargs in ({"requested": "ila"}, {"requested": "auto", "inverse": "tapped"}):
        with pytest.raises(UsageError, match="recalibrates the parent's GMP predistorter"):
            choose(stateful=True, signal=True, init_from=True, **kwargs)
    with pytest.raises(UsageError, match="--hold"):
        choose("auto", stateful=True, signal=True, init_from=True, hold=True)


def run_cli(args: list[str]) -> dict:
    res = CliRunner().invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("recal") / "parent"
    m = run_cli(
        [
            "train",
            "--device",
            "sim:pa_wh?seed=1",
            "--signal",
            SIGNAL,
            "--gain",
            "2",
            "--queries",
            "20000",
            "--strategy",
            "ila",
            "--out",
            str(out),
        ]
    )
    return out, m


def score(uri: str, run: Path, t: np.ndarray) -> float:
    """ACPR of the noise-free amplifier driven by the run's predistorter on the targets t."""
    dev = hwloop.open_device(uri)
    x = hwloop.load_inverse(run).apply(t)
    return acpr_db(dev.clean_sequence(iq(peak_limit(cplx(x), 1.0))))


@pytest.mark.slow
def test_recalibrate_a_predistorter_at_a_new_condition(parent: tuple[Path, dict], tmp_path: Path) -> None:
    run, pm = parent
    hot = "sim:pa_wh?seed=1&temp=65"
    out = tmp_path / "recal"
    budget = pm["queries_used"] // 20  # 5 % of what the parent spent
    m = run_cli(
        [
            "train",
            "--device",
            hot,
            "--signal",
            SIGNAL,
            "--gain",
            "2",
            "--init-from",
            str(run),
            "--queries",
            str(budget),
            "--eval-queries",
            "4096",
            "--out",
            str(out),
        ]
    )
    assert m["strategy_run"] == "recalibrate" and m["queries_used"] <= budget
    assert m["parent_run"] == str(run) and m["recal_parent_queries"] == pm["queries_used"]
    assert m["recal_share_of_parent"] <= 0.05 and m["recal_model_from"] == "log"
    assert tomllib.loads((out / "config.toml").read_text())["parent_run"] == str(run)
    assert json.loads((out / "metrics.json").read_text())["parent_run"] == str(run)
    rounds = m["recal_rounds"]
    assert rounds[0]["what"] == "parent" and m["recal_kept_round"] == 1 and rounds[1]["kept"]
    assert rounds[1]["judge_nmse_db"] < rounds[0]["judge_nmse_db"] - 10  # the gain and the shape restored
    assert m["recal_model"]["nmse_db"] < m["recal_model"]["start_nmse_db"] - 15
    assert (out / "surrogate_gmp.npz").is_file()
    t = 2 * load_signal("ofdm:n=8192,papr=8,seed=4")  # a signal neither run trained on
    before, after = score(f"{hot}&noise=0", run, t), score(f"{hot}&noise=0", out, t)
    assert after < before - 3, (before, after)
    # a recalibrated run is a parent too: its corrected model is where the next one starts
    again = run_cli(
        [
            "train",
            "--device",
            "sim:pa_wh?seed=1&temp=75",
            "--signal",
            SIGNAL,
            "--gain",
            "2",
            "--init-from",
            str(out),
            "--queries",
            "1000",
            "--out",
            str(tmp_path / "again"),
        ]
    )
    assert again["recal_model_from"] == "model" and again["parent_run"] == str(out)


def test_a_memoryless_parent_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    opts = TrainOptions(fit_steps=50, eval_targets=32, noise_repeats=16)
    hwloop.train("sim:saleh_iq", strategy="ila", queries=300, run_dir=tmp_path / "p", options=opts)
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "--device",
            "sim:pa_wh",
            "--signal",
            SIGNAL,
            "--init-from",
            str(tmp_path / "p"),
            "--queries",
            "1000",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code == 2 and "recalibrates a GMP predistorter" in res.output
    assert not (tmp_path / "r" / "queries.sqlite").exists()
