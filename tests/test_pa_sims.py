"""The I/Q amplifier simulators fitted to DPA_200MHz: contract, state, fit quality, ACPR."""

from __future__ import annotations

import numpy as np
import pytest

import hwloop
from hwloop.dpd.gmp import GMP, GMPConfig
from hwloop.dpd.metrics import acpr_db, nmse_db
from hwloop.dpd.signals import OFDMSpec, cplx, dpa200, iq, ofdm
from hwloop.errors import BadDeviceParameterError, OutOfRangeError
from hwloop.simulators.catalog import describe, make_sim
from hwloop.simulators.pa import _fitted, gmp_terms

NAMES = ["pa_gmp", "pa_wh"]


@pytest.mark.parametrize("name", NAMES)
def test_contract_and_catalogue(name: str) -> None:
    dev = hwloop.open_device(f"sim:{name}?noise=0&seed=3")
    assert dev.info.in_dim == dev.info.out_dim == 2 and dev.info.stateful
    assert dev.info.low == (-1.0, -1.0) and dev.info.high == (1.0, 1.0)
    assert f"sim:{name}" in dict(describe())
    with pytest.raises(OutOfRangeError):
        dev.query(np.array([[1.2, 0.0]], np.float32))
    with pytest.raises(BadDeviceParameterError):
        hwloop.open_device(f"sim:{name}?drive=0")
    with pytest.raises(BadDeviceParameterError):
        make_sim(name, colour=1)


