"""The RF interlock against a fake bench: arming, limits before anything is sent, RF off on every fault.

What the fake generator received is the judge: its transcript (nothing sent
when refused) and its record of everything it played (``played``: when RF was
on, at what peak, RMS and PAPR). The arming variables are set per test with
monkeypatch, never globally.
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
from hwloop.drivers.bench.interlock import Interlock, InterlockLog, NotArmed, Tripped
from hwloop.simulators.fake_bench.bench import FakeBench

PEAK_DBM, RMS_DBM, PAPR_DB = -8.0, -15.0, 20.0


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HWLOOP_ALLOW_RF", "1")
    monkeypatch.setenv("HWLOOP_OPERATOR", "pytest")
    with FakeBench("sim:pa_wh?seed=3", seed=2) as fb:
        path = tmp_path / "lab.toml"
        path.write_text(fb.toml())
        yield fb, path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path.parent / "lab.interlock.jsonl").read_text().splitlines()]


def _ofdm(n: int = 2000, peak: float = 0.9) -> np.ndarray:
    from hwloop.dpd.signals import load_signal

    return load_signal(f"ofdm:n={n},papr=8,seed=3") * peak


@pytest.mark.parametrize(
    "env", [{}, {"HWLOOP_ALLOW_RF": "1"}, {"HWLOOP_OPERATOR": "x"}, {"HWLOOP_ALLOW_RF": "0"}]
)
def test_refused_without_the_gate_and_nothing_sent(bench, monkeypatch: pytest.MonkeyPatch, env: dict) -> None:
    fb, path = bench
    monkeypatch.delenv("HWLOOP_ALLOW_RF")
    monkeypatch.delenv("HWLOOP_OPERATOR")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(NotArmed, match="not armed"):
        open_bench(f"bench:{path}")
    assert fb.generator.transcript == [] and fb.analyser.transcript == []
    assert not any(p.on for p in fb.generator.played)


def test_rf_on_only_while_armed_each_time_logged_and_off_at_the_end(bench) -> None:
    fb, path = bench
    dev = open_bench(f"bench:{path}")
    y = dev.query(_ofdm())
    dev.close()
    assert y.shape == (2000, 2)
    recs = _records(path)
    assert recs[0]["event"] == "armed" and recs[0]["operator"] == "pytest"
    ons = [r for r in recs if r["event"] == "rf_on"]
    switched_on = sum(
        1 for a, b in zip(fb.generator.played, fb.generator.played[1:], strict=False) if b.on and not a.on
    )
    assert len(ons) == switched_on == 3  # two calibration captures and the query
    assert not fb.generator.rf_is_on() and recs[-1]["event"] == "closed"


def test_limits_are_refused_before_anything_is_sent(bench) -> None:
    fb, path = bench
    dev = open_bench(f"bench:{path}")
    sent = len(fb.generator.transcript)
    spiky = np.full((3000, 2), 1e-3, np.float32)
    spiky[5] = (0.9, 0.0)  # PAPR far above 20 dB
    hot = np.tile(np.float32([[0.6, 0.0]]), (500, 1))  # RMS 0.6 > 0.447 (-15 dBm of -8 dBm)
    over = np.float32([[0.8, 0.7]] * 16)  # |x| 1.06 > peak 1
    too_long = np.zeros((dev.info.max_batch + 1, 2), np.float32)
    for x, why in ((spiky, "PAPR"), (hot, "RMS"), (over, "peak"), (too_long, "max_batch")):
        with pytest.raises(OutOfRangeError, match=why):
            dev.query(x)
    assert len(fb.generator.transcript) == sent  # not one byte reached the generator
    assert any(r["event"] == "refused" for r in _records(path))
    dev.close()


def test_nothing_above_peak_rms_or_papr_ever_reaches_the_generator(bench) -> None:
    fb, path = bench
    dev = open_bench(f"bench:{path}")
    env = dev.info.envelope
    rng = np.random.default_rng(0)
    dev.query(env.sample(rng, np.zeros((3000, 2), np.float32)))  # over the sampling disc, RMS under the limit
    dev.query(env.clip(_ofdm(peak=1.0))[0])
    ramp = np.stack([np.linspace(0, 1, 4096) ** 3, np.zeros(4096)], 1).astype(np.float32)
    dev.query(env.clip(ramp)[0])  # the full peak
    dev.close()
    played = [p for p in fb.generator.played if p.on]
    assert played and max(p.peak_dbm for p in played) <= PEAK_DBM + 1e-9
    assert max(p.level_dbm for p in played) <= RMS_DBM and max(p.papr_db for p in played) <= PAPR_DB
    assert max(p.peak_dbm for p in played) > PEAK_DBM - 0.01  # the peak itself was reached


def _arm_fault(fb: FakeBench, which: str, header: str, kind: str) -> list[float]:
    when: list[float] = []
    srv = fb.server(which)
    act = {"late": lambda: srv.late_reply(2.0), "lost_link": srv.drop_links, "overload": fb.overload}[kind]
    srv.fault_on(header, lambda: (when.append(time.time()), act()))
    return when


@pytest.mark.parametrize(
    ("which", "header", "kind", "error"),
    [
        ("analyser", "*OPC?", "late", DeviceError),  # the capture never completes while RF is on
        ("analyser", "TRAC:IQ:DATA", "late", DeviceError),  # a late block: RF is already off for the transfer
        ("analyser", "INIT", "lost_link", DeviceError),
        ("generator", "OUTP:STAT ON", "lost_link", DeviceError),  # RF went on, then the link went
        ("analyser", "INIT", "overload", DeviceError),
    ],
)
def test_each_fault_ends_with_rf_off_within_a_second_and_no_rearming(
    bench, which, header, kind, error
) -> None:
    fb, path = bench
    dev = open_bench(f"bench:{path}")
    when = _arm_fault(fb, which, header, kind)
    with pytest.raises(error):
        dev.query(_ofdm())
    assert when, "the fault never fired"
    assert not fb.generator.rf_is_on()
    off_at = next(p.t for p in fb.generator.played[::-1] if not p.on)
    assert off_at - when[0] < 1.0  # the generator itself saw RF go off within 1 s
    recs = _records(path)
    trip = next(r for r in recs if r["event"] == "trip")
    off = next(r for r in recs if r["event"] == "rf_off" and r.get("via") == "second connection")
    assert off["readback"] == "0" and off["t"] - when[0] < 1.0 and trip["t"] <= off["t"]
    with pytest.raises(Tripped):
        dev.query(_ofdm())
    dev.close()
    ons_after = [p for p in fb.generator.played if p.on and p.t > off_at]
    assert not ons_after  # never re-armed after the trip


def test_an_exception_with_rf_on_trips_the_interlock(bench, monkeypatch: pytest.MonkeyPatch) -> None:
    fb, path = bench
    dev = open_bench(f"bench:{path}")

    def broken(*args, **kwargs):
        assert fb.generator.rf_is_on()  # RF is on while the capture code runs
        raise RuntimeError("a bug in the capture code")

    monkeypatch.setattr(dev.ana, "acquire", broken)
    t0 = time.time()
    with pytest.raises(RuntimeError):
        dev.query(_ofdm())
    assert not fb.generator.rf_is_on() and fb.generator.played[-1].t - t0 < 1.0
    assert any(r["event"] == "trip" and "RuntimeError" in r["reason"] for r in _records(path))
    dev.close()


def test_the_watchdog_trips_a_call_stuck_past_its_deadline(tmp_path: Path) -> None:
    class Stuck:
        name = "analyser"
        deadline = time.monotonic() - 0.01

    offs: list[float] = []
    il = Interlock(
        InterlockLog(tmp_path / "log.jsonl"),
        "pytest",
        limits=None,
        full_scale_dbm=-8.0,
        emergency_off=lambda: offs.append(time.monotonic()) or "0",
        sessions=[Stuck()],
        watchdog_s=0.01,
    )
    il.rf_on = True
    t0 = time.monotonic()
    il._watchdog.start()
    while not offs and time.monotonic() - t0 < 2:
        time.sleep(0.005)
    il.uninstall()
    assert offs and offs[0] - t0 < 0.2 and il.tripped.startswith("watchdog")


def test_sigterm_of_a_training_subprocess_turns_rf_off_within_a_second(bench) -> None:
    fb, path = bench
    env = {**os.environ, "HWLOOP_ALLOW_RF": "1", "HWLOOP_OPERATOR": "pytest"}
    cmd = [sys.executable, "-m", "hwloop.cli", "train", "--device", f"bench:{path}", "--signal"]
    cmd += ["ofdm:n=8192,papr=8,seed=0", "--queries", "20000", "--out", str(path.parent / "run")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        t_end = time.monotonic() + 120
        while not fb.generator.rf_is_on():
            assert proc.poll() is None and time.monotonic() < t_end, proc.stderr.read().decode()[-2000:]
            time.sleep(0.0005)
        t_kill = time.time()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert not fb.generator.rf_is_on() and fb.generator.played[-1].t - t_kill < 1.0
    recs = _records(path)
    trip = next(r for r in recs if r["event"] == "trip")
    assert trip["reason"] == "SIGTERM" and trip["t"] - t_kill < 1.0
    assert any(r["event"] == "rf_off" and r["t"] - t_kill < 1.0 for r in recs if r["t"] >= trip["t"])


@pytest.fixture
def slow_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The fake bench with a slow analyser's settings: 5 s timeouts on both instruments."""
    monkeypatch.setenv("HWLOOP_ALLOW_RF", "1")
    monkeypatch.setenv("HWLOOP_OPERATOR", "pytest")
    with FakeBench("sim:pa_wh?seed=3", seed=2) as fb:
        path = tmp_path / "lab.toml"
        path.write_text(fb.toml(timeout_s=5.0))
        yield fb, path


