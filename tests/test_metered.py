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


class _Flaky:
    """A real simulator behind the Device protocol whose answer to one call is unusable (NaN).

    ``applied`` counts every row the simulator stepped its state with, so a
    double-applied input shows up as extra rows.
    """

    def __init__(self, sim, bad_call: int) -> None:
        self.sim, self.info, self.bad_call = sim, sim.info, bad_call
        self.calls = 0
        self.applied = 0
        self.resets = 0

    def query(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        y = self.sim.query(x)
        self.applied += len(x)
        if self.calls == self.bad_call:
            y = y.copy()
            y[0, 0] = np.nan
        return y

    def reset(self) -> None:
        self.resets += 1
        self.sim.reset()

    def close(self) -> None:
        self.sim.close()


def test_stateful_unusable_answer_is_recovered_by_reset_and_rewarm(tmp_path: Path) -> None:
    """The device's state never steps twice on one logged input: after the bad call, the meter
    resets it, re-sends the sequence so far (unlogged), asks again, and the answers equal those
    of a device that never failed."""
    x = np.random.default_rng(1).uniform(-1, 1, (300, 1)).astype(np.float32)
    expected = make_sim("wh", noise=0.0, max_batch=100).query(x)
    flaky = _Flaky(make_sim("wh", noise=0.0, max_batch=100), bad_call=3)
    with QueryLog(tmp_path / "q.sqlite", 1, 1) as log:
        m = MeteredDevice(flaky, log, budget=1000)
        m.reset()
        y = m.query(x)
        np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-7)
        assert m.recoveries == 1 and m.warmup_rows == 200 and flaky.resets == 2
        assert log.count() == 300 and log.resets() == [0]  # the recovery reset is not a sequence boundary
        np.testing.assert_array_equal(log.arrays()[0], x)
    # 300 logged rows + the unusable call (100) + the re-warm (200): nothing else reached the device.
    assert flaky.applied == 300 + 100 + 200


def test_stateless_unusable_answer_is_asked_again_without_reset(tmp_path: Path) -> None:
    x = np.linspace(-1, 1, 300, dtype=np.float32)[:, None]
    flaky = _Flaky(make_sim("tanh", noise=0.0, max_batch=100), bad_call=2)
    with QueryLog(tmp_path / "q.sqlite", 1, 1) as log:
        m = MeteredDevice(flaky, log, budget=1000)
        y = m.query(x)
        np.testing.assert_allclose(y[:, 0], np.tanh(1.5 * x[:, 0]), rtol=1e-6)
        assert m.recoveries == 1 and m.warmup_rows == 0 and flaky.resets == 0
        assert log.count() == 300
    assert flaky.applied == 400


def test_pipelined_meter_commits_each_chunk_before_the_next_is_used(tmp_path: Path) -> None:
    """With a driver that yields answers as they land, the log grows chunk by chunk inside one
    query call: every answer is on disk before the meter takes the next one."""
    sim = make_sim("rapp", noise=0.0, max_batch=50)
    seen: list[int] = []
    with QueryLog(tmp_path / "q.sqlite", 1, 1) as log:
        original = sim.iter_query

        def spying_iter_query(x: np.ndarray):
            for start, y in original(x):
                seen.append(log.count())
                yield start, y

        sim.iter_query = spying_iter_query  # type: ignore[method-assign]
        MeteredDevice(sim, log, budget=1000).query(np.linspace(-1, 1, 200, dtype=np.float32)[:, None])
        assert log.count() == 200
    assert seen == [0, 50, 100, 150]
