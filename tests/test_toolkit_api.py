"""mask= and hold= through hwloop.train and the CLI: the guarantees hold on saved models."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from click.testing import CliRunner

import hwloop
from hwloop.cli import cli
from hwloop.run import TrainOptions

FAST = TrainOptions(fit_steps=300, eval_targets=100, noise_repeats=32)


def jacobian(model, x: np.ndarray) -> np.ndarray:
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = model(xt)
    return tape.batch_jacobian(y, xt).numpy()  # (n, out, in)


def test_mask_keeps_missing_connections_exactly_zero_after_save_and_load(tmp_path: Path) -> None:
    mask = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 1]])  # input 0 drives output 0 only; 1, 2 are coupled
    hwloop.train(
        "sim:mimo3?coupling=0.2",
        strategy="auto",
        queries=1500,
        seed=0,
        run_dir=tmp_path,
        options=FAST,
        mask=mask,
    )
    x = np.random.default_rng(0).uniform(-3, 3, (64, 3)).astype(np.float32)  # far outside the data too
    surrogate = keras.models.load_model(tmp_path / "surrogate.keras", compile=False)
    js = jacobian(surrogate, x)
    assert np.all(js[:, mask.T == 0] == 0.0) and np.all(np.abs(js[:, mask.T == 1]).mean(axis=0) > 1e-3)
    inverse = hwloop.load_inverse(tmp_path).model
    ji = jacobian(inverse, x * 0.2)
    assert np.all(ji[:, mask == 0] == 0.0)  # inverse output i reads target j only where mask[i, j]


def test_hold_recalibrates_the_others_and_keeps_held_outputs_exactly(tmp_path: Path) -> None:
    old = hwloop.train(
        "sim:mimo3?coupling=0.1", strategy="ila", queries=1500, seed=0, run_dir=tmp_path / "a", options=FAST
    )
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "--device",
            "sim:mimo3?coupling=0.3&seed=1",
            "--strategy",
            "ila",
            "--queries",
            "1500",
            "--fit-steps",
            "600",
            "--eval-targets",
            "100",
            "--hold",
            "0",
            "--init-from",
            str(tmp_path / "a"),
            "--out",
            str(tmp_path / "b"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["held_outputs"] == [0] and m["max_held_change"] <= 1e-6
    new = hwloop.load_inverse(tmp_path / "b")
    rng = np.random.default_rng(3)
    t_any = rng.uniform(-2, 2, (500, 3)).astype(np.float32)
    np.testing.assert_allclose(new.model(t_any)[:, 0], old.inverse.model(t_any)[:, 0], atol=1e-6, rtol=0)
    # On the recalibrated device, the free outputs got better.
    dev = hwloop.open_device("sim:mimo3?coupling=0.3&noise=0")
    x = rng.uniform(-0.9, 0.9, (500, 3)).astype(np.float32)
    t = dev.query(x)
    err_old = np.mean((old.inverse.apply(t) - x) ** 2, axis=0)
    err_new = np.mean((new.apply(t) - x) ** 2, axis=0)
    assert np.all(err_new[1:] < err_old[1:] / 2), (err_old, err_new)


def test_hold_without_a_base_run_is_a_usage_error() -> None:
    res = CliRunner().invoke(cli, ["train", "--device", "sim:mimo3", "--hold", "0"])
    assert res.exit_code == 2 and "--hold needs --init-from RUN" in res.stderr
