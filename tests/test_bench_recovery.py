"""Recovery: after a timeout the session is cleared and re-identified, so no late reply is ever misattributed.

A careless host reads a late reply as the answer to its next query, and
every answer after it is off by one (docs/scpi.md). Here the fake instrument
holds a reply back past the host's timeout and then sends it; every later
query must still get its own answer.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from hwloop.device import DeviceError, DeviceTimeout
from hwloop.drivers.bench.device import open_bench
from hwloop.drivers.bench.session import ScpiSession
from hwloop.simulators.fake_bench.bench import FakeBench


@pytest.fixture
def fb():
    with FakeBench("sim:pa_wh?seed=3", seed=4) as bench:
        yield bench


def test_a_late_text_reply_never_answers_a_later_query(fb: FakeBench) -> None:
    gen = fb.generator
    s = ScpiSession(gen.resource, name="generator", timeout_s=0.3)
    s.write("SOUR:POW:LIM:AMPL 5")
    s.write("SOUR:POW:LEV:IMM:AMPL -12.5")
    gen.fault_on("OUTP:STAT?", lambda: gen.late_reply(0.6))
    with pytest.raises(DeviceTimeout):
        s.query("OUTP:STAT?")  # its "0" comes 0.6 s later
    assert s.query("SOUR:POW:LEV:IMM:AMPL?") == "-12.5000"  # not the late "0"
    time.sleep(0.5)  # the late reply has now been sent, to the connection the session dropped
    assert s.query("SOUR:POW:LIM:AMPL?") == "5.0000"
    assert s.query("*IDN?") == gen.idn
    assert s.query_bool("OUTP:STAT?") is False
    assert s.recoveries == 1
    cmds = gen.commands()
    i = cmds.index(b"OUTP:STAT?\n")
    assert cmds[i + 1 : i + 4] == [b"*IDN?\n", b"*CLS\n", b"SOUR:POW:LEV:IMM:AMPL?\n"]  # re-identified first
    s.close()


def test_a_late_block_never_becomes_the_next_capture(fb: FakeBench) -> None:
    ana = fb.analyser
    s = ScpiSession(ana.resource, name="analyser", timeout_s=0.3)
    for cmd in ("FORM REAL,32", "TRAC:IQ:RLEN 16", "INIT:IMM"):
        s.write(cmd)
    ana.fault_on("TRAC:IQ:DATA", lambda: ana.late_reply(0.5))
    with pytest.raises(DeviceTimeout):
        s.query_block("TRAC:IQ:DATA:MEM?", 8 * 16)
    s.write("TRAC:IQ:RLEN 32")
    s.write("FORM REAL,32")  # the recovered session is a new connection: the format is instrument state
    s.write("INIT:IMM")
    time.sleep(0.4)
    block = s.query_block("TRAC:IQ:DATA:MEM?", 8 * 32)  # the 32-sample capture, not the late 16
    assert len(block) == 256 and s.query("TRAC:IQ:RLEN?") == "32"
    s.close()


def test_recovery_refuses_a_different_instrument(fb: FakeBench) -> None:
    gen = fb.generator
    s = ScpiSession(gen.resource, name="generator", timeout_s=0.3)
    gen.fault_on("OUTP:STAT?", lambda: gen.late_reply(0.6))
    with pytest.raises(DeviceTimeout):
        s.query("OUTP:STAT?")
    gen.idn = "Someone,Else,0,0"
    with pytest.raises(DeviceError, match="after recovery"):
        s.query("SOUR:POW:LEV:IMM:AMPL?")
    s.close()


def test_after_a_late_reply_the_device_turns_rf_off_and_reads_its_own_answers(
    fb: FakeBench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HWLOOP_ALLOW_RF", "1")
    monkeypatch.setenv("HWLOOP_OPERATOR", "pytest")
    path = tmp_path / "lab.toml"
    path.write_text(fb.toml(guard=64, periods=2))
    dev = open_bench(f"bench:{path}")
    x = np.zeros((512, 2), np.float32)
    x[:, 0] = 0.3 * np.sin(np.arange(512) / 9.0)
    y0 = dev.query(x)
    fb.generator.fault_on("OUTP:STAT?", lambda: fb.generator.late_reply(0.8))  # the first read-back
    with pytest.raises(DeviceError):
        dev.query(x)
    time.sleep(0.9)
    dev.close()  # RF off on the recovered main session: its read-back is its own "0", not the late one
    recs = [json.loads(line) for line in (tmp_path / "lab.interlock.jsonl").read_text().splitlines()]
    closing = [r for r in recs if r["event"] == "rf_off" and r.get("cause") == "close"]
    assert closing and closing[0]["readback"] == 0
    assert not fb.generator.rf_is_on()
    assert y0.shape == (512, 2) and np.corrcoef(y0[:, 0], x[:, 0])[0, 1] > 0.9
