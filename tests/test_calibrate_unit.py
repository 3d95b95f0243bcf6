"""calibrate_unit: a parent's inverse and surrogate adapted to a new unit in a few queries."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from hwloop.device import BaseDevice
from hwloop.errors import BudgetExhausted, ShapeError
from hwloop.inverses.models import FitConfig, build_regressor, fit_regression
from hwloop.metered import MeteredDevice
from hwloop.metrics import nmse_db
from hwloop.simulators.base import SimDevice
from hwloop.simulators.catalog import make_sim
from hwloop.simulators.units import NOMINAL, UnitParams, transfer
from hwloop.strategies.calibrate_unit import (
    CalibrationConfig,
    InverseTrainer,
    calibrate_unit,
    corrected_surrogate,
)

FAST = CalibrationConfig(correction_steps=400)
OFFSET = UnitParams(c_i=0.03, c_q=-0.02)  # the nominal design with a known output offset


@pytest.fixture(scope="module")
def parent():
    """Unit 0's inverse and surrogate, fitted quickly on its noise-free answers."""
    dev = make_sim("iqpa", noise=0.0)
    x = dev.info.uniform(np.random.default_rng(0), 3000)
    y = dev.clean(x)
    fit = FitConfig(steps=1500)
    inverse = build_regressor(y, x, seed=0, name="inverse")
    fit_regression(inverse, y, x, fit, seed=0)
    surrogate = build_regressor(x, y, seed=1, name="surrogate")
    fit_regression(surrogate, x, y, fit, seed=1)
    return inverse, surrogate


class Recording(BaseDevice):
    """A device that remembers every input row it was sent."""

    def __init__(self, inner: SimDevice) -> None:
        super().__init__(inner.info)
        self.inner, self.seen = inner, []

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(np.array(x))
        return self.inner.query(x)

    def _reset(self) -> None:
        pass


def unit(params: UnitParams, noise: float = 1e-3) -> SimDevice:
    base = make_sim("iqpa", noise=0.0)
    return SimDevice(base.info, transfer(params), noise=noise, seed=3)


def clean_nmse(dev: SimDevice, inverse, n: int = 2000) -> float:
    x = dev.info.uniform(np.random.default_rng(9), n)
    t = dev.clean(x)
    proposal = np.clip(np.asarray(inverse(t)), dev.info.low_array, dev.info.high_array)
    proposal, _ = dev.info.envelope.clip(proposal)  # what the meter would send: inside the I/Q circle
    return nmse_db(dev.clean(proposal), t)


def test_improves_on_the_parent_for_a_unit_with_a_known_offset_and_stays_in_range(parent) -> None:
    inverse, surrogate = parent
    sim = unit(OFFSET)
    rec = Recording(sim)
    md = MeteredDevice(rec, None, budget=120)
    before = [w.copy() for w in inverse.get_weights()]
    res = calibrate_unit(md, inverse, surrogate, seed=0, fit_steps=600, config=FAST)
    assert md.used["train"] == 120 and md.remaining == 0
    parent_db, calibrated_db = clean_nmse(sim, inverse), clean_nmse(sim, res.inverse)
    assert parent_db > -33  # the offset alone costs the parent this much
    assert calibrated_db < parent_db - 10, (parent_db, calibrated_db)
    # The corrected surrogate found the offset: it moved from the parent's by it.
    grid = sim.info.uniform(np.random.default_rng(5), 2000)
    shift = np.mean(np.asarray(res.surrogate(grid)) - np.asarray(surrogate(grid)), axis=0)
    np.testing.assert_allclose(shift, [OFFSET.c_i, OFFSET.c_q], atol=0.004)
    sent = np.concatenate(rec.seen)
    assert np.all(sent >= sim.info.low_array) and np.all(sent <= sim.info.high_array)
    proposals = np.asarray(res.inverse(sim.clean(sim.info.uniform(np.random.default_rng(2), 2000))))
    span = sim.info.high_array - sim.info.low_array
    assert np.all(proposals > sim.info.low_array - 0.02 * span)
    assert np.all(proposals < sim.info.high_array + 0.02 * span)
    for a, b in zip(before, inverse.get_weights(), strict=True):  # the parent is untouched
        np.testing.assert_array_equal(a, b)


