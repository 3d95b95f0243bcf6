"""ACPR, EVM and NMSE of amplifier outputs."""

from __future__ import annotations

import numpy as np
import pytest

from hwloop.dpd.metrics import acpr_db, acpr_sides_db, dpd_report, evm_db, linear_gain, nmse_db
from hwloop.dpd.signals import OFDMSpec, cplx, dpa200, iq, ofdm
from hwloop.errors import ShapeError, UsageError


def _clip(z: np.ndarray, level: float) -> np.ndarray:
    mag = np.abs(z)
    return np.where(mag > level, z * level / mag, z)


def test_acpr_of_a_clean_band_limited_ofdm_signal_is_very_low() -> None:
    u = ofdm(OFDMSpec(n=16384, papr=8))
    assert acpr_db(u) < -70


def test_acpr_rises_with_clipping() -> None:
    z = cplx(ofdm(OFDMSpec(n=16384, papr=0, seed=2)))
    rms = np.sqrt(np.mean(np.abs(z) ** 2))
    mild, hard = acpr_db(_clip(z, 2.0 * rms)), acpr_db(_clip(z, 1.0 * rms))
    assert -60 < mild < -30
    assert hard > mild + 5


def test_acpr_of_the_measured_dpa_output_is_about_minus_32_dbc() -> None:
    x, y = dpa200("test")
    assert acpr_db(y) == pytest.approx(-32.0, abs=1.0)
    lower, upper = acpr_sides_db(y)
    assert acpr_db(y) == max(lower, upper)
    assert acpr_db(x) < acpr_db(y) - 5  # the amplifier, not the input, makes the regrowth


def test_acpr_reports_the_worse_side_and_ignores_gain() -> None:
    u = cplx(ofdm(OFDMSpec(n=8192)))
    t = np.arange(len(u))
    tone = 1e-3 * np.exp(2j * np.pi * 210e6 / 800e6 * t)  # a spur in the upper adjacent channel
    lower, upper = acpr_sides_db(u + tone)
    assert upper > lower + 20
    assert acpr_db(u + tone) == pytest.approx(upper)
    assert acpr_db(5j * (u + tone)) == pytest.approx(upper, abs=1e-9)
    assert acpr_db(u + tone, bw=100e6) != pytest.approx(upper)  # channel bandwidth is a parameter


def test_evm_and_nmse_are_zero_error_for_a_linear_output_and_match_known_noise() -> None:
    rng = np.random.default_rng(0)
    u = cplx(ofdm(OFDMSpec(n=8192)))
    g = 2.5 * np.exp(0.3j)
    assert linear_gain(g * u, u) == pytest.approx(g)
    assert nmse_db(g * u + 1e-9, u) < -100
    e = (
        (rng.normal(size=u.shape) + 1j * rng.normal(size=u.shape))
        * 0.01
        * np.sqrt(np.mean(np.abs(g * u) ** 2) / 2)
    )
    assert nmse_db(g * u + e, u) == pytest.approx(-40.0, abs=0.3)
    # white noise: only the in-band quarter (bw / fs) counts for EVM
    assert evm_db(g * u + e, u) == pytest.approx(-40.0 - 10 * np.log10(800 / 200), abs=0.5)
    # a fixed gain that is off by 10 % shows up as -20 dB error
    assert nmse_db(g * u, u, gain=1.1 * g) == pytest.approx(20 * np.log10(0.1 / 1.1), abs=0.01)


def test_dpd_report_keys_and_errors() -> None:
    u = ofdm(OFDMSpec(n=4096))
    rep = dpd_report(iq(2 * cplx(u)), u)
    assert set(rep) == {"acpr_dbc", "evm_db", "nmse_db"}
    with pytest.raises(ShapeError):
        nmse_db(u[:100], u)
    with pytest.raises(UsageError):
        acpr_db(u, fs=800e6, bw=300e6)  # adjacent channels would not fit
    with pytest.raises(ShapeError):
        acpr_db(np.zeros((4096, 3)))


@pytest.mark.parametrize("n", [1500, 4000, 8192])
def test_stated_uncertainty_matches_the_spread_over_stretches(n: int) -> None:
    """The standard errors each stretch states agree with how much the figures vary from one
    stretch to the next (a compressing amplifier plus noise on 40 OFDM stretches, each cut from
    the middle of a longer signal, so not periodic: its ends do not meet)."""
    from hwloop.dpd.readings import acpr_se_db, evm_se_db, nmse_se_db

    figures: dict[str, list[float]] = {k: [] for k in ("acpr", "acpr_se", "evm", "evm_se", "nmse", "nmse_se")}
    for seed in range(40):
        u = cplx(ofdm(OFDMSpec(n=3 * n, seed=seed, papr=8)))[n : 2 * n]
        rng = np.random.default_rng(seed)
        y = u * (1 - 0.05 * np.abs(u) ** 2) + 2e-3 * (rng.normal(size=n) + 1j * rng.normal(size=n))
        figures["acpr"].append(acpr_db(y))
        figures["acpr_se"].append(acpr_se_db(y))
        figures["evm"].append(evm_db(y, u, 1.0))
        figures["evm_se"].append(evm_se_db(y, u, 1.0))
        figures["nmse"].append(nmse_db(y, u, 1.0))
        figures["nmse_se"].append(nmse_se_db(y, u, 1.0))
    for key in ("acpr", "evm", "nmse"):
        ratio = np.std(figures[key]) / np.mean(figures[f"{key}_se"])
        assert 0.6 < ratio < 1.5, (key, ratio)


def test_acpr_read_through_the_error_needs_no_long_stretch() -> None:
    """On 350 samples a Welch estimate of the output is floored by the window's leakage of the main
    channel; read through the error against the target (plus the signal's own share) it agrees
    with the long stretch's, for a clean generated signal and for the measured one (own ACPR -41 dBc)."""
    from hwloop.dpd.metrics import aclr_db
    from hwloop.dpd.readings import OwnACPR, aclr_by_error_db, acpr_by_error

    for u in (cplx(ofdm(OFDMSpec(n=40000, seed=4, papr=8))), cplx(dpa200("train")[0])):
        rng = np.random.default_rng(1)
        y = u * (1 - 0.02 * np.abs(u) ** 2) + 3e-4 * (rng.normal(size=len(u)) + 1j * rng.normal(size=len(u)))
        own = OwnACPR.of(u, 800e6, 200e6)
        long_acpr, long_aclr = acpr_db(y), aclr_db(y)
        short = [(y[s : s + 350], u[s : s + 350]) for s in range(0, 20000, 1000)]
        by_error = [acpr_by_error(a, b, own=own.sides) for a, b in short]
        assert abs(np.mean([v for v, _ in by_error]) - long_acpr) < 1.0
        assert np.mean([aclr_by_error_db(a, b, own=own.aclr_db) for a, b in short]) == pytest.approx(
            long_aclr, abs=1.0
        )
        ses = [se for _, se in by_error]
        assert all(np.isfinite(ses)) and 0 < np.median(ses) < 2.5  # a short stretch says it is uncertain
    assert np.mean([acpr_db(a) for a, _ in short]) > long_acpr + 10  # the plain estimate, floored
