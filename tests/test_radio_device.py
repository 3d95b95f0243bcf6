"""The radio as a device: what the calibration measures, what a query answers, and answers never misplaced.

These tests are about measurement, not the watchdog (tests/test_radio_interlock.py):
their bench files give it the largest grace (``rf_grace_s = 0.8``), so a loaded
machine does not trip it. The fake radio's impairments are known (seeded), so
the calibration's estimates are checked against them: fractional delay,
residual carrier offset, DC offset, image rejection. A query's answer is checked against the
amplifier's own output for the same drive (the amplifier simulator queried
directly), and every answer the query log keeps against its own query.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from hwloop.device import DeviceError, MissingExtraError, UnusableAnswer, UsageError
from hwloop.drivers.bench.device import load_bench_file, open_bench
from hwloop.drivers.bench.signals import quantise12
from hwloop.metered import MeteredDevice
from hwloop.querylog import QueryLog
from hwloop.simulators.catalog import open_sim
from hwloop.simulators.fake_radio.radio import FakeRadio

PA = "sim:pa_wh?seed=3&noise=0"
GRACE = 0.8


@pytest.fixture
def armed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HWLOOP_ALLOW_RF", "1")
    monkeypatch.setenv("HWLOOP_OPERATOR", "pytest")


def _drive(n: int, peak: float, seed: int) -> np.ndarray:
    from hwloop.dpd.signals import load_signal

    return (load_signal(f"ofdm:n={n},papr=8,seed={seed}") * peak).astype(np.float32)


def _pa_out(x: np.ndarray) -> np.ndarray:
    """The amplifier's own output for drive x, from rest (|x| = 1 is its full scale at these gains)."""
    pa = open_sim(PA)
    y = pa.query(x)
    return y[:, 0] + 1j * y[:, 1]


def _nmse_db(y: np.ndarray, ref: np.ndarray) -> float:
    """NMSE of y against the best complex multiple of ref (the radio's units differ by the PA's gain)."""
    g = np.vdot(ref, y) / np.vdot(ref, ref)
    return float(10 * np.log10(np.sum(np.abs(y - g * ref) ** 2) / np.sum(np.abs(g * ref) ** 2)))


def test_the_calibration_measures_the_radios_impairments(armed, tmp_path: Path) -> None:
    with FakeRadio(open_sim(PA), seed=7, cfo_hz=-180.0, iq_gain_db=0.5, iq_phase_deg=3.0) as fr:
        path = tmp_path / "radio.toml"
        path.write_text(fr.toml(rf_grace_s=GRACE))
        dev = open_bench(f"bench:{path}")
        cal = dev.calibration
        report = dev.probe_report()["bench"]
        dev.close()
        truth = fr.path
    assert cal["cfo_hz"] == pytest.approx(-180.0, abs=1.0)
    assert cal["dc_dbfs"] == pytest.approx(-40.0, abs=0.5)
    assert cal["image_rejection_db"] == pytest.approx(truth.image_rejection_db, abs=1.0)
    assert cal["image_rejection_corrected_db"] > truth.image_rejection_db + 15  # corrected
    frac = truth.delay - math.floor(truth.delay)
    assert (
        abs((cal["fraction"] - frac + 0.5) % 1 - 0.5) < 0.05
    )  # the path's fraction (PA memory adds a little)
    assert {"dc_offset_dbfs", "image_rejection_db", "cfo_hz", "compression_db_at_peak", "headroom_db"} <= set(
        report
    )
    assert report["compression_db_at_peak"] < -0.5 and report["p1db_input_dbfs"] is not None


@pytest.mark.parametrize(("device_class", "cfo"), [("pluto", 150.0), ("ad9361", -60.0), ("ad9364", 0.0)])
def test_an_answer_is_the_amplifiers_output_through_every_impairment(
    armed, tmp_path: Path, device_class: str, cfo: float
) -> None:
    with FakeRadio(open_sim(PA), device_class=device_class, seed=3, cfo_hz=cfo) as fr:
        path = tmp_path / "radio.toml"
        path.write_text(fr.toml(rf_grace_s=GRACE))
        dev = open_bench(f"bench:{path}")
        x = _drive(8000, 0.9, seed=5)
        y = dev.query(x)
        small = _drive(4000, 0.05, seed=6)
        ys = dev.query(small)
        dev.close()
    z = y[:, 0] + 1j * y[:, 1]
    assert _nmse_db(z, _pa_out(x)) < -45  # 12-bit converters, noise, every impairment undone
    zs = ys[:, 0] + 1j * ys[:, 1]
    assert _nmse_db(zs, _pa_out(small)) < -28  # 26 dB below the calibration, a 12-bit ADC: still there


def test_every_logged_answer_belongs_to_its_own_query(armed, tmp_path: Path) -> None:
    """Overflowed and stale captures are never logged: the meter asks again, and each kept answer is
    the amplifier's output for its own drive, not for a neighbour's."""
    with FakeRadio(open_sim(PA), seed=4) as fr:
        path = tmp_path / "radio.toml"
        path.write_text(fr.toml(periods=2, rf_grace_s=GRACE))
        dev = open_bench(f"bench:{path}")
        qlog = QueryLog(tmp_path / "q.sqlite", 2, 2)
        meter = MeteredDevice(dev, qlog, budget=10**6)
        drives = [_drive(3000, 0.85, seed=s) for s in range(6)]
        faults = {1: "overflow", 3: "stale", 4: "overflow"}
        for k, x in enumerate(drives):
            if k in faults:  # the second refill of a query is the kept one (flush = 1)
                fr.fault_at("READBUF", faults[k], nth=2)
            meter.query(x, "train")
        stats = (dev.overflows, meter.recoveries)
        dev.close()
        qlog.export_npz(tmp_path / "log.npz")
    logged = np.load(tmp_path / "log.npz")
    xs, ys = logged["x"].reshape(6, 3000, 2), logged["y"].reshape(6, 3000, 2)
    assert stats[0] >= 1 and stats[1] >= 2  # faults happened and were recovered from
    for k in range(6):
        own = ys[k, :, 0] + 1j * ys[k, :, 1]
        scores = [_nmse_db(own, _pa_out(drives[j])) for j in range(6)]
        assert np.allclose(xs[k], drives[k]) and int(np.argmin(scores)) == k and scores[k] < -40


