"""Layers and models: serialisation, the recipe's init, fitting, fresh-interpreter loading."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hwloop.inverses.layers import ClipToRange, Destandardize, Standardize
from hwloop.inverses.models import FitConfig, build_regressor, fit_regression, with_clip


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (Standardize, {"mean": [1.0, 2.0], "std": [0.5, 4.0]}),
        (Destandardize, {"mean": [1.0, 2.0], "std": [0.5, 4.0]}),
        (ClipToRange, {"low": [-1.0, 0.0], "high": [1.0, 2.0]}),
    ],
)
def test_layer_config_round_trip(cls, kwargs: dict) -> None:
    layer = cls(**kwargs)
    clone = cls.from_config(layer.get_config())
    x = np.array([[3.0, -5.0], [0.2, 0.4]], np.float32)
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(clone(x)))


def test_standardize_and_destandardize_are_inverse() -> None:
    s, d = Standardize([1.0], [3.0]), Destandardize([1.0], [3.0])
    x = np.array([[4.0], [-2.0]], np.float32)
    np.testing.assert_allclose(np.asarray(s(x)), [[1.0], [-1.0]])
    np.testing.assert_allclose(np.asarray(d(s(x))), x)


def test_first_layer_covers_the_input_range() -> None:
    x = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    model = build_regressor(x, x[:, :1], hidden=(512, 64), seed=3)
    w, b = model.get_layer("hidden_0").get_weights()
    assert np.std(w) == pytest.approx(2 / np.sqrt(4), rel=0.05)
    assert b.min() >= -1.5 and b.max() <= 1.5 and np.std(b) == pytest.approx(3 / np.sqrt(12), rel=0.1)


def test_fit_regression_learns_a_smooth_inverse() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (4000, 1)).astype(np.float32)
    y = np.tanh(1.5 * x).astype(np.float32)
    model = build_regressor(y, x, seed=0)
    curve = fit_regression(model, y, x, FitConfig(steps=1500), seed=0)
    assert curve[-1] < curve[0] / 100
    pred = np.asarray(model(y))
    assert np.sqrt(np.mean((pred - x) ** 2)) < 0.01


def test_clipped_model_saves_and_loads_in_a_fresh_interpreter(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (256, 2)).astype(np.float32)
    model = with_clip(build_regressor(x, 3 * x, seed=0), [-0.5, -0.5], [0.5, 0.5])
    probe = rng.uniform(-1, 1, (8, 2)).astype(np.float32)
    expected = np.asarray(model(probe))
    assert expected.min() >= -0.5 and expected.max() <= 0.5
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "probe.npy", probe)
    code = textwrap.dedent(f"""
        import numpy as np, keras, hwloop.inverses.layers
        m = keras.models.load_model({str(tmp_path / "m.keras")!r}, compile=False)
        np.save({str(tmp_path / "out.npy")!r}, np.asarray(m(np.load({str(tmp_path / "probe.npy")!r}))))
    """)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-6, atol=1e-7)
