"""The joint step: each loss moves only its own variables (separate var_lists)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from hwloop.inverses.models import build_regressor
from hwloop.strategies.gauss_newton import FLAT_DAMPING, gauss_newton_upstream
from hwloop.strategies.joint import JointTrainer


def make_trainer(seed: int = 0) -> JointTrainer:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (512, 2)).astype(np.float32)
    y = np.tanh(x @ np.array([[1.0, 0.3], [0.2, 0.9]], np.float32))
    keras.utils.set_random_seed(seed)
    inverse = build_regressor(y, x, seed=1, name="inverse")
    surrogate = build_regressor(x, y, seed=2, name="surrogate")
    return JointTrainer(
        inverse, surrogate, -np.ones(2), np.ones(2), inverse_lr=1e-2, surrogate_lr=1e-2, seed=seed
    )


def batch(seed: int) -> list[tf.Tensor]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (64, 2)).astype(np.float32)
    y = np.tanh(x) + rng.normal(0, 0.05, x.shape).astype(np.float32)
    return [tf.constant(a) for a in (y, x, y + 0.1, x, y)]


def weights(model: keras.Model) -> list[np.ndarray]:
    return [w.copy() for w in model.get_weights()]


def test_each_loss_leaves_the_other_models_variables_untouched() -> None:
    t_a, x_a, y_a, xl_a, yl_a = batch(1)
    t_b, x_b, y_b, xl_b, yl_b = batch(2)
    # Same inverse-loss data, different surrogate-loss data: the inverse must end identical.
    tr1, tr2 = make_trainer(), make_trainer()
    tr1.step(t_a, x_a, y_a, xl_a, yl_a, 32)
    tr2.step(t_a, x_a, y_a, xl_b, yl_b, 32)
    for a, b in zip(weights(tr1.inverse), weights(tr2.inverse), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b) for a, b in zip(weights(tr1.surrogate), weights(tr2.surrogate), strict=True)
    )
    # Same surrogate-loss data, different inverse-loss data: the surrogate must end identical.
    tr3, tr4 = make_trainer(), make_trainer()
    tr3.step(t_a, x_a, y_a, xl_a, yl_a, 32)
    tr4.step(t_b, x_b, y_b, xl_a, yl_a, 32)
    for a, b in zip(weights(tr3.surrogate), weights(tr4.surrogate), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b) for a, b in zip(weights(tr3.inverse), weights(tr4.inverse), strict=True)
    )


def test_both_models_move_in_one_step_and_surrogate_off_freezes_it() -> None:
    tr = make_trainer()
    inv0, sur0 = weights(tr.inverse), weights(tr.surrogate)
    tr.step(*batch(1), 32)
    assert all(not np.array_equal(a, b) for a, b in zip(inv0, weights(tr.inverse), strict=True))
    assert all(not np.array_equal(a, b) for a, b in zip(sur0, weights(tr.surrogate), strict=True))
    sur1 = weights(tr.surrogate)
    tr.step(*batch(3), 32, False)
    for a, b in zip(sur1, weights(tr.surrogate), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("damping", "flat"), [(1e-6, FLAT_DAMPING), (1e-2, FLAT_DAMPING), (1e-3, 0.0)])
def test_gauss_newton_scaling_solves_the_damped_normal_equations(damping: float, flat: float) -> None:
    """The trainer's step with its damping and batch floor (QAT's trainer runs without the floor)."""
    tr = make_trainer()
    tr.damping, tr.flat = damping, flat
    x = tf.constant(np.random.default_rng(5).uniform(-1, 1, (8, 2)).astype(np.float32))
    err = tf.constant(np.random.default_rng(6).normal(size=(8, 2)).astype(np.float32))
    g = tr.gauss_newton(x, err).numpy()
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tr.surrogate(x)
    jac = tape.batch_jacobian(y, x).numpy().astype(np.float64)
    mean = np.mean([np.trace(j @ j.T) / 2 for j in jac])
    for k in range(8):
        jjt = jac[k] @ jac[k].T
        lam = max(damping * np.trace(jjt) / 2, flat * mean) + 1e-12
        np.testing.assert_allclose((jjt + lam * np.eye(2)) @ g[k], err.numpy()[k], rtol=2e-3, atol=2e-4)


def test_gauss_newton_step_stays_bounded_at_a_one_output_fold() -> None:
    """y = x^2 folds at 0: relative damping alone gives the step err / (J (1 + damping)), unbounded
    as J -> 0; the batch floor bounds the input-space step J u by |err| / (2 sqrt(lambda))."""
    fold = keras.Sequential([keras.Input((1,)), keras.layers.Lambda(lambda v: v**2)])
    x = tf.constant([[1e-4], [0.5], [1.0], [1.5]], tf.float32)
    err = tf.constant([[1e-2]] * 4, tf.float32)
    u = gauss_newton_upstream(fold, x, err, 1e-3).numpy()[:, 0]
    jac = 2 * x.numpy()[:, 0]
    lam = FLAT_DAMPING * np.mean(jac**2)
    assert abs(jac[0] * u[0]) <= 1e-2 / (2 * np.sqrt(lam)) * 1.001
    relative_only = gauss_newton_upstream(fold, x, err, 1e-3, flat=0.0).numpy()[:, 0]
    assert abs(jac[0] * relative_only[0]) > 100 * abs(jac[0] * u[0])  # what the floor prevents
    np.testing.assert_allclose(jac[3] * u[3], 1e-2 * jac[3] / (jac[3] ** 2 + lam), rtol=1e-4)  # a steep row


def test_phase_cosine_restarts_each_phase_at_its_peak_and_decays_within_it() -> None:
    """The inverse's rounds restart at `ROUND_LR_SHARE` of the pretraining rate: a restart at the
    full rate threw a settled inverse off where the device is flat (hwloop.strategies.surrogate)."""
    from types import SimpleNamespace

    from hwloop.strategies.surrogate import ROUND_LR_SHARE, PhaseCosine, config_for

    sched = PhaseCosine(1e-3, [100, 10, 10], alpha=0.01, peaks=[1.0, 0.1, 0.1])
    at = {s: float(sched(s)) for s in (0, 50, 99, 100, 105, 109, 110, 119, 500)}
    np.testing.assert_allclose([at[0], at[100], at[110]], [1e-3, 1e-4, 1e-4], rtol=1e-6)
    np.testing.assert_allclose(at[50], 1e-3 * (0.01 + 0.99 * 0.5), rtol=1e-5)  # half way down the cosine
    assert at[99] < 2e-5 and at[109] < at[105] < at[100] and at[119] < 4e-6
    np.testing.assert_allclose(at[500], 1e-3 * 0.1 * 0.01, rtol=1e-5)  # past the end: the last floor
    assert PhaseCosine(1e-3, [10, 10])(10).numpy() == pytest.approx(1e-3)  # peaks default to 1
    with pytest.raises(ValueError, match="2 peaks for 3 phases"):
        PhaseCosine(1e-3, [1, 2, 3], peaks=[1.0, 1.0])
    cfg = config_for(SimpleNamespace(settings=SimpleNamespace(fit_steps=8000)))
    assert cfg.inverse_lr.peaks == [1.0] + [ROUND_LR_SHARE] * cfg.rounds
    assert float(cfg.inverse_lr(cfg.pretrain_steps)) == pytest.approx(cfg.inverse_lr.lr * ROUND_LR_SHARE)
    assert cfg.surrogate_lr.peaks == [1.0] * cfg.rounds  # the surrogate's rounds restart at its full rate
