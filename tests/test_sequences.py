"""Devices with memory and tapped-delay inverses for them."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from hwloop.errors import BadDeviceParameterError, OutOfRangeError, ShapeError, UnknownSchemeError, UsageError
from hwloop.simulators.catalog import make_sim
from hwloop.simulators.with_memory import MP_COEFFS, min_phase, rapp


def _x(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 1)).astype(np.float32)


# --- tapped delays -------------------------------------------------------------------------


def test_tapped_holds_current_and_past_samples_with_zeros_before_the_start() -> None:
    from hwloop.inverses.tapped import tapped

    s = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]], np.float32)
    f = tapped(s, depth=2)
    assert f.shape == (3, 6)
    np.testing.assert_array_equal(f[:, 0:2], s)
    np.testing.assert_array_equal(f[:, 2:4], [[0, 0], [1, 10], [2, 20]])
    np.testing.assert_array_equal(f[:, 4:6], [[0, 0], [0, 0], [1, 10]])
    np.testing.assert_array_equal(tapped(s, 0), s)
    ahead = tapped(s[:, :1], depth=1, lookahead=1)  # blocks: s[n+1], s[n], s[n-1]
    np.testing.assert_array_equal(ahead, [[2, 1, 0], [3, 2, 1], [0, 3, 2]])


def test_tapped_rejects_bad_arguments() -> None:
    from hwloop.inverses.tapped import tapped

    with pytest.raises(ShapeError):
        tapped(np.zeros((2, 2, 2)), 1)
    with pytest.raises(UsageError):
        tapped(np.zeros((4, 1)), -1)


# --- the stateful simulators ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["wh", "memory_poly"])
def test_memory_device_is_stateful_and_split_invariant(name: str) -> None:
    whole = make_sim(name, noise=0.0)
    pieces = make_sim(name, noise=0.0, max_batch=7)
    assert whole.info.stateful and whole.info.low == (-1.0,) and whole.info.high == (1.0,)
    x = _x(500)
    y = whole.query(x)
    # State persists across calls and across max_batch chunks: any split gives the same answer.
    y_split = np.concatenate([pieces.query(x[:123]), pieces.query(x[123:124]), pieces.query(x[124:])])
    np.testing.assert_array_equal(y, y_split)
    np.testing.assert_array_equal(y, whole.clean_sequence(x))
    # Without reset the device remembers the last inputs; after reset it starts from idle.
    again = whole.query(x[:5])
    whole.reset()
    fresh = whole.query(x[:5])
    np.testing.assert_array_equal(fresh, y[:5])
    assert np.max(np.abs(again - fresh)) > 1e-3


def test_wiener_hammerstein_matches_its_definition() -> None:
    dev = make_sim("wh", **{"noise": 0.0})
    h1, h2 = np.array(dev.system.h1), np.array(dev.system.h2)
    assert np.sum(np.abs(h1)) == pytest.approx(1.0) and min_phase(h1) and min_phase(h2)
    x = _x(50, 1)[:, 0].astype(np.float64)
    u = np.array([sum(h1[k] * x[n - k] for k in range(3) if n - k >= 0) for n in range(50)])
    v = rapp(u, 1.2, 1.0, 2.0)
    y = np.array([sum(h2[k] * v[n - k] for k in range(3) if n - k >= 0) for n in range(50)])
    np.testing.assert_allclose(dev.query(x[:, None])[:, 0], y, rtol=1e-5, atol=1e-6)


def test_memory_polynomial_matches_its_definition() -> None:
    dev = make_sim("memory_poly", **{"noise": 0.0})
    a = np.array(MP_COEFFS)
    x = _x(40, 2)[:, 0].astype(np.float64)
    y = [
        sum(a[m, k] * x[n - m] * abs(x[n - m]) ** k for m in range(3) for k in range(3) if n - m >= 0)
        for n in range(40)
    ]
    np.testing.assert_allclose(dev.query(x[:, None])[:, 0], y, rtol=1e-5, atol=1e-6)
    memoryless = make_sim("memory_poly", **{"noise": 0.0, "memory": 0.0})
    single = np.concatenate([memoryless.query(x[i : i + 1, None]) for i in range(5)])  # order-free
    np.testing.assert_allclose(single, memoryless.clean_sequence(x[:5, None]), rtol=1e-6)


def test_noise_is_seeded_and_of_the_declared_size() -> None:
    x = _x(4000)
    a, b = make_sim("wh", **{"seed": 3}), make_sim("wh", **{"seed": 3})
    ya, yb = a.query(x), b.query(x)
    np.testing.assert_array_equal(ya, yb)
    residual = ya - a.clean_sequence(x)
    assert np.std(residual) == pytest.approx(1e-3, rel=0.1)
    assert not np.array_equal(ya, make_sim("wh", **{"seed": 4}).query(x))


def test_memory_sim_refuses_bad_input_and_parameters() -> None:
    dev = make_sim("wh")
    with pytest.raises(OutOfRangeError):
        dev.query(np.array([[1.5]], np.float32))
    with pytest.raises(UnknownSchemeError):
        make_sim("nope")
    with pytest.raises(BadDeviceParameterError, match="unknown parameter"):
        make_sim("wh", **{"taps": 3})
    with pytest.raises(BadDeviceParameterError):
        make_sim("wh", **{"noise": -1.0})


# --- sequence ILA ----------------------------------------------------------------------------


def test_sequence_ila_through_a_metered_device_counts_queries_and_learns() -> None:
    from hwloop.evaluate import EvalBudget, evaluate_sequence
    from hwloop.inverses.models import FitConfig
    from hwloop.metered import MeteredDevice
    from hwloop.strategies.sequence import SequenceILAConfig, train_sequence_ila

    dev = MeteredDevice(make_sim("wh"), None, budget=3000)
    cfg = SequenceILAConfig(depth=3, seq_len=1000, fit=FitConfig(steps=800))
    res = train_sequence_ila(dev, 3000, cfg, seed=0)
    assert res.queries == 3000 and dev.used["train"] == 3000
    scores = evaluate_sequence(dev, res.inverse, EvalBudget(2000, 1000), seed=1).scores
    assert dev.used["train"] == 3000 and dev.used["eval"] + dev.used["noise"] == 3000
    assert scores["noise_floor_db"] == pytest.approx(-53.8, abs=1.0)
    assert scores["closed_loop_nmse_db"] < -25.0
    x = res.inverse.apply(res.y[0])
    assert x.shape == res.x[0].shape and x.min() >= -1.0 and x.max() <= 1.0


def test_iterative_sequence_ila_stays_within_budget() -> None:
    from hwloop.inverses.models import FitConfig
    from hwloop.metered import MeteredDevice
    from hwloop.strategies.sequence import SequenceILAConfig, train_sequence_ila

    sim = make_sim("memory_poly")
    dev = MeteredDevice(sim, None, budget=2000)
    cfg = SequenceILAConfig(depth=2, seq_len=500, rounds=2, fit=FitConfig(steps=200), refit_steps=100)
    res = train_sequence_ila(dev, 2000, cfg, seed=0)
    assert res.queries == 2000 and sim.stats.queries == res.queries
    assert len(res.x) == 4


@pytest.mark.slow
def test_tapped_inverse_reaches_the_noise_floor_on_wiener_hammerstein() -> None:
    """Acceptance: within 8 dB of the noise floor at 20,000 queries; memoryless clearly worse."""
    from hwloop.evaluate import EvalBudget, evaluate_sequence
    from hwloop.inverses.models import FitConfig
    from hwloop.strategies.sequence import SequenceILAConfig, train_sequence_ila

    t0 = time.perf_counter()
    from hwloop.metered import MeteredDevice

    dev = MeteredDevice(make_sim("wh", **{"noise": 1e-3, "seed": 0}), None, budget=20_000)
    res = train_sequence_ila(dev, 20_000, SequenceILAConfig(depth=5), seed=0)
    tapped_scores = evaluate_sequence(dev, res.inverse, EvalBudget(8000, 4000), seed=1).scores
    assert res.queries <= 20_000
    flat_dev = MeteredDevice(make_sim("wh", **{"noise": 1e-3, "seed": 0}), None, budget=20_000)
    flat = train_sequence_ila(flat_dev, 20_000, SequenceILAConfig(depth=0, fit=FitConfig(steps=3000)), seed=0)
    flat_scores = evaluate_sequence(flat_dev, flat.inverse, EvalBudget(8000, 4000), seed=1).scores
    wall = time.perf_counter() - t0
    logging.getLogger(__name__).info("tapped %s memoryless %s wall %.1fs", tapped_scores, flat_scores, wall)
    assert tapped_scores["closed_loop_nmse_db"] <= tapped_scores["noise_floor_db"] + 8.0
    assert flat_scores["closed_loop_nmse_db"] > tapped_scores["closed_loop_nmse_db"] + 15.0


def test_surrogate_on_a_device_with_memory_trains_through_the_device(tmp_path) -> None:
    """Direct learning on sequences: runs within budget, stays in range, reports its rounds."""
    import hwloop
    from hwloop.run import TrainOptions

    res = hwloop.train(
        "sim:wh?seed=4",
        strategy="surrogate",
        queries=4000,
        seed=0,
        run_dir=tmp_path,
        options=TrainOptions(fit_steps=300, eval_queries=2000, noise_repeats=64, memory_depth=3),
    )
    m = res.metrics
    assert m["strategy_run"] == "sequence_forward" and m["queries_used"] == 4000
    assert len(m["round_nmse_db"]) >= 2 and len(m["device_weight"]) == len(m["round_nmse_db"])
    assert m["closed_loop_nmse_db"] < -20
    x = res.inverse.apply(np.zeros((50, 1), np.float32) + 0.3)
    assert np.all(np.abs(x) <= 1.0)


def test_a_direct_learning_round_spends_its_share_in_several_reachable_sequences() -> None:
    """A round longer than any warm-start answer sends several target sequences, each after a reset."""
    from hwloop.metered import MeteredDevice
    from hwloop.strategies.sequence_forward import _send_round

    class Half:
        def apply(self, t: np.ndarray) -> np.ndarray:
            return 0.5 * t

    dev = MeteredDevice(make_sim("wh", seed=2), None, budget=1000)
    pool = [np.full((300, 1), 0.2, np.float32), np.full((250, 1), -0.2, np.float32)]
    sent = _send_round(dev, Half(), pool, 1000, np.random.default_rng(0))
    lengths = [len(t) for t, _, _ in sent]
    assert sum(lengths) == 1000 and max(lengths) == 300 and dev.used["train"] == 1000
    for t, x, y in sent:
        assert len(t) == len(x) == len(y) and abs(abs(float(t[0, 0])) - 0.2) < 1e-6
        np.testing.assert_allclose(x, 0.5 * t)
