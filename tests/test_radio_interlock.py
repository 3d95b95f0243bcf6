"""The radio's interlock against the fake radio: arming, limits before sending, TX off on every fault.

The judge is the fake radio's own record, on its own clock: ``tx_log`` has
every TX buffer that reached it (with its peak, RMS and PAPR in dBFS), every
attenuation written and every buffer destroyed; `FakeRadio.tx_off_since`
says when the transmitter was last switched off after a time. The bench
files use a 5 s libiio timeout, so "off within 1 s" cannot come from a
timeout. The arming variables are set per test with monkeypatch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hwloop.device import DeviceDisconnected, DeviceError, OutOfRangeError
from hwloop.drivers.bench.device import open_bench
from hwloop.drivers.bench.interlock import NotArmed, Tripped
from hwloop.simulators.catalog import open_sim
from hwloop.simulators.fake_radio.context import TX_GAIN_MIN
from hwloop.simulators.fake_radio.radio import FakeRadio

PEAK_DBFS, RMS_DBFS, PAPR_DB = 0.0, -6.0, 20.0


@pytest.fixture
def radio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HWLOOP_ALLOW_RF", "1")
    monkeypatch.setenv("HWLOOP_OPERATOR", "pytest")
    with FakeRadio(open_sim("sim:pa_wh?seed=3"), seed=2) as fr:
        path = tmp_path / "radio.toml"
        path.write_text(fr.toml(timeout_s=5.0, guard=128, periods=2))
        yield fr, path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path.parent / "radio.interlock.jsonl").read_text().splitlines()]


def _ofdm(n: int = 2000, peak: float = 0.9) -> np.ndarray:
    from hwloop.dpd.signals import load_signal

    return (load_signal(f"ofdm:n={n},papr=8,seed=3") * peak).astype(np.float32)


@pytest.mark.parametrize(
    "env", [{}, {"HWLOOP_ALLOW_RF": "1"}, {"HWLOOP_OPERATOR": "x"}, {"HWLOOP_ALLOW_RF": "0"}]
)
def test_unarmed_nothing_is_transmitted_and_the_radio_sees_no_tx_buffer(
    radio, monkeypatch: pytest.MonkeyPatch, env: dict
) -> None:
    fr, path = radio
    monkeypatch.delenv("HWLOOP_ALLOW_RF")
    monkeypatch.delenv("HWLOOP_OPERATOR")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(NotArmed, match="not armed"):
        open_bench(f"bench:{path}")
    assert fr.server.transcript == []  # not even a connection
    assert fr.buffers() == [] and not fr.tx_is_on()


def test_tx_on_only_while_capturing_each_time_logged_and_off_at_the_end(radio) -> None:
    fr, path = radio
    dev = open_bench(f"bench:{path}")
    y = dev.query(_ofdm())
    dev.close()
    assert y.shape == (2000, 2)
    recs = _records(path)
    assert recs[0]["event"] == "armed" and recs[0]["operator"] == "pytest"
    ons = [r for r in recs if r["event"] == "rf_on"]
    assert len(ons) == len(fr.buffers()) == 2  # the calibration and the query
    assert all(e.gain_db == -10.0 for e in fr.buffers())  # played at the file's TX gain, not above
    assert not fr.tx_is_on() and fr.state.tx_gain[0] == TX_GAIN_MIN and recs[-1]["event"] == "closed"
    destroyed = [e for e in fr.tx_log if e.kind == "destroyed"]
    assert len(destroyed) == 2  # each buffer destroyed after its capture


def test_limits_are_refused_before_anything_is_sent(radio) -> None:
    fr, path = radio
    dev = open_bench(f"bench:{path}")
    seen = len(fr.server.transcript)
    spiky = np.full((3000, 2), 1e-3, np.float32)
    spiky[5] = (0.9, 0.0)  # PAPR far above 20 dB
    hot = np.tile(np.float32([[0.6, 0.0]]), (500, 1))  # RMS 0.6 > 0.501 (-6 dBFS)
    over = np.float32([[0.8, 0.7]] * 16)  # |x| 1.06 > full scale
    too_long = np.zeros((dev.info.max_batch + 1, 2), np.float32)
    for x, why in ((spiky, "PAPR"), (hot, "RMS"), (over, "peak"), (too_long, "max_batch")):
        with pytest.raises(OutOfRangeError, match=why):
            dev.query(x)
    assert len(fr.server.transcript) == seen  # not one command reached the radio
    assert any(r["event"] == "refused" and "PAPR" in r["reason"] for r in _records(path))
    dev.close()


def test_no_buffer_above_the_declared_peak_rms_or_papr_reaches_the_radio(radio) -> None:
    fr, path = radio
    dev = open_bench(f"bench:{path}")
    env = dev.info.envelope
    rng = np.random.default_rng(0)
    dev.query(env.sample(rng, np.zeros((3000, 2), np.float32)))  # uniform over the disc, RMS at its limit
    dev.query(env.clip(_ofdm(peak=1.0))[0])
    ramp = np.stack([np.linspace(0, 1, 4096) ** 3, np.zeros(4096)], 1).astype(np.float32)
    dev.query(env.clip(ramp)[0])  # the full peak
    dev.close()
    played = fr.buffers()
    assert len(played) == 4
    assert max(b.peak_dbfs for b in played) <= PEAK_DBFS + 1e-9
    assert max(b.rms_dbfs for b in played) <= RMS_DBFS and max(b.papr_db for b in played) <= PAPR_DB
    assert max(b.peak_dbfs for b in played) > PEAK_DBFS - 0.01  # the peak itself was reached


def test_a_radio_that_does_not_take_its_attenuation_never_transmits(radio) -> None:
    fr, path = radio
    dev = open_bench(f"bench:{path}")
    attr = fr.phy.channel("voltage0", True).attrs["hardwaregain"]
    attr.set = lambda text: fr.state.tx_gain.__setitem__(0, -3.0)  # keeps -3 dB whatever is written
    with pytest.raises(DeviceError, match="read back"):
        dev.query(_ofdm())
    assert len(fr.buffers()) == 1  # the calibration's only
    assert any(r["event"] == "trip" for r in _records(path))
    dev.close()


def _fault_then_off(fr: FakeRadio, path: Path, command: str, fault: str, seconds: float, error: type) -> dict:
    dev = open_bench(f"bench:{path}")
    when = fr.fault_at(command, fault, seconds)
    t0 = time.monotonic()
    with pytest.raises(error):
        dev.query(_ofdm())
    took = time.monotonic() - t0
    assert when, "the fault never fired"
    off = fr.tx_off_since(when[0])
    assert off is not None and off - when[0] < 1.0  # the radio itself saw TX go off within 1 s
    with pytest.raises(Tripped):
        dev.query(_ofdm())  # never re-armed
    dev.close()
    assert not fr.tx_is_on() and len(fr.buffers()) == 2
    trip = next(r for r in _records(path) if r["event"] == "trip")
    return {"took": took, "trip": trip, "records": _records(path), "when": when[0]}


def test_a_late_capture_turns_tx_off_within_a_second_whatever_the_timeout(radio) -> None:
    fr, path = radio
    out = _fault_then_off(fr, path, "READBUF", "late", 3.0, DeviceError)
    assert out["trip"]["reason"].startswith("watchdog") and out["trip"]["t"] - out["when"] < 1.0
    assert fr.state.tx_gain[0] == TX_GAIN_MIN  # the attenuation went to its maximum over the second context
    assert out["took"] < 2.0  # the blocked refill was cancelled, not waited for


def test_a_late_reply_to_the_tx_buffer_turns_tx_off_within_a_second(radio) -> None:
    fr, path = radio
    out = _fault_then_off(fr, path, "WRITEBUF", "late", 3.0, DeviceError)
    assert out["trip"]["reason"].startswith("watchdog")


def test_a_dropped_link_is_lost_not_a_timeout_and_rf_off_is_retried(radio) -> None:
    fr, path = radio
    out = _fault_then_off(fr, path, "READBUF", "drop", 0.3, DeviceDisconnected)
    assert "link lost" in out["trip"]["reason"] and out["took"] < 1.0  # long before the 5 s timeout
    off = next(r for r in out["records"] if r["event"] == "rf_off" and r.get("via") == "second connection")
    assert off["attempts"] >= 2 and float(off["readback"]) == TX_GAIN_MIN  # refused for 0.3 s, then through
    assert off["t"] - out["when"] < 1.5


def test_a_dropped_control_link_still_ends_with_tx_off(radio) -> None:
    """The buffers' connections survive, the control one is cut: the capture ends, TX goes off on its
    own connection, the lost control link trips, the attenuation goes through a fresh context."""
    fr, path = radio
    out = _fault_then_off(fr, path, "READBUF", "drop_control", 0.0, DeviceDisconnected)
    assert "link lost" in out["trip"]["reason"]
    assert fr.state.tx_gain[0] == TX_GAIN_MIN


@pytest.mark.slow
def test_sigterm_of_a_training_subprocess_turns_tx_off_within_a_second(radio) -> None:
    fr, path = radio
    env = {**os.environ, "HWLOOP_ALLOW_RF": "1", "HWLOOP_OPERATOR": "pytest"}
    cmd = [sys.executable, "-m", "hwloop.cli", "train", "--device", f"bench:{path}", "--signal"]
    cmd += ["ofdm:n=8192,papr=8,seed=0", "--queries", "20000", "--out", str(path.parent / "run")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        t_end = time.monotonic() + 300
        while len(fr.buffers()) < 3 or not fr.tx_is_on():  # past the calibration, TX on in training
            assert proc.poll() is None and time.monotonic() < t_end, proc.stderr.read().decode()[-2000:]
            time.sleep(0.0005)
        t_kill = time.time()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0
    off = fr.tx_off_since(t_kill)
    assert off is not None and off - t_kill < 1.0 and not fr.tx_is_on()
    trip = next(r for r in _records(path) if r["event"] == "trip")
    assert trip["reason"] == "SIGTERM" and trip["t"] - t_kill < 1.0
