"""The simulator catalogue: seeded, noisy as declared, safe ranges, the documented curves."""

from __future__ import annotations

import numpy as np
import pytest

import hwloop
from hwloop.errors import OutOfRangeError
from hwloop.simulators.catalog import SIMULATORS, describe, make_sim

NAMES = sorted(SIMULATORS)


def grid(dev, n: int = 2000, seed: int = 0) -> np.ndarray:
    """Inputs over the device's safe region (inside its I/Q envelope when it declares one)."""
    return dev.info.uniform(np.random.default_rng(seed), n)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_dtype_and_declared_range(name: str) -> None:
    dev = hwloop.open_device(f"sim:{name}")
    spec = SIMULATORS[name]
    assert (dev.info.in_dim, dev.info.out_dim) == (spec.in_dim, spec.out_dim)
    y = dev.query(grid(dev))
    assert y.shape == (2000, spec.out_dim) and y.dtype == np.float32
    assert np.all(np.isfinite(y))
    with pytest.raises(OutOfRangeError):
        dev.query(np.full((1, spec.in_dim), spec.high[0] + 0.01, np.float32))


@pytest.mark.parametrize("name", NAMES)
def test_noise_has_the_declared_std(name: str) -> None:
    dev = hwloop.open_device(f"sim:{name}?noise=0.01&seed=5&lsb=0")
    x = grid(dev, 4000)
    if name == "quantised":
        dev.lsb = 0.0  # measure the analog noise alone
    resid = dev.query(x) - dev.clean(x)
    assert np.std(resid) == pytest.approx(0.01, rel=0.05)
    assert abs(np.mean(resid)) < 0.01 * 4 / np.sqrt(resid.size)


@pytest.mark.parametrize("name", NAMES)
def test_noise_free_device_equals_clean_and_is_deterministic(name: str) -> None:
    dev = make_sim(name, noise=0.0)
    x = grid(dev, 100)
    np.testing.assert_array_equal(dev.query(x), dev.clean(x))
    np.testing.assert_array_equal(dev.query(x), dev.query(x))


@pytest.mark.parametrize("name", [n for n in NAMES if SIMULATORS[n].one_to_one])
def test_one_to_one_simulators_are_injective(name: str) -> None:
    dev = make_sim(name, noise=0.0)
    rng = np.random.default_rng(0)
    x = grid(dev, 3000)
    eps = 1e-3
    # A locally invertible map has a Jacobian of full rank everywhere in range.
    jac = np.stack(
        [
            (
                dev.transfer(np.clip(x + eps * e, dev.info.low, dev.info.high).astype(np.float64))
                - dev.transfer(np.clip(x - eps * e, dev.info.low, dev.info.high).astype(np.float64))
            )
            for e in np.eye(dev.info.in_dim)
        ],
        axis=-1,
    )
    sv = np.linalg.svd(jac, compute_uv=False)
    assert sv.min() > 1e-5
    if dev.info.in_dim == 1:
        xs = np.linspace(dev.info.low[0], dev.info.high[0], 5001)[:, None]
        assert np.all(np.diff(dev.transfer(xs)[:, 0]) > 0)
    del rng


def test_reference_curves() -> None:
    x = np.array([[0.5]])
    assert make_sim("rapp").transfer(x)[0, 0] == pytest.approx(0.5 / (1 + 0.5**4) ** 0.25)
    assert make_sim("saleh").transfer(x)[0, 0] == pytest.approx(2 * 0.5 / 1.25)
    assert make_sim("cubic").transfer(x)[0, 0] == pytest.approx(0.1 + 0.5 - 0.2 * 0.125)
    iq = make_sim("saleh_iq").transfer(np.array([[0.3, 0.4]]))[0]
    r = 0.5
    amp = 2.1587 * r / (1 + 1.1517 * r * r)
    phase = np.arctan2(0.4, 0.3) + 4.0033 * r * r / (1 + 9.1040 * r * r)
    np.testing.assert_allclose(iq, [amp * np.cos(phase), amp * np.sin(phase)], rtol=1e-12)


def test_quantised_outputs_sit_on_the_adc_grid() -> None:
    dev = make_sim("quantised", bits=8)
    y = dev.query(grid(dev, 500)).astype(np.float64)
    lsb = 2 / 2**8
    np.testing.assert_allclose(y / lsb, np.round(y / lsb), atol=1e-4)
    assert len(np.unique(y)) > 50


def test_input_referred_noise_moves_the_operating_point() -> None:
    dev = make_sim("tanh", noise=0.0, input_noise=0.05, seed=1)
    x = np.zeros((4000, 1), np.float32)
    y = dev.query(x)
    # Near x = 0, tanh(1.5 x) ~ 1.5 x: output std ~ 1.5 * 0.05.
    assert np.std(y) == pytest.approx(0.075, rel=0.06)


def test_latency_is_per_call() -> None:
    import time

    dev = make_sim("tanh", latency=0.05, max_batch=10)
    t0 = time.perf_counter()
    dev.query(np.zeros((20, 1), np.float32))
    assert time.perf_counter() - t0 >= 0.1
    assert dev.stats.calls == 2


def test_catalogue_lists_every_simulator() -> None:
    from hwloop.simulators.pa import PA_SIMULATORS
    from hwloop.simulators.units import UNIT_SIMULATORS
    from hwloop.simulators.with_memory import MEMORY_SIMULATORS

    uris = [u for u, _ in describe()]
    assert uris == [f"sim:{n}" for n in [*SIMULATORS, *MEMORY_SIMULATORS, *PA_SIMULATORS, *UNIT_SIMULATORS]]
    for name in [*MEMORY_SIMULATORS, *PA_SIMULATORS]:
        assert hwloop.open_device(f"sim:{name}?seed=2").info.stateful