def _off_after(fb: FakeBench, t: float) -> float:
    """Seconds from ``t`` (the fake's clock) to the first moment the generator's RF was off."""
    return next(p.t for p in fb.generator.played if not p.on and p.t >= t) - t


def test_a_late_reply_turns_rf_off_within_a_second_whatever_the_timeout(slow_bench) -> None:
    fb, path = slow_bench
    dev = open_bench(f"bench:{path}")
    when = _arm_fault(fb, "analyser", "*OPC?", "late")  # the capture's completion, 2 s late
    t0 = time.monotonic()
    with pytest.raises(DeviceError):
        dev.query(_ofdm())
    assert when and fb.generator.played[-1].on is False
    assert _off_after(fb, when[0]) < 1.0  # not timeout_s (5 s) after the call
    trip = next(r for r in _records(path) if r["event"] == "trip")
    assert trip["reason"].startswith("watchdog") and trip["t"] - when[0] < 1.0
    assert time.monotonic() - t0 < 5.0 + 2.0
    dev.close()


def test_a_closed_connection_is_a_lost_link_seen_at_once(slow_bench) -> None:
    """pyvisa-py polls a closed socket until its timeout; the session sees the close itself."""
    fb, path = slow_bench
    dev = open_bench(f"bench:{path}")
    when = _arm_fault(fb, "analyser", "*OPC?", "lost_link")  # cut while the host waits for the capture
    t0 = time.monotonic()
    with pytest.raises(DeviceDisconnected, match="link lost"):
        dev.query(_ofdm())
    took = time.monotonic() - t0
    assert when and _off_after(fb, when[0]) < 1.0
    assert took < 2.0  # the query ended long before the 5 s timeout
    trip = next(r for r in _records(path) if r["event"] == "trip")
    assert "link lost" in trip["reason"] and trip["t"] - when[0] < 1.0
    dev.close()