@pytest.mark.parametrize("name", NAMES)
def test_state_persists_across_queries_until_reset(name: str) -> None:
    x, _ = dpa200("val")
    x = x[:3000]
    dev = make_sim(name, noise=0.0)
    whole = dev.query(x)
    dev.reset()
    parts = np.concatenate([dev.query(x[:1000]), dev.query(x[1000:1777]), dev.query(x[1777:])])
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dev.clean_sequence(x), whole, rtol=1e-5, atol=1e-6)
    # without a reset the second answer starts from the first one's state
    again = dev.query(x[:50])
    dev.reset()
    fresh = dev.query(x[:50])
    assert not np.allclose(again[:5], fresh[:5], atol=1e-4)
    np.testing.assert_allclose(fresh, whole[:50], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_output_noise_is_seeded_and_of_the_declared_size(name: str) -> None:
    x, _ = dpa200("val")
    a, b = make_sim(name, noise=0.01, seed=1), make_sim(name, noise=0.01, seed=1)
    ya, yb = a.query(x), b.query(x)
    np.testing.assert_array_equal(ya, yb)
    assert np.std(ya - a.clean_sequence(x)) == pytest.approx(0.01, rel=0.05)


@pytest.mark.parametrize("name", NAMES)
def test_fit_to_the_measured_test_split_and_no_dpd_acpr(name: str) -> None:
    x, y = dpa200("test")
    out = make_sim(name).query(x)
    assert nmse_db(out, y, gain=1.0) < -30  # the docstring reports -31.5 / -31.3 dB
    assert -35 < acpr_db(out) < -25
    assert abs(acpr_db(out) - acpr_db(y)) < 1.5
    u = ofdm(OFDMSpec(n=16384, papr=8))
    assert -35 < acpr_db(make_sim(name).query(u)) < -25


def test_pa_gmp_equals_the_library_gmp_with_its_coefficients() -> None:
    fit = _fitted()
    order, memory, cross_order, cross_memory, lag = (int(v) for v in fit["gmp_cfg"])
    cfg = GMPConfig(order, memory, cross_order, cross_memory, lag)
    assert cfg.terms() == gmp_terms(order, memory, cross_order, cross_memory, lag)
    x, _ = dpa200("val")
    ref = GMP(cfg, fit["gmp_coeffs"])(cplx(x))
    np.testing.assert_allclose(cplx(make_sim("pa_gmp", noise=0.0).query(x)), ref, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_overdrive_saturates_instead_of_blowing_up(name: str) -> None:
    corner = np.full((200, 2), 1.0, np.float32)  # |x| = sqrt(2): inside the box, outside the envelope
    with pytest.raises(OutOfRangeError, match="above the peak"):
        make_sim(name, noise=0.0).query(corner)
    on_peak = np.full((200, 2), np.float32(np.sqrt(0.5) * (1 - 1e-6)), np.float32)  # |x| = 1
    out = np.abs(cplx(make_sim(name, noise=0.0).query(on_peak)))
    assert out.max() < 3.5
    x, _ = dpa200("val")
    hard = make_sim(name, noise=0.0, drive=1.4).query(x)
    assert acpr_db(hard) > acpr_db(make_sim(name, noise=0.0).query(x)) + 1


def test_parameters_change_the_distortion_as_documented() -> None:
    u = ofdm(OFDMSpec(n=16384))
    linear = acpr_db(make_sim("pa_gmp", noise=0.0, nonlin=0.0).query(u))
    assert linear < -70  # memory alone spreads no power out of the channel
    base = acpr_db(make_sim("pa_wh", noise=0.0).query(u))
    assert acpr_db(make_sim("pa_wh", noise=0.0, sat=0.8).query(u)) > base + 3  # earlier saturation


def test_thermal_memory_droops_the_gain_slowly_and_a_reset_cools_it() -> None:
    """pa_wh?thermal: a one-pole heating of time constant tau; the chain's gain falls by thermal * T."""
    thermal, tau = 0.05, 300.0
    dev = make_sim("pa_wh", noise=0.0, thermal=thermal, tau=tau)
    cold = make_sim("pa_wh", noise=0.0)
    x = np.tile(np.array([[0.2, 0.1]], np.float32), (3000, 1))  # constant envelope
    hot, ref = cplx(dev.query(x)), cplx(cold.query(x))
    ratio = np.abs(hot / ref)
    u2 = np.abs(cplx(x[:1]) * np.sum(_fitted()["wh_h1"]))[0] ** 2  # |h1 * x|^2 once the FIR settled
    t_end = u2 / 0.1  # P_REF
    assert ratio[30] > 1 - thermal * t_end * 0.2  # barely warm after 30 samples
    assert ratio[-1] == pytest.approx(1 - thermal * t_end, rel=1e-3)  # steady state after 10 tau
    k = int(tau)  # one time constant in: 1 - e^-1 of the way
    assert 1 - ratio[k + 20] == pytest.approx(thermal * t_end * (1 - np.exp(-(k + 20) / tau)), rel=0.08)
    dev.reset()
    np.testing.assert_allclose(cplx(dev.query(x[:50])), hot[:50], rtol=1e-5)  # cold again
    parts = np.concatenate([dev.query(x[50:1200]), dev.query(x[1200:])])
    np.testing.assert_allclose(cplx(parts), hot[50:], rtol=1e-5)
    with pytest.raises(BadDeviceParameterError):
        make_sim("pa_wh", thermal=1.0)
    with pytest.raises(BadDeviceParameterError):
        make_sim("pa_wh", tau=0.5)


def _inband_delay(x: np.ndarray, y: np.ndarray, band: float = 0.125) -> float:
    """Delay of y behind x in samples: the lag maximising the in-band cross-spectrum's alignment."""
    f = np.fft.fftfreq(len(x))
    keep = np.abs(f) <= band
    cross = (np.fft.fft(cplx(y)) * np.conj(np.fft.fft(cplx(x))))[keep]
    lags = np.arange(-2, 4, 0.005)
    return float(lags[np.argmax(np.abs(np.exp(2j * np.pi * np.outer(lags, f[keep])) @ cross))])


@pytest.mark.parametrize("frac", [0.3, 0.5])
def test_frac_delay_delays_the_linear_response_by_a_fraction_of_a_sample(frac: float) -> None:
    u = 0.5 * ofdm(OFDMSpec(n=8192, seed=4))
    plain = make_sim("pa_gmp", noise=0.0, nonlin=0.0).query(u)
    late = make_sim("pa_gmp", noise=0.0, nonlin=0.0, frac_delay=frac).query(u)
    assert _inband_delay(plain, late) == pytest.approx(frac, abs=0.05)
    assert nmse_db(late, plain) > -30  # not the same response
    taps = hwloop.open_device(f"sim:pa_wh?frac_delay={frac}").system.front
    assert np.abs(np.roots(taps)).max() == pytest.approx(frac / (1 - frac))  # on the unit circle at 0.5


def test_nmp_zero_puts_a_zero_outside_the_unit_circle_behind_the_amplifier() -> None:
    u = ofdm(OFDMSpec(n=4096, seed=5))
    plain = cplx(make_sim("pa_wh", noise=0.0).query(u))
    dev = make_sim("pa_wh", noise=0.0, nmp_zero=1.5)
    back = dev.system.back
    assert np.abs(np.roots(back)) == pytest.approx([1.5])
    want = np.convolve(plain, [1 / 2.5, 1.5 / 2.5])[: len(plain)]
    np.testing.assert_allclose(cplx(dev.query(u)), want, atol=1e-5)
    assert _inband_delay(iq(plain), iq(want)) == pytest.approx(0.6, abs=0.05)  # about A / (1 + A)


@pytest.mark.parametrize("name", NAMES)
def test_linear_response_variants_keep_state_and_refuse_bad_values(name: str) -> None:
    x, _ = dpa200("val")
    x = x[:2000]
    dev = make_sim(name, noise=0.0, frac_delay=0.4, nmp_zero=1.3)
    whole = dev.query(x)
    dev.reset()
    parts = np.concatenate([dev.query(x[:700]), dev.query(x[700:])])
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dev.clean_sequence(x), whole, rtol=1e-5, atol=1e-6)
    assert type(make_sim(name).system).__name__ != "FilteredAmplifier"  # 0: none, the fitted model as it was
    for bad in ("frac_delay=1", "frac_delay=-0.1", "nmp_zero=0.5", "nmp_zero=1"):
        with pytest.raises(BadDeviceParameterError):
            hwloop.open_device(f"sim:{name}?{bad}")