def test_details_report_every_switch(parent) -> None:
    md = MeteredDevice(unit(OFFSET), None, budget=60)
    cfg = CalibrationConfig(round_fractions=(0.5, 0.5), correction_steps=200)
    res = calibrate_unit(md, *parent, seed=1, fit_steps=100, config=cfg)
    rounds = res.details["rounds"]
    assert [r["queries"] for r in rounds] == [30, 30]
    for r in rounds:
        assert r["residual_units"] in (0, cfg.residual_units)
        assert set(r["held_mse"]) == {"0", str(cfg.residual_units)}
        assert r["device_weight"] == 1.0 and 0.0 <= r["bias_share"] <= 1.0
        assert np.isfinite(r["measured_nmse_db"])
    assert res.details["kept"] == "final" or res.details["kept"].startswith("round ")
    assert np.isfinite(res.details["final_predicted_nmse_db"])
    assert res.curve and all(np.isfinite(res.curve))


def test_the_device_answer_changes_the_inverse_update(parent) -> None:
    """Same step, same surrogate, same targets: only the device's answer differs."""
    inverse, surrogate = parent
    info = make_sim("iqpa").info
    sur = corrected_surrogate(surrogate, info.low_array, info.high_array, residual_units=0, seed=0)
    t = np.asarray(sur(info.uniform(np.random.default_rng(4), 64)), np.float32)
    x_q = np.asarray(inverse(t), np.float32)
    y_a = np.asarray(sur(x_q), np.float32)
    y_b = y_a + np.float32(0.05)  # a unit that answers 0.05 higher

    def one_step(y_dev: np.ndarray, weight: float) -> list[np.ndarray]:
        model = build_regressor(t, x_q, seed=0, name="inverse")
        model.set_weights(inverse.get_weights())
        trainer = InverseTrainer(model, sur, info.low_array, info.high_array, FAST, y_std=np.ones(2), seed=0)
        args = (tf.constant(t), tf.constant(x_q), tf.constant(y_dev))
        trainer.step(*args, tf.constant(weight), tf.constant(1e-3))
        return model.get_weights()

    a, b = one_step(y_a, 1.0), one_step(y_b, 1.0)
    assert max(float(np.max(np.abs(u - v))) for u, v in zip(a, b, strict=True)) > 1e-5
    a0, b0 = one_step(y_a, 0.0), one_step(y_b, 0.0)  # device weight 0: the answer is ignored
    for u, v in zip(a0, b0, strict=True):
        np.testing.assert_allclose(u, v, atol=1e-7)


def test_another_unit_gives_another_inverse(parent) -> None:
    cfg = CalibrationConfig(round_fractions=(1.0,), correction_steps=200)
    weights = []
    for params in (NOMINAL, OFFSET):
        md = MeteredDevice(unit(params, noise=0.0), None, budget=40)
        weights.append(calibrate_unit(md, *parent, seed=0, fit_steps=100, config=cfg).inverse.get_weights())
    assert max(float(np.max(np.abs(u - v))) for u, v in zip(*weights, strict=True)) > 1e-4


def test_refuses_a_budget_too_small_or_models_of_another_shape(parent) -> None:
    with pytest.raises(BudgetExhausted):
        calibrate_unit(MeteredDevice(unit(OFFSET), None, budget=12), *parent, seed=0, config=FAST)
    one_d = build_regressor(np.zeros((4, 1)), np.zeros((4, 1)), name="inverse")
    with pytest.raises(ShapeError):
        calibrate_unit(MeteredDevice(unit(OFFSET), None, budget=100), one_d, parent[1], seed=0)
