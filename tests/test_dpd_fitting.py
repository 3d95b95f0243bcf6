"""Conditioned DPD fits: the ridge chosen on held-out rows, row splits, stretches of windows, the
damped step, the drive-gain bound, and where a signal's sample rate and held-out part come from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pa_helpers import wh_query

from hwloop.dpd.direct import (
    LM_DAMPING,
    damped_step,
    direct_learning,
    drive_gain,
    gmp_jacobian,
    jacobian_times,
)
from hwloop.dpd.fitting import least_tied, ridge_fit, row_split, spread_windows
from hwloop.dpd.gmp import GMP, GMPConfig, Stretch, features
from hwloop.dpd.ila import indirect_learning
from hwloop.dpd.metrics import aclr_db, acpr_db, nmse_db
from hwloop.dpd.signals import OFDMSpec, cplx, holdout_split, iq, ofdm, resolve_fs, signal_rate
from hwloop.errors import UsageError

CFG = GMPConfig(order=5, memory=3, cross_order=3, cross_memory=2, lag=2)


def _z(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.4 * (rng.normal(size=n) + 1j * rng.normal(size=n))


def test_row_split_deals_blocks_by_weight_and_skips_invalid_rows() -> None:
    valid = np.ones(5000, bool)
    valid[:40] = False
    parts = row_split(5000, (3, 1, 1), block=100, valid=valid)
    assert (
        not np.any(parts[0] & parts[1])
        and not np.any(parts[1] & parts[2])
        and not np.any(parts[0] & parts[2])
    )
    assert not np.any(np.logical_or.reduce(parts)[:40]) and np.all(np.logical_or.reduce(parts)[40:])
    assert [int(p.sum()) for p in parts] == [2960, 1000, 1000]
    assert np.all(parts[1][300:400]) and not np.any(parts[1][:300])  # whole blocks, in turn


def test_ridge_fit_picks_a_ridge_that_predicts_held_out_rows() -> None:
    """An oversampled signal's GMP basis of order 7 is badly conditioned: the ridge chosen on held-out
    rows predicts them, and a signal never seen, better than an undamped solve, with coefficients
    of the size of the truth instead of hundreds; with no noise, almost no damping is chosen."""
    rng = np.random.default_rng(0)
    u = cplx(ofdm(OFDMSpec(n=1500, papr=8, seed=2)))  # band-limited: neighbouring taps nearly collinear
    cfg = GMPConfig(order=7, memory=8, cross_order=5, cross_memory=3, lag=3)
    phi = features(u, cfg)
    truth = GMP.identity(cfg).coeffs
    target = phi @ truth + 0.02 * (rng.normal(size=len(u)) + 1j * rng.normal(size=len(u)))
    fit_rows, hold_rows = row_split(len(u), (4, 1))
    damped = ridge_fit(phi, target, fit_rows, hold_rows)
    plain = ridge_fit(phi, target, fit_rows, hold_rows, ridges=(0.0,), refit=False)
    assert damped.ridge > 1e-9 and damped.condition > 1e4
    assert damped.holdout_nmse_db < plain.holdout_nmse_db
    fresh = features(cplx(ofdm(OFDMSpec(n=4000, papr=8, seed=9))), cfg)
    err = [nmse_db(fresh @ c, fresh @ truth, 1.0) for c in (damped.coeffs, plain.coeffs)]
    assert err[0] < err[1] - 3
    assert np.max(np.abs(damped.coeffs)) < 2 < 10 < np.max(np.abs(plain.coeffs))
    clean = ridge_fit(phi, phi @ truth, fit_rows, hold_rows)
    assert clean.ridge <= 1e-6 and clean.holdout_nmse_db < -60


def test_spread_windows_cover_the_signal_and_its_peak() -> None:
    wins = spread_windows(10_000, 1000, 4, must=9_990)
    assert len(wins) == 4 and all(b - a == 1000 for a, b in wins)
    assert all(wins[i][1] <= wins[i + 1][0] for i in range(3))  # no overlap
    assert wins[0][0] == 0 and any(a <= 9_990 < b for a, b in wins)
    assert spread_windows(1500, 1000, 4) == [(0, 1000)]  # fewer windows when they do not fit


def test_a_stretch_basis_takes_each_windows_history_from_the_signal() -> None:
    z = _z(3000, 1)
    st = Stretch(z, [(100, 900), (2000, 2600)], guard=8)
    phi = st.basis(CFG)
    d = CFG.depth
    np.testing.assert_allclose(phi[:800], features(z[100:900], CFG, z[100 - d : 100]))
    np.testing.assert_allclose(phi[800:], features(z[2000:2600], CFG, z[2000 - d : 2000]))
    np.testing.assert_array_equal(st.u, np.concatenate([z[100:900], z[2000:2600]]))
    assert (~st.valid).sum() == 16 and not st.valid[800:808].any() and st.valid[808]
    assert st.longest() == slice(8, 800)
    cold = Stretch(z, [(0, 800), (2000, 2600)], guard=8)  # starts where the signal does: a cold start
    assert (~cold.valid).sum() == 16 and (~cold.rows(cold=True)).sum() == 8 and cold.rows(cold=True)[0]
    assert (~st.rows(cold=True)).sum() == 16  # a window inside the signal is never a cold start


def test_lift_keeps_the_map_in_a_richer_basis() -> None:
    rng = np.random.default_rng(3)
    small = GMP(CFG, rng.normal(size=len(CFG.terms())) + 1j * rng.normal(size=len(CFG.terms())))
    big = small.lift(GMPConfig(order=7, memory=5, cross_order=4, cross_memory=3, lag=3))
    z = _z(400, 4)
    np.testing.assert_allclose(big(z), small(z), atol=1e-12)
    with pytest.raises(UsageError):
        big.lift(CFG)


def _linearised(seed: int, signal_seed: int, size: float) -> tuple:
    """A random GMP amplifier's Jacobian at a signal, a small predistorter basis phi on it, a
    residual J (phi dc) the step can explain exactly, the system [J phi, J (i phi)] on
    [Re dc, Im dc], and the generator (to go on drawing from)."""
    rng = np.random.default_rng(seed)
    amp = GMP(CFG, 0.05 * (rng.normal(size=len(CFG.terms())) + 1j * rng.normal(size=len(CFG.terms()))))
    amp.coeffs[0] = 1.0
    phi = features(_z(4000, signal_seed), GMPConfig(order=3, memory=2, cross_order=1))
    alpha, beta = gmp_jacobian(amp, _z(4000, signal_seed))
    dx = size * (phi @ (rng.normal(size=phi.shape[1]) + 1j * rng.normal(size=phi.shape[1])))
    a = np.concatenate([jacobian_times(alpha, beta, phi), jacobian_times(alpha, beta, 1j * phi)], axis=1)
    return phi, alpha, beta, jacobian_times(alpha, beta, dx), a, rng


def test_damped_step_is_gauss_newton_when_the_problem_is_well_posed() -> None:
    phi, alpha, beta, e, a, _ = _linearised(5, 6, 0.01)
    fit_rows, hold_rows = row_split(len(e), (4, 1))
    lm, rf = damped_step(phi, alpha, beta, e, fit_rows, hold_rows)
    # the undamped Gauss-Newton step: least squares of J (phi dc) = e on [Re dc, Im dc]
    sol = np.linalg.lstsq(np.vstack([a.real, a.imag]), np.concatenate([e.real, e.imag]), rcond=None)[0]
    gn = sol[: phi.shape[1]] + 1j * sol[phi.shape[1] :]
    assert rf.ridge <= 1e-6
    np.testing.assert_allclose(lm, gn, rtol=1e-3, atol=1e-8)


def test_least_tied_takes_the_boldest_candidate_the_blocks_cannot_tell_from_the_best() -> None:
    rng = np.random.default_rng(3)
    best = 1.0 + 0.1 * rng.standard_normal(40)  # hold-out error per block of the best candidate
    tied = best + 0.1 * rng.standard_normal(40)  # noise about it: no difference the blocks can see
    worse = best + 0.2 + 0.05 * rng.standard_normal(40)  # worse in every block
    assert least_tied(np.stack([tied, worse, best]), best=2) == 0
    assert least_tied(np.stack([worse, tied, best]), best=2) == 1  # the least damped tied one
    assert least_tied(np.stack([worse, worse + 0.1, best]), best=2) == 2
    assert least_tied(np.stack([best, tied]), best=0) == 0  # nothing bolder than the best


def test_damped_step_takes_the_least_damping_tied_with_the_best() -> None:
    """Noise on the residual the step cannot explain makes every small damping tie on held-out
    rows; the step keeps the smallest of them, where choosing by the error alone picks any."""
    phi, alpha, beta, explained, a, rng = _linearised(12, 12, 0.03)
    e = explained + 0.01 * (rng.standard_normal(len(explained)) + 1j * rng.standard_normal(len(explained)))
    fit_rows, hold_rows = row_split(len(e), (3, 1))
    _, rf = damped_step(phi, alpha, beta, e, fit_rows, hold_rows)
    plain = ridge_fit(np.vstack([a.real, a.imag]), np.concatenate([e.real, e.imag]),
                      np.tile(fit_rows, 2), np.tile(hold_rows, 2), ridges=LM_DAMPING)  # fmt: skip
    assert rf.ridge < plain.ridge


def test_drive_gain_ignores_targets_near_zero() -> None:
    u = np.array([1.0, 0.5, 1e-4, 0.2], complex)
    x = np.array([0.5, 0.3, 0.1, 0.4], complex)  # the 1e-4 target is below the floor
    assert drive_gain(x, u) == pytest.approx(2.0)


def test_direct_learning_keeps_inside_its_gain_bound_and_judges_unseen_rows() -> None:
    u = 2.0 * ofdm(OFDMSpec(n=8000, papr=8, seed=0))
    _, q, _ = wh_query(seed=0)
    warm = indirect_learning(q, u, iterations=2, gain=1.0, start_gain=float(np.abs(cplx(u)).max()))
    assert all("ridge" in r and "holdout_nmse_db" in r for r in warm.rounds)  # ridge chosen per fit
    res = direct_learning(q, u, warm.inverse, measurements=3, pairs=warm.pairs, keep="best")
    assert res.gain_bound > 0 and all(r["drive_gain"] <= res.gain_bound + 1e-9 for r in res.rounds)
    assert len(res.damping) == 2 and all(d > 0 for d in res.damping)
    assert res.surrogate_ridge is not None
    judged = [r["judge_nmse_db"] for r in res.rounds]
    # The warm start is no incumbent: of the rounds the figures cannot tell from the best, the latest.
    assert res.kept_round == max(res.tied_with_best)
    assert judged[res.kept_round] <= min(judged) + 3 * max(r["judge_nmse_se_db"] for r in res.rounds)
    acpr = [(r["judge_acpr_dbc"], r["judge_acpr_se_db"]) for r in res.rounds]
    best = min(range(len(acpr)), key=lambda i: acpr[i][0])  # the kept round's ACPR is tied with the best
    assert acpr[res.kept_round][0] <= acpr[best][0] + 2 * np.hypot(acpr[res.kept_round][1], acpr[best][1])


def test_signal_rate_comes_from_the_signals_own_metadata(tmp_path: Path) -> None:
    x = ofdm(OFDMSpec(n=512))
    np.savez(tmp_path / "with.npz", x=x, fs=983.04e6)
    np.savez(tmp_path / "without.npz", x=x)
    (tmp_path / "d").mkdir()
    np.savetxt(tmp_path / "d" / "train_input.csv", x, delimiter=",", header="I,Q", comments="")
    (tmp_path / "d" / "spec.json").write_text(json.dumps({"input_signal_fs": 983.04e6}))
    assert signal_rate(tmp_path / "with.npz") == 983.04e6
    assert signal_rate(tmp_path / "without.npz") is None
    assert signal_rate(tmp_path / "d" / "train_input.csv") == 983.04e6
    assert signal_rate("ofdm:fs=640e6,bw=160e6") == 640e6
    assert signal_rate("dpa200:train") == 800e6
    assert resolve_fs(None, str(tmp_path / "with.npz")) == 983.04e6
    assert resolve_fs(700e6, str(tmp_path / "with.npz")) == 700e6  # --fs wins
    assert resolve_fs(None, str(tmp_path / "without.npz")) == 800e6
    (tmp_path / "d" / "spec.json").write_text(json.dumps({"input_signal_fs": -1}))
    with pytest.raises(UsageError):
        signal_rate(tmp_path / "d" / "train_input.csv")


def test_holdout_split_keeps_the_end_for_scoring() -> None:
    t = iq(np.arange(2000) + 0j)
    train, held = holdout_split(t, 0.2)
    assert len(train) == 1600 and held is not None and len(held) == 400 and held[0, 0] == 1600
    assert holdout_split(t, 0.0)[1] is None
    with pytest.raises(UsageError):
        holdout_split(t, 0.9)


def test_aclr_uses_a_square_filter_of_the_transmission_bandwidth() -> None:
    u = ofdm(OFDMSpec(n=16384, papr=8))
    z = cplx(u)
    rms = np.sqrt(np.mean(np.abs(z) ** 2))
    clipped = np.where(np.abs(z) > 1.5 * rms, z * 1.5 * rms / np.abs(z), z)
    assert aclr_db(u) > 60
    assert 20 < aclr_db(clipped) < 60
    assert aclr_db(clipped) == pytest.approx(-acpr_db(clipped), abs=3)  # about -ACPR on a narrower filter
    with pytest.raises(UsageError):
        aclr_db(u, occupied=1.5)
