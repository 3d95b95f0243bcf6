"""Nothing unsafe reaches a device, under every strategy, even from a wild inverse;
non-finite answers are retried and never logged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hwloop
import hwloop.strategies.ila
import hwloop.strategies.spsa
import hwloop.strategies.surrogate
from hwloop.device import DeviceInfo
from hwloop.errors import NonFiniteAnswer
from hwloop.inverses.models import build_regressor
from hwloop.metered import MeteredDevice
from hwloop.querylog import QueryLog, open_run_log
from hwloop.run import TrainOptions
from hwloop.simulators.catalog import make_sim


class AuditingDevice:
    """A device that is not a BaseDevice: it checks nothing and records everything it is sent."""

    def __init__(self, name: str = "saleh") -> None:
        self.inner = make_sim(name)
        self.info: DeviceInfo = self.inner.info
        self.out_of_range = 0
        self.non_finite = 0
        self.rows = 0

    def query(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self.rows += len(x)
        self.non_finite += int(np.count_nonzero(~np.isfinite(x)))
        finite = np.where(np.isfinite(x), x, 0.0)
        self.out_of_range += int(
            np.count_nonzero((finite < self.info.low_array) | (finite > self.info.high_array))
        )
        return np.asarray(self.inner.transfer(np.clip(finite, self.info.low, self.info.high)), np.float32)

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


def wild_builder(x_data: np.ndarray, y_data: np.ndarray, **kwargs):
    """build_regressor, but an inverse starts out proposing inputs far outside the safe range."""
    model = build_regressor(x_data, y_data, **kwargs)
    if kwargs.get("name") == "inverse":
        dest = model.get_layer("destandardize")
        dest.mean = [m + 50.0 for m in dest.mean]
        dest.std = [s * 20.0 for s in dest.std]
    return model


@pytest.mark.parametrize("strategy", ["ila", "iila", "surrogate", "auto", "spsa"])
def test_auditor_sees_nothing_unsafe(strategy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (hwloop.strategies.ila, hwloop.strategies.surrogate, hwloop.strategies.spsa):
        monkeypatch.setattr(module, "build_regressor", wild_builder)
    audit = AuditingDevice()
    # Five fit steps leave the wild start almost as it was: proposals stay far out of range.
    res = hwloop.train(
        audit,
        strategy=strategy,
        queries=800,
        seed=0,
        run_dir=tmp_path,
        options=TrainOptions(fit_steps=5, eval_targets=64, noise_repeats=16),
    )
    assert audit.rows > 800
    assert audit.out_of_range == 0 and audit.non_finite == 0
    if strategy != "ila":  # plain ILA only ever proposes through the saved model's own clip layer
        assert res.metrics["clipped_values"] > 0  # the wild proposals were there, and were clipped


def test_the_wild_inverse_really_proposes_out_of_range() -> None:
    x = np.random.default_rng(0).uniform(-0.7, 0.7, (200, 1)).astype(np.float32)
    model = wild_builder(np.tanh(x), x, seed=0, name="inverse")
    proposals = np.asarray(model(np.tanh(x)))
    assert np.mean(np.abs(proposals) > 0.7) > 0.9


def test_a_nan_proposal_is_refused_not_sent() -> None:
    audit = AuditingDevice()
    m = MeteredDevice(audit, None, budget=10)
    with pytest.raises(hwloop.errors.OutOfRangeError):
        m.query(np.array([[0.1], [np.nan]]))
    assert audit.rows == 0


class Flaky(AuditingDevice):
    """Answers NaN to the first ``bad`` calls, then sensibly."""

    def __init__(self, bad: int) -> None:
        super().__init__("tanh")
        self.bad = bad
        self.calls = 0

    def query(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        y = super().query(x)
        return np.full_like(y, np.nan) if self.calls <= self.bad else y


def test_non_finite_answers_are_retried_then_reported_never_logged(tmp_path: Path) -> None:
    with QueryLog(tmp_path / "q.sqlite", 1, 1) as log:
        m = MeteredDevice(Flaky(bad=2), log, budget=100, answer_retries=3)
        y = m.query(np.linspace(-1, 1, 10)[:, None])
        assert np.all(np.isfinite(y)) and m.device.calls == 3 and log.count() == 10
        m2 = MeteredDevice(Flaky(bad=99), log, budget=100, answer_retries=3)
        with pytest.raises(NonFiniteAnswer, match="4 attempts, nothing logged"):
            m2.query(np.zeros((5, 1)))
        assert log.count() == 10 and m2.used["train"] == 0
        assert np.all(np.isfinite(log.arrays(None)[1]))


def test_max_rate_paces_device_queries(tmp_path: Path) -> None:
    import time

    dev = make_sim("tanh", max_batch=10)
    m = MeteredDevice(dev, None, budget=1000, max_rate=200.0)
    t0 = time.perf_counter()
    m.query(np.zeros((60, 1)))
    # 60 rows at 200/s: the last chunk of 10 may start no earlier than 50/200 s after the first.
    assert time.perf_counter() - t0 >= 0.25
    assert dev.stats.calls == 6


def test_every_logged_pair_is_in_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hwloop.strategies.ila, "build_regressor", wild_builder)
    hwloop.train(
        "sim:saleh",
        strategy="iila",
        queries=600,
        seed=0,
        run_dir=tmp_path,
        options=TrainOptions(fit_steps=60, eval_targets=64, noise_repeats=16),
    )
    x, y = open_run_log(tmp_path).arrays(None)
    assert x.min() >= -0.7 and x.max() <= 0.7 and np.all(np.isfinite(y))
