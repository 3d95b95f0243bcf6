"""The harness's path to a device: clipping, strict bounds, hard budget, logging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwloop.errors import BudgetExhausted, OutOfRangeError
from hwloop.metered import MeteredDevice
from hwloop.querylog import QueryLog
from hwloop.simulators.catalog import make_sim


def test_proposals_are_clipped_to_the_safe_range(tmp_path: Path) -> None:
    dev = make_sim("tanh", noise=0.0)
    with QueryLog(tmp_path / "q.sqlite", 1, 1) as log:
        m = MeteredDevice(dev, log, budget=10)
        y = m.query(np.array([[-3.0], [0.5], [7.0]]))
        np.testing.assert_allclose(y[:, 0], np.tanh(1.5 * np.array([-1.0, 0.5, 1.0])), rtol=1e-6)
        assert m.clipped_values == 2
        x_logged, _ = log.arrays()
        np.testing.assert_array_equal(x_logged[:, 0], [-1.0, 0.5, 1.0])


def test_strict_bounds_refuse_and_send_nothing() -> None:
    dev = make_sim("tanh")
    m = MeteredDevice(dev, None, budget=10, strict_bounds=True)
    with pytest.raises(OutOfRangeError):
        m.query(np.array([[1.01]]))
    assert dev.stats.queries == 0


def test_non_finite_proposals_are_refused_under_any_policy() -> None:
    dev = make_sim("tanh")
    with pytest.raises(OutOfRangeError, match="non-finite"):
        MeteredDevice(dev, None, budget=10).query(np.array([[np.nan]]))
    assert dev.stats.queries == 0


def test_budget_is_a_hard_cap_on_training_queries_only(tmp_path: Path) -> None:
    dev = make_sim("tanh")
    m = MeteredDevice(dev, None, budget=10)
    m.query(np.zeros((8, 1)))
    with pytest.raises(BudgetExhausted, match="2 left"):
        m.query(np.zeros((3, 1)))
    m.query(np.zeros((2, 1)))
    assert m.remaining == 0
    m.query(np.zeros((50, 1)), "eval")
    assert m.used == {"train": 10, "eval": 50, "noise": 0}
    assert dev.stats.queries == 60


def test_every_answer_is_logged_before_it_is_returned(tmp_path: Path) -> None:
    dev = make_sim("rapp")
    with QueryLog(tmp_path / "q.sqlite", 1, 1) as log:
        seen = []
        m = MeteredDevice(dev, log, budget=100, progress=lambda k, n, u: seen.append(log.count()))
        y = m.query(np.linspace(-1, 1, 30)[:, None])
        assert seen == [30]
        np.testing.assert_array_equal(log.arrays()[1], y)


def test_resumed_stateful_device_is_rewarmed_mid_sequence(tmp_path: Path) -> None:
    """Replaying half a sequence from the log, then asking the device for the rest,
    gives the answers a device that never stopped would give."""
    x = np.random.default_rng(0).uniform(-1, 1, (300, 1)).astype(np.float32)
    straight = make_sim("wh", noise=0.0, max_batch=100)
    expected = straight.query(x)
    with QueryLog(tmp_path / "q.sqlite", 1, 1) as log:
        first = MeteredDevice(make_sim("wh", noise=0.0, max_batch=100), log, budget=1000)
        first.reset()
        first.query(x[:200])  # two chunks logged, then the run "dies"
    with QueryLog(tmp_path / "q.sqlite", 1, 1) as log:
        fresh = make_sim("wh", noise=0.0, max_batch=100)
        again = MeteredDevice(fresh, log, budget=1000, replay=True)
        again.reset()
        y = again.query(x)
        assert again.replayed_rows == 200 and again.warmup_rows == 200
        np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-7)
        assert log.count() == 300 and log.resets() == [0]
