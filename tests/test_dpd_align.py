"""Time alignment: the amplifier's delay, and the leading taps a non-causal inverse needs."""

from __future__ import annotations

import numpy as np
import pytest
from pa_helpers import wh_query

from hwloop.dpd.align import ALIGNED, EXTRA, choose_lookahead, estimate_delay
from hwloop.dpd.gmp import GMPConfig, Stretch
from hwloop.dpd.ila import indirect_learning
from hwloop.dpd.metrics import acpr_db
from hwloop.dpd.signals import OFDMSpec, cplx, ofdm

FS, BW = 800e6, 200e6


def _delayed(z: np.ndarray, d: float) -> np.ndarray:
    f = np.fft.fftfreq(len(z))
    return np.fft.ifft(np.fft.fft(z) * np.exp(-2j * np.pi * f * d))


@pytest.mark.parametrize("delay", [0.0, 0.37, 2.5, 7.81, -1.25])
def test_estimate_delay_reads_integer_and_fractional_delays(delay: float) -> None:
    z = cplx(ofdm(OFDMSpec(n=8192, seed=3)))
    y = 1.7j * _delayed(z, delay) + 1e-3 * (np.random.default_rng(0).normal(size=len(z)))
    assert estimate_delay(z, y, FS, BW) == pytest.approx(delay, abs=0.02)


def _ila(lookahead: int | str, **params: float) -> tuple[float, object]:
    """Indirect learning on sim:pa_wh (with ``params``), scored noise-free on a signal it never saw."""
    u = 2.0 * ofdm(OFDMSpec(n=6000, papr=8, seed=0))
    dev, q, _ = wh_query(noise=1e-4, seed=1, **params)
    res = indirect_learning(q, u, gain=1.0, start_gain=float(np.abs(cplx(u)).max()), lookahead=lookahead)
    held = 2.0 * ofdm(OFDMSpec(n=8192, papr=8, seed=7))
    return acpr_db(dev.clean_sequence(res.inverse.apply(held)), FS, BW), res


def test_leading_taps_are_chosen_where_the_inverse_is_not_causal_and_pay_for_themselves() -> None:
    nmp = {"frac_delay": 0.5, "nmp_zero": 1.5}
    causal_acpr, _ = _ila(0, **nmp)
    auto_acpr, res = _ila("auto", **nmp)
    a = res.alignment
    assert a is not None and a.lookahead >= 1
    assert res.inverse.model.cfg.lookahead == a.lookahead == res.inverse.latency
    assert a.delay == pytest.approx(1.1, abs=0.3)  # 0.5 in front, about 0.6 behind
    assert [c["lookahead"] for c in a.candidates] == list(range(len(a.candidates)))  # searched from 0
    assert auto_acpr < causal_acpr - 6  # measured: -57.6 against -40.0 dBc
    info = a.info(FS)
    assert info["latency_samples"] == a.lookahead and info["latency_s"] == pytest.approx(a.lookahead / FS)


def test_a_minimum_phase_amplifier_keeps_a_causal_predistorter() -> None:
    _, res = _ila("auto")
    assert res.alignment is not None and res.alignment.lookahead == 0
    assert abs(res.alignment.delay) < 0.5


def test_choose_lookahead_takes_the_smallest_within_tolerance() -> None:
    u = ofdm(OFDMSpec(n=3000, seed=2))
    z = cplx(u)
    stretch = Stretch.whole(u)
    cfg = GMPConfig(order=1, memory=8, cross_order=1)

    # a linear "amplifier" y = x: every lookahead predicts the same, so the smallest is kept
    def pick(c: GMPConfig) -> np.ndarray:  # the term that reads z[n] whatever the lookahead
        return np.eye(len(c.terms()))[c.lookahead]

    y = _delayed(z, 0.4)  # off a whole sample: the search runs
    a = choose_lookahead(stretch, z, y, cfg, pick, peak=2.0, gain=1.0, fs=FS, bw=BW)
    assert a.lookahead == 0 and a.delay == pytest.approx(0.4, abs=0.02)
    assert [c["lookahead"] for c in a.candidates] == list(range(1 + EXTRA + 1))  # to ceil(delay) + EXTRA
    short = choose_lookahead(
        stretch, z, y, GMPConfig(order=1, memory=6, cross_order=1), pick, peak=2.0, gain=1.0, fs=FS, bw=BW
    )
    assert len(short.candidates) == 6 - 4 + 1  # MIN_LAGGING taps stay at or behind n


@pytest.mark.parametrize("delay", [0.0, 0.06, -0.08, 0.15, 1.02])
def test_an_amplifier_aligned_with_its_drive_gets_no_leading_taps_without_a_search(delay: float) -> None:
    """At a delay within ALIGNED of zero the predictions are not asked (they favoured spare taps on
    a minimum-phase amplifier, which cost up to 9 dB ACPR): L = 0, one candidate. Further off, the
    search runs from 0."""
    z = cplx(ofdm(OFDMSpec(n=3000, seed=2)))
    stretch = Stretch.whole(ofdm(OFDMSpec(n=3000, seed=2)))
    cfg = GMPConfig(order=1, memory=8, cross_order=1)

    def pick(c: GMPConfig) -> np.ndarray:
        return np.eye(len(c.terms()))[c.lookahead]

    a = choose_lookahead(stretch, z, _delayed(z, delay), cfg, pick, peak=2.0, gain=1.0, fs=FS, bw=BW)
    looks = [c["lookahead"] for c in a.candidates]
    assert looks == ([0] if abs(delay) <= ALIGNED else list(range(len(looks)))) and len(looks) >= 1
    assert abs(delay) <= ALIGNED or len(looks) > 1