def test_the_emergency_rf_off_is_retried_until_it_gets_through(slow_bench) -> None:
    fb, path = slow_bench
    dev = open_bench(f"bench:{path}")
    when: list[float] = []

    def fault() -> None:  # the analyser stalls while RF is on, and the generator refuses two new links
        when.append(time.time())
        fb.generator.refuse(connections=2)
        fb.analyser.late_reply(2.0)

    fb.analyser.fault_on("*OPC?", fault)
    with pytest.raises(DeviceError):
        dev.query(_ofdm())
    off = next(r for r in _records(path) if r["event"] == "rf_off" and r.get("via") == "second connection")
    assert off["attempts"] >= 2 and off["readback"] == "0" and off["errors"]
    assert _off_after(fb, when[0]) < 1.0 and not fb.generator.rf_is_on()
    dev.close()


def test_turn_off_retries_then_gives_up_and_logs_it(tmp_path: Path) -> None:
    calls: list[float] = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise DeviceDisconnected("refused")
        return "0"

    log_ = InterlockLog(tmp_path / "log.jsonl")
    il = Interlock(log_, "pytest", limits=None, full_scale_dbm=-8.0, emergency_off=flaky, retry_s=2.0)
    il.trip("test")
    assert len(calls) == 3 and log_.records[-1]["attempts"] == 3
    never = Interlock(log_, "pytest", limits=None, full_scale_dbm=-8.0, retry_s=0.3,
                      emergency_off=lambda: (_ for _ in ()).throw(DeviceDisconnected("down")))  # fmt: skip
    t0 = time.monotonic()
    assert never.turn_off("test") is False
    assert 0.2 < time.monotonic() - t0 < 1.5 and log_.records[-1]["event"] == "rf_off_failed"
    assert log_.records[-1]["attempts"] >= 2
