"""Test signals: the OFDM-like generator, spec strings and measured I/Q files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwloop.dpd.signals import (
    OFDMSpec,
    cplx,
    dpa200,
    load_signal,
    ofdm,
    papr_db,
    parse_ofdm,
    read_iq,
    read_pairs,
)
from hwloop.errors import ShapeError, UsageError


def test_ofdm_is_seeded_shaped_and_peak_normalised() -> None:
    a = ofdm(OFDMSpec(n=5000, seed=3))
    b = ofdm(OFDMSpec(n=5000, seed=3))
    c = ofdm(OFDMSpec(n=5000, seed=4))
    assert a.shape == (5000, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.abs(cplx(a)).max() == pytest.approx(1.0, rel=1e-6)
    assert np.abs(cplx(ofdm(OFDMSpec(n=512, peak=0.5)))).max() == pytest.approx(0.5, rel=1e-6)


def test_ofdm_is_band_limited_to_the_occupied_band() -> None:
    spec = OFDMSpec(bw=100e6, fs=800e6, n=8192, occ=0.9)
    z = cplx(ofdm(spec))
    power = np.abs(np.fft.fft(z)) ** 2
    f = np.fft.fftfreq(len(z), 1 / spec.fs)
    inside = np.abs(f) <= spec.bw * spec.occ / 2
    assert power[~inside].sum() < 1e-12 * power.sum()
    # and the band is filled: no empty half
    assert power[inside & (f > 0)].sum() > 0.3 * power.sum()
    assert power[inside & (f < 0)].sum() > 0.3 * power.sum()


def test_clipping_and_filtering_lowers_the_papr_towards_the_target() -> None:
    free = papr_db(ofdm(OFDMSpec(n=16384, papr=0, seed=1)))
    clipped = papr_db(ofdm(OFDMSpec(n=16384, papr=7, seed=1)))
    assert free > 8.5  # Gaussian-like envelope over 16k samples
    assert 7.0 <= clipped < 7.8  # filtering regrows peaks a little above the target
    assert clipped < free - 1.0


def test_parse_ofdm_reads_every_key_and_defaults_the_rest() -> None:
    spec = parse_ofdm("ofdm:bw=100e6,fs=400e6,n=4096,papr=7.5,seed=2")
    assert spec == OFDMSpec(bw=100e6, fs=400e6, n=4096, papr=7.5, seed=2)
    assert parse_ofdm("ofdm:") == OFDMSpec()
    assert load_signal("ofdm:n=1024,seed=5").shape == (1024, 2)


@pytest.mark.parametrize(
    "spec",
    [
        "ofdm:bw=1e9,fs=800e6",  # wider than the sample rate
        "ofdm:n=abc",
        "ofdm:n=100.5",
        "ofdm:colour=red",
        "ofdm:bw",
        "ofdm:qam=8",
        "ofdm:n=4",
        "sine:f=1",
    ],
)
def test_bad_specs_raise_one_usage_error_line(spec: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_ofdm(spec)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(("signal spec", "ofdm:"))


def _write_csv(path: Path, z: np.ndarray, header: str = "I,Q") -> None:
    rows = "\n".join(f"{v.real:.9f},{v.imag:.9f}" for v in z)
    path.write_text(f"{header}\n{rows}\n")


def test_read_iq_csv_and_npz(tmp_path: Path) -> None:
    z = np.exp(1j * np.linspace(0, 6, 40)) * np.linspace(0.1, 1, 40)
    _write_csv(tmp_path / "s.csv", z)
    np.testing.assert_allclose(cplx(read_iq(tmp_path / "s.csv")), z, atol=1e-7)
    _write_csv(tmp_path / "swapped.csv", z.imag + 1j * z.real, header="Q,I")
    np.testing.assert_allclose(cplx(read_iq(tmp_path / "swapped.csv")), z, atol=1e-7)
    np.savez(tmp_path / "s.npz", x=np.stack([z.real, z.imag], 1))
    np.testing.assert_allclose(cplx(load_signal(tmp_path / "s.npz")), z, atol=1e-7)
    np.savez(tmp_path / "c.npz", sig=z)  # a single complex array
    np.testing.assert_allclose(cplx(read_iq(tmp_path / "c.npz")), z, atol=1e-7)


def test_bad_signal_files_raise_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_signal(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ShapeError, match="I and Q"):
        read_iq(tmp_path / "bad.csv")
    (tmp_path / "short.csv").write_text("I,Q\n1,2\n")
    with pytest.raises(ShapeError, match="too few"):
        read_iq(tmp_path / "short.csv")
    (tmp_path / "s.txt").write_text("I,Q\n")
    with pytest.raises(UsageError, match=r"\.csv"):
        read_iq(tmp_path / "s.txt")
    np.savez(tmp_path / "two.npz", a=np.zeros((20, 2)), b=np.zeros((20, 2)))
    with pytest.raises(ShapeError, match="which array"):
        read_iq(tmp_path / "two.npz")


def test_read_pairs_from_a_directory_and_from_two_files(tmp_path: Path) -> None:
    x = np.linspace(0, 1, 30) * np.exp(1j * np.arange(30))
    y = 3 * x
    _write_csv(tmp_path / "train_input.csv", x)
    _write_csv(tmp_path / "train_output.csv", y)
    a, b = read_pairs(tmp_path)
    np.testing.assert_allclose(cplx(b), 3 * cplx(a), atol=1e-6)
    a2, _ = read_pairs(tmp_path / "train_input.csv", tmp_path / "train_output.csv")
    np.testing.assert_array_equal(a, a2)
    _write_csv(tmp_path / "train_output.csv", y[:20])
    with pytest.raises(ShapeError, match="30 samples"):
        read_pairs(tmp_path)
    with pytest.raises(UsageError):
        read_pairs(tmp_path / "train_input.csv")


def test_bundled_dpa_measurement_matches_its_description() -> None:
    sizes = {"train": 23040, "val": 7680, "test": 7680}
    for split, n in sizes.items():
        x, y = dpa200(split)
        assert x.shape == y.shape == (n, 2)
    x, y = dpa200("train")
    assert np.abs(cplx(x)).max() == pytest.approx(1.0, abs=1e-3)
    assert 2.4 < np.abs(cplx(y)).max() < 2.6
    g = np.vdot(cplx(x), cplx(y)) / np.vdot(cplx(x), cplx(x))
    assert abs(g) == pytest.approx(3.16, abs=0.03)
    with pytest.raises(UsageError):
        dpa200("holdout")


def test_pairs_feed_from_data_as_an_npz(tmp_path: Path) -> None:
    from hwloop.data import load_data_file

    x, y = dpa200("val")
    np.savez(tmp_path / "pairs.npz", x=x, y=y)
    pairs = load_data_file(tmp_path / "pairs.npz")
    assert pairs.in_dim == pairs.out_dim == 2
    np.testing.assert_array_equal(pairs.x, x)
