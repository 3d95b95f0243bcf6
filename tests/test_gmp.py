"""GMP basis, least-squares fit, the streaming / Keras predistorter and indirect learning."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pa_helpers import wh_query

from hwloop.dpd.gmp import GMP, GMPConfig, GMPInverse, features, fit_ls
from hwloop.dpd.ila import indirect_learning, resolve_gain
from hwloop.dpd.metrics import acpr_db, nmse_db
from hwloop.dpd.signals import OFDMSpec, cplx, iq, ofdm
from hwloop.errors import ShapeError, UsageError

SMALL = GMPConfig(order=3, memory=2, cross_order=3, cross_memory=2, lag=2)


def _z(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.4 * (rng.normal(size=n) + 1j * rng.normal(size=n))


def _coeffs(cfg: GMPConfig, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = 0.05 * (rng.normal(size=len(cfg.terms())) + 1j * rng.normal(size=len(cfg.terms())))
    c[cfg.terms().index((1, 0, 0))] = 1.0
    return c


def test_terms_and_depth() -> None:
    cfg = GMPConfig()
    assert len(cfg.terms()) == 5 * 12 + 2 * 4 * 4
    assert cfg.depth == 11
    assert SMALL.terms()[:6] == [(1, 0, 0), (1, 1, 0), (2, 0, 0), (2, 1, 0), (3, 0, 0), (3, 1, 0)]
    assert GMPConfig(order=5, memory=1, cross_order=1, even=False).terms() == [
        (1, 0, 0),
        (3, 0, 0),
        (5, 0, 0),
    ]
    lead = GMPConfig(order=1, memory=1, cross_order=2, cross_memory=1, lag=0, lead=2)
    assert lead.terms() == [(1, 0, 0), (2, 0, -1), (2, 0, -2)]
    with pytest.raises(UsageError):
        GMPConfig(memory=0)


def test_features_match_the_definition_term_by_term() -> None:
    z = _z(40)
    phi = features(z, SMALL)

    def at(i: int) -> complex:
        return z[i] if i >= 0 else 0j

    for col, (k, m, lag) in enumerate(SMALL.terms()):
        for n in (0, 1, 2, 3, 17, 39):
            want = at(n - m) * abs(at(n - m - lag)) ** (k - 1)
            assert phi[n, col] == pytest.approx(want, abs=1e-12)
    lead = GMPConfig(order=1, memory=1, cross_order=2, cross_memory=1, lag=0, lead=1)
    p = features(z, lead)
    np.testing.assert_allclose(p[:-1, 1], z[:-1] * np.abs(z[1:]))
    assert p[-1, 1] == 0  # zeros after the end
    with pytest.raises(ShapeError):
        features(z, SMALL, history=np.zeros(5))


def test_least_squares_recovers_known_coefficients() -> None:
    cfg = GMPConfig(order=5, memory=3, cross_order=3, cross_memory=2, lag=2)
    c = _coeffs(cfg)
    z = _z(3000)
    model = GMP.fit(z, GMP(cfg, c)(z), cfg, ridge=0.0)
    np.testing.assert_allclose(model.coeffs, c, atol=1e-9)
    clean = GMP(cfg, c)(z)
    noisy = clean + 1e-3 * _z(3000, seed=9)  # about -57 dB below the signal
    fitted = features(z, cfg) @ fit_ls(features(z, cfg), noisy, ridge=1e-6)
    assert nmse_db(iq(fitted), iq(clean), 1.0) < -60  # averaging 3000 samples beats the noise
    with pytest.raises(UsageError):
        fit_ls(features(z[:5], cfg), z[:5])


def test_history_continues_a_sequence() -> None:
    z = _z(500)
    gmp = GMP(SMALL, _coeffs(SMALL))
    whole = gmp(z)
    np.testing.assert_allclose(gmp(z[200:], z[200 - SMALL.depth : 200]), whole[200:], atol=1e-12)


def test_predistorter_in_chunks_equals_the_whole_sequence_and_respects_the_peak() -> None:
    inv = GMPInverse(GMP(GMPConfig(), _coeffs(GMPConfig(), seed=4)), peak=0.8)
    t = ofdm(OFDMSpec(n=3000, seed=2))
    whole = inv.apply(t)
    stream = inv.stream()
    cuts = [0, 1, 7, 500, 501, 1999, 3000]
    chunks = np.concatenate([stream.send(t[a:b]) for a, b in itertools.pairwise(cuts)])
    np.testing.assert_allclose(chunks, whole, atol=1e-6)
    assert np.abs(cplx(whole)).max() <= 0.8 + 1e-6
    assert np.sum(np.abs(cplx(whole)) > 0.79) > 0  # the limit was active
    assert inv.apply(t[:0]).shape == (0, 2)
    with pytest.raises(UsageError):
        GMPInverse(GMP.identity(GMPConfig(lead=1)))


def test_resolve_gain_modes() -> None:
    u = ofdm(OFDMSpec(n=4096))
    uc = cplx(u)
    y = iq(np.tanh(3 * np.abs(uc)) / 3 * np.exp(1j * np.angle(uc)) * 2 * np.exp(0.2j))  # compressing, rotated
    peak = resolve_gain("peak", y, u)
    assert abs(peak) == pytest.approx(np.abs(cplx(y)).max() / np.abs(uc).max())
    assert np.angle(peak) == pytest.approx(0.2, abs=1e-6)
    assert abs(resolve_gain("small", y, u)) > abs(resolve_gain("avg", y, u)) > abs(peak)
    assert resolve_gain(2.5, y, u) == 2.5
    with pytest.raises(UsageError):
        resolve_gain("median", y, u)


def test_indirect_learning_linearises_the_wiener_hammerstein_amplifier() -> None:
    dev, query_sequence, calls = wh_query()
    u = ofdm(OFDMSpec(n=12000, papr=8, seed=0))
    res = indirect_learning(query_sequence, u)
    assert calls == [12000] * 3 and res.queries == 36000
    assert len(res.rounds) == 3
    held = ofdm(OFDMSpec(n=8192, papr=8, seed=1))  # a signal the fit never saw
    plain = dev.clean_sequence(held)
    x = res.inverse.apply(held)
    assert np.abs(cplx(x)).max() <= 1.0 + 1e-6
    pd = dev.clean_sequence(x)
    assert acpr_db(pd) < acpr_db(plain) - 12
    assert nmse_db(pd, held, res.gain) < -35
    assert nmse_db(plain, held) > -25


def test_indirect_learning_rejects_a_wrong_answer_shape() -> None:
    u = ofdm(OFDMSpec(n=2048))
    with pytest.raises(ShapeError):
        indirect_learning(lambda x: x[:-1], u, SMALL)
    with pytest.raises(UsageError):
        indirect_learning(lambda x: x, u, SMALL, iterations=0)


def test_leading_taps_read_the_future_and_stream_with_their_latency() -> None:
    cfg = GMPConfig(order=3, memory=5, cross_order=3, cross_memory=2, lag=2, lookahead=2)
    assert (
        cfg.depth == (5 - 1) - 2
        and cfg.future == 2
        and len(cfg.terms()) == len(cfg.with_lookahead(0).terms())
    )
    z = _z(60)
    phi = features(z, cfg)

    def at(i: int) -> complex:
        return z[i] if 0 <= i < len(z) else 0j

    for col, (k, m, lag) in enumerate(cfg.terms()):
        for n in (0, 1, 3, 30, 58, 59):
            want = at(n + 2 - m) * abs(at(n + 2 - m - lag)) ** (k - 1)
            assert phi[n, col] == pytest.approx(want, abs=1e-12)
    # the same map as a causal GMP run two samples later
    causal = GMP(cfg.with_lookahead(0), _coeffs(cfg))
    ahead = GMP(cfg, _coeffs(cfg))
    np.testing.assert_allclose(ahead(z)[:-2], causal(z)[2:], atol=1e-12)
    inv = GMPInverse(ahead, peak=5.0)
    assert inv.latency == 2
    t = iq(z)
    whole = inv.apply(t)
    stream = inv.stream()
    cuts = [0, 1, 2, 7, 30, 31, 60]
    sent = [stream.send(t[a:b]) for a, b in itertools.pairwise(cuts)]
    assert sum(len(s) for s in sent) == 60 - 2  # the last two wait for the targets after them
    np.testing.assert_allclose(np.concatenate([*sent, stream.flush()]), whole, atol=1e-6)
    with pytest.raises(UsageError):
        GMPConfig(memory=4, lookahead=4)
    with pytest.raises(UsageError):
        ahead.lift(GMPConfig(order=5, memory=5, cross_order=3, cross_memory=2, lag=2))  # another lookahead
