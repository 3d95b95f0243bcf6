"""Alignment of free-running looped captures: integer + fractional delay, phase kept, bad ones rejected."""

from __future__ import annotations

import numpy as np
import pytest

from hwloop.drivers.bench.alignment import advance, align, average_periods
from hwloop.drivers.bench.device import calibration_signal, quantise
from hwloop.simulators.fake_bench.path import PathModel, fractional_fir


def _band_limited(n: int, seed: int, width: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n) + 1j * rng.normal(size=n)
    z = np.fft.ifft(np.fft.fft(z) * (np.abs(np.fft.fftfreq(n)) < width))
    return 0.3 * z / np.sqrt(np.mean(np.abs(z) ** 2))


def _delayed(z: np.ndarray, d: float) -> np.ndarray:
    k = np.fft.fftfreq(len(z)) * len(z)
    return np.fft.ifft(np.fft.fft(z) * np.exp(-2j * np.pi * k * d / len(z)))


@pytest.mark.parametrize(("delay", "start"), [(37.3, 0), (123.71, 500), (5.5, 1000), (1000.05, 7)])
def test_integer_and_fractional_delay_recovered_well_below_a_twentieth(delay: float, start: int) -> None:
    rng = np.random.default_rng(1)
    ref = _band_limited(1024, 0)
    g = 0.4 * np.exp(1j * 2.1)
    period = g * _delayed(ref, delay)
    capture = np.roll(np.tile(period, 4), -start)  # free-running: the capture starts mid-period
    capture = capture + 1e-3 * (rng.normal(size=len(capture)) + 1j * rng.normal(size=len(capture)))
    out, a = align(ref, capture)
    expected = (delay - start) % 1024
    residual = (a.delay - expected + 512) % 1024 - 512
    assert abs(residual) < 0.005
    assert a.correlation > 0.99 and abs(a.gain - g) < 2e-3  # phase and gain kept, not normalised
    assert np.max(np.abs(out - g * ref)) < 0.02


def test_the_fake_paths_fir_delay_is_recovered_too() -> None:
    """A windowed-sinc FIR (not an FFT ramp) delays the looped stream: the estimate still holds."""
    ref = _band_limited(2048, 2)
    taps = fractional_fir(0.37)
    stream = np.convolve(np.tile(ref, 6), taps, mode="valid")  # stream[j] = looped ref at j + 32 - 0.37
    capture = stream[2048 + 100 : 2048 + 100 + 4 * 2048]
    _, a = align(ref, capture)
    residual = (a.delay - (-(100 + 32 - 0.37)) % 2048 + 1024) % 2048 - 1024
    assert abs(residual) < 0.01


def test_a_capture_takes_the_session_fraction_and_reports_how_far_its_own_estimate_lay() -> None:
    ref = _band_limited(1024, 3)
    capture = np.roll(np.tile(_delayed(ref, 40.30), 2), -3)  # the start moves by whole samples only
    _, near = align(ref, capture, session_fraction=0.32)
    assert near.delay == pytest.approx(37.32, abs=1e-9) and near.drift == pytest.approx(-0.02, abs=2e-3)
    _, far = align(ref, capture, session_fraction=0.75)  # a path that moved: the nearest whole shift, flagged
    assert far.delay == pytest.approx(37.75, abs=1e-9) and far.drift == pytest.approx(-0.45, abs=2e-3)
    _, own = align(ref, capture, offset=0.1)
    assert own.delay == pytest.approx(37.40, abs=2e-3)


def test_averaging_periods_divides_the_noise() -> None:
    rng = np.random.default_rng(4)
    ref = _band_limited(512, 5)
    noise = rng.normal(size=16 * 512) + 1j * rng.normal(size=16 * 512)
    avg = average_periods(np.tile(ref, 16) + noise, 512)
    assert np.mean(np.abs(avg - ref) ** 2) == pytest.approx(2 / 16, rel=0.15)


def test_a_capture_of_another_waveform_is_rejected_by_correlation() -> None:
    ref = _band_limited(1024, 6)
    _, a = align(ref, np.tile(_band_limited(1024, 7), 2))
    assert a.correlation < 0.5


def test_advance_is_exact_for_whole_samples() -> None:
    z = _band_limited(256, 8)
    assert np.allclose(advance(np.roll(z, 17), 17), z, atol=1e-12)


def test_a_delay_left_unaligned_costs_what_bench_md_says() -> None:
    """A 0.3-sample residual on full-band I/Q: agreement near -5 dB, against far below after alignment."""
    ref = _band_limited(4096, 9, width=0.5)
    off = _delayed(ref, 0.3)
    err = 10 * np.log10(np.mean(np.abs(off - ref) ** 2) / np.mean(np.abs(ref) ** 2))
    assert -7 < err < -3
    aligned, _ = align(ref, np.tile(off, 2))
    assert 10 * np.log10(np.mean(np.abs(aligned - ref) ** 2) / np.mean(np.abs(ref) ** 2)) < -80


def test_quantisation_never_raises_a_magnitude() -> None:
    rng = np.random.default_rng(10)
    z = np.exp(1j * rng.uniform(-np.pi, np.pi, 20000)) * rng.uniform(0.9, 1.0, 20000)
    iq = quantise(z).astype(np.float64)
    assert np.all(np.hypot(iq[:, 0], iq[:, 1]) <= np.abs(z) * 32767 + 1e-9)
    assert np.max(np.abs(iq / 32767 - np.stack([z.real, z.imag], 1))) < 1.5 / 32767


def test_a_memoryless_fake_path_reads_back_its_delay_gain_and_phase() -> None:
    """Through the fake path with a memoryless amplifier at small signal (saleh_iq, gain 2.1587), the
    capture's fraction is the path's 0.42 and its gain the amplifier's times the path's -6 dB at 0.9 rad."""
    path = PathModel("sim:saleh_iq?noise=0", delay=17.42, gain_db=-6.0, phase=0.9, noise_dbc=-140)
    z = calibration_signal(2048, 0.005, 0.5)
    period = np.concatenate([np.zeros(64), z])
    capture, clipped = path.capture(period * np.sqrt(10 ** (-8 / 10)), 4 * len(period), -10.0)
    _, a = align(period, capture)
    expected = 2.1587 * 10 ** (-6 / 20) * np.exp(0.9j) * np.sqrt(10 ** (-8 / 10))
    assert not clipped and a.correlation > 0.999
    assert a.fraction == pytest.approx(0.42, abs=0.01)
    assert abs(a.gain / expected - 1) < 1e-3
