"""Where the noise enters, told from a surrogate's residuals: auto's rule for devices with input noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hwloop
from hwloop.inverses.models import FitConfig
from hwloop.querylog import open_run_log
from hwloop.run import TrainOptions
from hwloop.simulators.catalog import make_sim
from hwloop.strategies.joint import fit_surrogate
from hwloop.strategies.noise import split_noise


def _split(noise: float, input_noise: float, name: str = "tanh"):
    dev = make_sim(name, noise=noise, input_noise=input_noise, seed=1)
    rng = np.random.default_rng(0)
    x = dev.info.uniform(rng, 2000)
    y = dev.query(x)
    sur, _ = fit_surrogate(x, y, FitConfig(steps=800), seed=0)
    return split_noise(x, y, sur)


def test_input_noise_is_told_from_output_noise() -> None:
    inp = _split(noise=1e-3, input_noise=0.02)
    assert inp.input_referred and inp.input_share > 0.8
    assert inp.input_var == pytest.approx(0.02**2, rel=0.3)  # the declared input noise, per input
    assert inp.pairs == 2000
    out = _split(noise=0.02, input_noise=0.0)
    assert not out.input_referred and abs(out.input_share) < 0.3
    assert out.output_var == pytest.approx(0.02**2, rel=0.3)


def test_a_noise_free_device_is_not_flagged() -> None:
    split = _split(noise=0.0, input_noise=0.0, name="cubic")
    assert not split.input_referred


@pytest.mark.parametrize(("uri", "path"), [("sim:rapp?input_noise=0.02", "ila"), ("sim:rapp", "refine")])
def test_auto_spends_its_budget_as_ila_where_the_noise_is_input_referred(
    uri: str, path: str, tmp_path: Path
) -> None:
    opts = TrainOptions(fit_steps=400, eval_targets=200, noise_repeats=64)
    m = hwloop.train(uri, strategy="auto", queries=4000, run_dir=tmp_path, options=opts).metrics
    assert m["auto_path"] == path and m["noise_split"]["input_referred"] is (path == "ila")
    assert 4000 - 16 < m["queries_used"] <= 4000  # re-selection may leave under 16 unspent
    if path == "ila":
        assert m["refinement_stopped"] == "input-referred noise" and "round_nmse_db" not in m
        # the inputs `ila` draws, in the same order (the answers' noise differs with the chunking)
        hwloop.train(uri, strategy="ila", queries=4000, run_dir=tmp_path / "ila", options=opts)
        mine, theirs = (
            open_run_log(tmp_path).arrays("train")[0],
            open_run_log(tmp_path / "ila").arrays("train")[0],
        )
        np.testing.assert_array_equal(mine, theirs)
