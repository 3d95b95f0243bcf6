"""Byte-exact transcripts: what each personality writes for a configuration, an upload and a capture.

Real PyVISA (pyvisa-py, SOCKET resources) talks to the fake bench's TCP
servers; the servers record every command's raw bytes. The expected lines
are written out literally, from docs/scpi.md (generic) and the R&S manuals
(rs_smw / rs_fsw), so a change of spelling fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from hwloop.drivers.bench import personalities
from hwloop.drivers.bench.instruments import Analyser, Generator
from hwloop.drivers.bench.session import ScpiSession
from hwloop.simulators.fake_bench.bench import FakeBench

IQ = np.array([[16384, 0], [0, -16384]], np.int16)  # two samples at half full scale
LEVEL = -14.0204  # -8 dBm full scale + 20 log10(16384 / 32767), rounded down to 1e-4 dB


def _instruments(fb: FakeBench, gen_p: str, ana_p: str) -> tuple[Generator, Analyser]:
    g = ScpiSession(fb.generator.resource, name="generator", timeout_s=2.0)
    a = ScpiSession(fb.analyser.resource, name="analyser", timeout_s=2.0)
    return Generator(g, personalities.generator(gen_p)), Analyser(a, personalities.analyser(ana_p))


def _run(gen: Generator, ana: Analyser) -> np.ndarray:
    gen.configure(800e6, -10.0)
    ana.configure(800e6, 0.0)
    gen.load(IQ, LEVEL, 800e6)
    gen.play()
    y, overloaded = ana.capture(8, 800e6)
    gen.stop()
    assert not overloaded
    return y


def test_generic_generator_and_analyser_byte_for_byte() -> None:
    with FakeBench("sim:pa_wh?noise=0", seed=1) as fb:
        gen, ana = _instruments(fb, "generic", "generic")
        y = _run(gen, ana)
        g, a = fb.generator.commands(), fb.analyser.commands()
    assert g == [
        b"*IDN?\n",
        b"*CLS\n",
        b"OUTP:STAT OFF\n",
        b"OUTP:STAT?\n",
        b"SOUR:BB:ARB:STAT OFF\n",
        b"SOUR:BB:ARB:STAT?\n",
        b"SOUR:BB:ARB:CLOC 800000000\n",
        b"SOUR:BB:ARB:CLOC?\n",
        b"SOUR:POW:LIM:AMPL -10\n",
        b"SOUR:POW:LIM:AMPL?\n",
        b"*OPC?\n",
        b"SYST:ERR?\n",
        # upload with RF and ARB off: int16 big-endian I,Q; PyVISA writes the block header once
        b"SOUR:BB:ARB:STAT OFF\n",
        b"SOUR:BB:ARB:STAT?\n",
        b'MMEM:DATA:UNPR "NVWFM:hwloop",#18\x40\x00\x00\x00\x00\x00\xc0\x00\n',
        b'SOUR:BB:ARB:WAV:SEL "hwloop"\n',
        b"SOUR:BB:ARB:WAV:SEL?\n",
        b"SOUR:BB:ARB:CLOC 800000000\n",
        b"SOUR:BB:ARB:CLOC?\n",
        b"SOUR:POW:LEV:IMM:AMPL -14.0204\n",
        b"SOUR:POW:LEV:IMM:AMPL?\n",
        b"*OPC?\n",
        b"SYST:ERR?\n",
        b"SOUR:BB:ARB:STAT ON\n",
        b"SOUR:BB:ARB:STAT?\n",
        b"OUTP:STAT ON\n",
        b"OUTP:STAT?\n",
        b"OUTP:STAT OFF\n",
        b"OUTP:STAT?\n",
        b"SOUR:BB:ARB:STAT OFF\n",
        b"SOUR:BB:ARB:STAT?\n",
    ]
    assert a == [
        b"*IDN?\n",
        b"*CLS\n",
        b"FORM REAL,32\n",
        b"FORM:BORD SWAP\n",
        b"TRAC:IQ:SRAT 800000000\n",
        b"TRAC:IQ:SRAT?\n",
        b"DISP:TRAC:Y:SCAL:RLEV 0\n",
        b"DISP:TRAC:Y:SCAL:RLEV?\n",
        b"*OPC?\n",
        b"SYST:ERR?\n",
        b"TRAC:IQ:RLEN 8\n",
        b"TRAC:IQ:RLEN?\n",
        b"INIT:IMM\n",
        b"*OPC?\n",
        b"STAT:QUES:POW:COND?\n",
        b"TRAC:IQ:DATA:MEM?\n",
        b"SYST:ERR?\n",
    ]
    assert y.shape == (8,) and np.all(np.isfinite(y)) and np.abs(y).max() > 0


def test_rs_smw_and_fsw_byte_for_byte() -> None:
    with FakeBench("sim:pa_wh?noise=0", seed=1, dialect="rs") as fb:
        gen, ana = _instruments(fb, "rs_smw", "rs_fsw")
        y = _run(gen, ana)
        g, a = fb.generator.commands(), fb.analyser.commands()
    wv = (
        b"{TYPE: SMU-WV,1695495423}{CLOCK: 800000000}{LEVEL OFFS: 6.020335,6.020335}{SAMPLES: 2}"
        b"{WAVEFORM-9:#\x00\x40\x00\x00\x00\x00\x00\xc0}"
    )
    assert len(wv) == 108
    assert g[:3] == [b"*IDN?\n", b"*CLS\n", b"OUTP1:STAT OFF\n"]
    assert g[12:23] == [
        b"SOUR1:BB:ARB:STAT OFF\n",
        b"SOUR1:BB:ARB:STAT?\n",
        b"MMEM:DATA '/var/user/hwloop.wv',#3108" + wv + b"\n",
        b"SOUR1:BB:ARB:WAV:SEL '/var/user/hwloop.wv'\n",
        b"SOUR1:BB:ARB:WAV:SEL?\n",
        b"SOUR1:BB:ARB:CLOC 800000000\n",
        b"SOUR1:BB:ARB:CLOC?\n",
        b"SOUR1:POW:LEV:IMM:AMPL -14.0204\n",
        b"SOUR1:POW:LEV:IMM:AMPL?\n",
        b"*OPC?\n",
        b"SYST:ERR?\n",
    ]
    assert b"SOUR1:POW:LIM:AMPL -10\n" in g and g[-4:-2] == [b"OUTP1:STAT OFF\n", b"OUTP1:STAT?\n"]
    assert a[:8] == [
        b"*IDN?\n",
        b"*CLS\n",
        b"INST:SEL IQ\n",
        b"INIT:CONT OFF\n",
        b"FORM REAL,32\n",
        b"TRAC:IQ:DATA:FORM IQP\n",
        b"TRAC:IQ:SRAT 800000000\n",
        b"TRAC:IQ:SRAT?\n",
    ]
    assert b"FORM:BORD SWAP\n" not in a and a[-4:] == [
        b"*OPC?\n",
        b"STAT:QUES:POW:COND?\n",
        b"TRAC:IQ:DATA:MEM?\n",
        b"SYST:ERR?\n",
    ]
    assert y.shape == (8,) and np.abs(y).max() > 0


def test_rs_and_generic_measure_the_same_bench() -> None:
    """Volts at 50 ohm (R&S) and sqrt(mW) (generic) decode to the same power for the same path."""
    levels = []
    for dialect, gp, ap in (("generic", "generic", "generic"), ("rs", "rs_smw", "rs_fsw")):
        with FakeBench("sim:pa_wh?noise=0", seed=1, dialect=dialect, noise_dbc=-150) as fb:
            gen, ana = _instruments(fb, gp, ap)
            iq = np.stack([np.full(64, 8000), np.zeros(64)], axis=1).astype(np.int16)
            gen.configure(800e6, -10.0)
            ana.configure(800e6, 0.0)
            gen.load(iq, -20.0, 800e6)
            gen.play()
            y, _ = ana.capture(256, 800e6)
            gen.stop()
            levels.append(10 * np.log10(np.mean(np.abs(y) ** 2)))
    assert levels[0] == pytest.approx(levels[1], abs=0.01)


def test_a_block_reply_is_header_payload_newline() -> None:
    """The fake analyser's block reply, read raw: #<d><len><float32 LE pairs>\\n (docs/scpi.md)."""
    import socket

    with (
        FakeBench("sim:pa_wh?noise=0", seed=1) as fb,
        socket.create_connection((fb.analyser.host, fb.analyser.port)) as s,
    ):
        s.sendall(b"FORM REAL,32\nTRAC:IQ:RLEN 3\nINIT:IMM\nTRAC:IQ:DATA:MEM?\n")
        data = b""
        while len(data) < 2 + 2 + 24 + 1:
            data += s.recv(4096)
    assert data[:4] == b"#224" and data[-1:] == b"\n" and len(data) == 29
