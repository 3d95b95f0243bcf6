"""Crest factor reduction, EVM by demodulation and the signal path of a DPD run."""

from __future__ import annotations

import numpy as np
import pytest

from hwloop.dpd.cfr import apply_cfr, clip_filter, peak_window
from hwloop.dpd.demod import demod_evm_db
from hwloop.dpd.metrics import acpr_db
from hwloop.dpd.path import ofdm_spec, signal_path
from hwloop.dpd.signals import OFDMSpec, cplx, iq, ofdm, papr_db, qam_grid
from hwloop.errors import UsageError

SPEC = OFDMSpec(n=16384, papr=0, seed=1)


def test_qam_grid_is_what_the_generator_transmits() -> None:
    grid, carriers = qam_grid(SPEC)
    assert grid.shape == (16, SPEC.nfft) and not carriers[0] and np.all(grid[:, ~carriers] == 0)
    side = np.arange(4) * 2.0 - 3
    assert set(np.unique(grid[:, carriers].real)) <= set(side)
    np.testing.assert_array_equal(ofdm(SPEC), ofdm(SPEC))  # unchanged by drawing the grid apart


def test_demodulated_evm_equalises_linear_responses_and_counts_distortion() -> None:
    u = cplx(ofdm(SPEC))
    self_evm, symbols = demod_evm_db(u, SPEC, 0, u)
    assert symbols == 16 and self_evm < -200
    rotated = 2.0 * np.exp(0.7j) * np.convolve(u, [1.0, 0.2j])[: len(u)]  # gain, phase, a 2-tap memory
    assert demod_evm_db(rotated, SPEC, 0, u)[0] < -25  # a per-subcarrier equaliser takes it out
    rng = np.random.default_rng(0)
    rms = np.sqrt(np.mean(np.abs(u) ** 2))
    noisy = u + 0.01 * rms * (rng.normal(size=len(u)) + 1j * rng.normal(size=len(u))) / np.sqrt(2)
    # White noise 40 dB under the signal, spread over all bins, the data on a quarter of them:
    _, carriers = qam_grid(SPEC)
    expect = -40 - 10 * np.log10(SPEC.nfft / carriers.sum())
    assert demod_evm_db(noisy, SPEC, 0, u)[0] == pytest.approx(expect, abs=1.0)
    # Symbol alignment: a stretch that starts mid-signal demodulates its whole symbols only.
    part = demod_evm_db(noisy[1500:9000], SPEC, 1500, u[1500:9000])
    assert part is not None and part[1] == 6 and part[0] == pytest.approx(expect, abs=2)
    assert demod_evm_db(u[:1500], SPEC, 0, u[:1500]) is None  # one whole symbol is not enough
    # Against the QAM data: the generator's own filtering and clipping cost EVM, more with clipping.
    own = demod_evm_db(u, SPEC)[0]
    clipped = OFDMSpec(n=16384, papr=6, seed=1)
    assert own < -20 and demod_evm_db(ofdm(clipped), clipped)[0] > own + 2


def test_cfr_lowers_the_papr_at_an_evm_cost() -> None:
    u = ofdm(SPEC)
    before = papr_db(u)
    for method in ("clip", "window"):
        out, info = apply_cfr(u, method, 7.0, 800e6, 200e6)
        assert info["cfr"] == method and info["cfr_papr_before_db"] == pytest.approx(before, abs=1e-3)
        assert info["cfr_papr_after_db"] < 7.4 < before
        assert -40 < info["cfr_evm_db"] < -20  # it costs EVM, and says how much
        gentler, _ = apply_cfr(u, method, 8.0, 800e6, 200e6)
        assert papr_db(gentler) > papr_db(out)
    z = cplx(u)
    assert acpr_db(clip_filter(z, 7.0, 800e6, 200e6)) < -60  # filtered: no regrowth outside the channel
    assert acpr_db(peak_window(z, 7.0)) > acpr_db(clip_filter(z, 7.0, 800e6, 200e6))  # windowing regrows
    same, info = apply_cfr(u, "none", 7.0, 800e6, 200e6)
    assert same is u and info == {"cfr": "none"}
    with pytest.raises(UsageError):
        apply_cfr(u, "hard", 7.0, 800e6, 200e6)
    with pytest.raises(UsageError):
        peak_window(z, 7.0, window=4)


def test_signal_path_holds_out_the_end_and_knows_its_symbols() -> None:
    text = "ofdm:n=8192,papr=8,seed=2"
    t = 2.0 * ofdm(ofdm_spec(text))
    path = signal_path(t, signal=text, gain=2.0, holdout=0.25, fs=800e6, bw=200e6)
    assert len(path.train) == 6144 and path.held is not None and len(path.held) == 2048
    assert path.origin is not None and path.origin[1] == 6144 and path.origin[0].seed == 2
    assert path.info == {"cfr": "none", "eval_held_out": True}
    other = signal_path(
        t, signal=text, gain=2.0, holdout=0.25, eval_signal="ofdm:n=4096,seed=5", fs=800e6, bw=200e6
    )
    assert len(other.train) == 8192 and len(other.held) == 4096 and other.origin[1] == 0
    cut = signal_path(t, signal=text, gain=2.0, holdout=0.0, cfr="clip", cfr_papr=6.5, fs=800e6, bw=200e6)
    assert cut.held is None and cut.info["cfr"] == "clip" and papr_db(cut.train) < 6.9
    assert ofdm_spec("dpa200:train") is None and ofdm_spec(None) is None
    assert isinstance(iq(np.ones(3)), np.ndarray)


@pytest.mark.parametrize("symbols", [4, 8, 16])
def test_demodulated_evm_is_unbiased_whatever_the_symbol_count(symbols: int) -> None:
    """A known error on the data subcarriers (-30 dB, white) reads -30 dB on average over seeds,
    from 4 symbols up: the equaliser scoring a symbol never saw it. Fitted on the symbols it
    scores, it would read 10 log10(S / (S - 1)) dB low (1.2 dB on four)."""
    from hwloop.dpd.demod import whole_symbols

    spec = OFDMSpec(n=symbols * 1024, papr=0, seed=2)
    u = cplx(ofdm(spec))
    _, carriers = qam_grid(spec)
    sym = np.fft.fft(u.reshape(symbols, 1024), axis=1)
    level = np.sqrt(np.mean(np.abs(sym[:, carriers]) ** 2) * 1e-3)  # -30 dB of the data's power
    readings = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        noise = np.zeros_like(sym)
        noise[:, carriers] = (
            level
            * (rng.normal(size=(symbols, carriers.sum())) + 1j * rng.normal(size=(symbols, carriers.sum())))
            / np.sqrt(2)
        )
        y = np.fft.ifft(sym + noise, axis=1).ravel()
        got = demod_evm_db(y, spec, 0, u)
        assert got is not None and got[1] == symbols == whole_symbols(len(y), spec)
        readings.append(10 ** (got[0] / 10))
    assert 10 * np.log10(np.mean(readings)) == pytest.approx(-30.0, abs=0.25)
    assert demod_evm_db(u[: 3 * 1024], spec, 0, u[: 3 * 1024]) is None  # three symbols: not reported