def test_an_overflowed_or_stale_capture_is_unusable(armed, tmp_path: Path) -> None:
    with FakeRadio(open_sim(PA), seed=5) as fr:
        path = tmp_path / "radio.toml"
        path.write_text(fr.toml(periods=2, rf_grace_s=GRACE).replace("[radio]", "[radio]\nflush = 0"))
        dev = open_bench(f"bench:{path}")
        dev.query(_drive(2000, 0.8, 1))
        fr.fault_at("READBUF", "overflow")
        with pytest.raises(UnusableAnswer, match="overflowed"):
            dev.query(_drive(2000, 0.8, 2))
        fr.fault_at("READBUF", "stale")  # the capture of the waveform played before
        with pytest.raises(UnusableAnswer, match="correlates"):
            dev.query(_drive(2000, 0.8, 3))
        y = dev.query(_drive(2000, 0.8, 4))
        dev.close()
    assert y.shape == (2000, 2) and not fr.tx_is_on()


def test_a_capture_at_the_adcs_rails_is_a_clear_error(armed, tmp_path: Path) -> None:
    with FakeRadio(open_sim(PA), seed=6) as fr:
        path = tmp_path / "radio.toml"
        path.write_text(
            fr.toml(rx_gain_db=42.0, rf_grace_s=GRACE)
        )  # the calibration, 20 dB down, fits; full drive does not
        dev = open_bench(f"bench:{path}")
        with pytest.raises(DeviceError, match="lower \\[radio\\] rx_gain_db"):
            dev.query(_drive(2000, 1.0, 1))
        dev.close()
    assert not fr.tx_is_on()


def test_quantisation_is_12_bit_and_never_raises_a_magnitude() -> None:
    rng = np.random.default_rng(0)
    z = rng.uniform(0, 1, 5000) * np.exp(2j * np.pi * rng.uniform(size=5000))
    codes = quantise12(z)
    assert codes.dtype == np.int16 and np.abs(codes).max() <= 2047
    assert np.all(np.hypot(codes[:, 0], codes[:, 1]) <= np.abs(z) * 2047 + 1e-9)
    assert np.max(np.abs((codes[:, 0] + 1j * codes[:, 1]) / 2047 - z)) < 1.5 / 2047


GOOD = """[radio]
uri = "ip:192.168.2.1"
device = "pluto"
sample_rate = 30720000.0
lo_hz = 2400000000.0
rf_bandwidth_hz = 20000000.0
tx_gain_db = -10.0
rx_gain_db = 30.0
[limits]
peak_dbfs = 0.0
rms_dbfs = -6.0
papr_db = 20.0
max_samples = 1000000
max_tx_gain_db = -10.0
"""


def test_a_good_radio_file_loads_with_the_drivers_defaults(tmp_path: Path) -> None:
    p = tmp_path / "radio.toml"
    p.write_text(GOOD)
    cfg = load_bench_file(p)
    assert cfg.radio.rx_lo_hz == cfg.radio.tx_lo_hz == 2.4e9 and cfg.radio.flush == 1
    assert cfg.signal.periods == 4 and cfg.peak == 1.0 and cfg.rms == pytest.approx(10 ** (-6 / 20))
    assert cfg.interlock.log == tmp_path / "radio.interlock.jsonl" and cfg.interlock.rf_grace_s == 0.5


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('device = "pluto"', 'device = "usrp"'), r"\[radio\] device must be pluto \| ad9364 \| ad9361"),
        (("tx_gain_db = -10.0", "tx_gain_db = -5.0"), "above \\[limits\\] max_tx_gain_db"),
        (("tx_gain_db = -10.0", "tx_gain_db = 3.0"), r"\[radio\] tx_gain_db must be in \[-89.75, 0\]"),
        (('uri = "ip:192.168.2.1"', 'uri = "192.168.2.1"'), "a libiio URI"),
        (("lo_hz = 2400000000.0", ""), "lo_hz is missing"),
        (("peak_dbfs = 0.0", "peak_dbfs = 1.0"), r"peak_dbfs must be in \[-60, 0\]"),
        (("max_tx_gain_db = -10.0", ""), "max_tx_gain_db is missing"),
        (("[limits]", "[signal]\nperiods = 1\n[limits]"), r"periods must be in \[2, 64\]"),
        (("[limits]", "[generator]\n[limits]"), "unknown table \\[generator\\] in a radio bench file"),
    ],
)
def test_a_bad_radio_file_is_one_line(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    p = tmp_path / "radio.toml"
    p.write_text(GOOD.replace(*edit, 1))
    with pytest.raises(UsageError, match=message) as err:
        load_bench_file(p)
    assert "\n" not in str(err.value)


def test_without_the_extra_the_error_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    p = tmp_path / "radio.toml"
    p.write_text(GOOD)
    monkeypatch.setitem(sys.modules, "adi", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'hwloop\[sdr\]'"):
        open_bench(f"bench:{p}")
