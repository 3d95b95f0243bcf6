"""sim:iqpa: one design, many seeded units; unit 0 is the nominal design."""

from __future__ import annotations

import numpy as np
import pytest

import hwloop
from hwloop.errors import BadDeviceParameterError, OutOfRangeError
from hwloop.simulators.catalog import describe, make_sim
from hwloop.simulators.units import NOMINAL, unit_params


def grid(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Inputs uniform over the units' I/Q envelope, the disc |x| <= 0.5."""
    r = 0.5 * np.sqrt(np.random.default_rng(seed).uniform(0, 1, n))
    phi = np.random.default_rng(seed + 1).uniform(-np.pi, np.pi, n)
    return np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1).astype(np.float32) * np.float32(1 - 1e-6)


def saleh_iq_with(x: np.ndarray, p) -> np.ndarray:
    """The documented chain, written out again independently of the simulator."""
    i, q = x[:, 0].astype(np.float64), x[:, 1].astype(np.float64)
    a, b = np.cos(p.phi / 2), np.sin(p.phi / 2)
    ui = (1 + p.g / 2) * (a * i + b * q) + p.d_i
    uq = (1 - p.g / 2) * (a * q + b * i) + p.d_q
    r2 = ui**2 + uq**2
    amp = p.alpha_a / (1 + p.beta_a * r2)
    ph = p.alpha_p * r2 / (1 + p.beta_p * r2)
    yi = amp * (ui * np.cos(ph) - uq * np.sin(ph)) + p.c_i
    yq = amp * (ui * np.sin(ph) + uq * np.cos(ph)) + p.c_q
    return np.stack([yi, yq], axis=1)


def test_unit_zero_is_the_nominal_design_and_equals_saleh_iq() -> None:
    x = grid()
    unit0 = hwloop.open_device("sim:iqpa?noise=0")
    assert unit0.unit_params == NOMINAL
    np.testing.assert_allclose(unit0.clean(x), make_sim("saleh_iq", noise=0.0).clean(x), atol=1e-6)


@pytest.mark.parametrize("unit", [1, 2, 7, 37])
def test_each_unit_follows_the_documented_model(unit: int) -> None:
    x = grid(500, seed=unit)
    dev = hwloop.open_device(f"sim:iqpa?unit={unit}&noise=0")
    np.testing.assert_allclose(dev.clean(x), saleh_iq_with(x, unit_params(unit)), atol=2e-6)


def test_units_differ_within_the_documented_spread() -> None:
    x = grid()
    y0 = make_sim("iqpa", noise=0.0).clean(x)
    seen = []
    for unit in range(1, 13):
        p = unit_params(unit)
        for name in ("alpha_a", "beta_a", "alpha_p", "beta_p"):
            assert abs(getattr(p, name) / getattr(NOMINAL, name) - 1) <= 0.1
        assert max(abs(p.g), abs(p.phi)) <= 0.1
        assert max(abs(p.d_i), abs(p.d_q), abs(p.c_i), abs(p.c_q)) <= 0.02
        y = make_sim("iqpa", unit=unit, noise=0.0).clean(x)
        assert np.sum((y - y0) ** 2) / np.sum(y0**2) > 1e-4  # not the nominal unit
        seen.append(p)
    assert len(set(seen)) == len(seen)  # no two units alike


def test_the_same_unit_is_the_same_device_every_time() -> None:
    x = grid(300)
    a = hwloop.open_device("sim:iqpa?unit=5&noise=0")
    b = hwloop.open_device("sim:iqpa?unit=5&noise=0&seed=9")
    np.testing.assert_array_equal(a.clean(x), b.clean(x))
    assert unit_params(5) == unit_params(5)
    assert unit_params(5, design=1) != unit_params(5)  # another design, another spread
    assert unit_params(5, spread=0.0) == NOMINAL


def test_params_parse_noise_and_range() -> None:
    dev = hwloop.open_device("sim:iqpa?unit=3&noise=0.01&seed=4&max_batch=64&spread=0.5")
    assert (dev.info.in_dim, dev.info.out_dim, dev.info.max_batch) == (2, 2, 64)
    assert dev.unit_params == unit_params(3, spread=0.5)
    x = grid(4000)
    resid = dev.query(x) - dev.clean(x)
    assert np.std(resid) == pytest.approx(0.01, rel=0.05)
    with pytest.raises(OutOfRangeError):
        dev.query(np.array([[0.51, 0.0]], np.float32))
    for bad in ("unit=-1", "spread=-1", "noise=-1", "units=2"):
        with pytest.raises(BadDeviceParameterError):
            hwloop.open_device(f"sim:iqpa?{bad}")
    assert "sim:iqpa" in dict(describe())


def test_every_unit_is_one_to_one_over_the_range() -> None:
    x = grid(3000)
    eps = 1e-4
    for unit in (0, 1, 11, 23, 37):
        f = make_sim("iqpa", unit=unit, noise=0.0).transfer
        xd = x.astype(np.float64)
        jac = np.stack([(f(xd + eps * e) - f(xd - eps * e)) / (2 * eps) for e in np.eye(2)], axis=2)
        assert np.min(np.abs(np.linalg.det(jac))) > 0.1
