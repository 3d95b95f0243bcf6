"""Personalities: the exact command forms one instrument family understands.

A personality only spells commands and decodes replies; sessions carry
them and `instruments` sequences them. Two generators and two analysers:

``generic`` (both): the generic SCPI set (docs/scpi.md), byte for byte (CONTRACT:
independent fake benches implement it). Waveforms are int16 big-endian
interleaved I,Q under ``MMEM:DATA:UNPR "NVWFM:<name>",<block>``; captures are
float32 I,Q in sqrt(mW), ``FORM:BORD SWAP`` (little-endian); overload is
``STAT:QUES:POW:COND?`` -> 1.

``rs_smw`` (R&S SMW200A / SMBV100B / SMM100A vector generators) and
``rs_fsw`` (R&S FSW / FSV I/Q Analyzer), from the published user manuals:

- waveform file: the R&S tag format, "Tags for Waveforms, Data and Control
  Lists" (SMW200A user manual 1175.6632.02, 5.7.5; SMBV100B 1178.4460.02,
  3.6.5): ``{TYPE: SMU-WV,<checksum>}`` first, ``{CLOCK: <Hz>}``,
  ``{LEVEL OFFS: <rms offset dB>,<peak offset dB>}`` (offsets below the 16-bit
  full scale |I+jQ| = 32767), ``{SAMPLES: <n>}``, then
  ``{WAVEFORM-<4n+1>:#<I0Q0...>}`` with int16 little-endian values ("each value
  consists of 2 bytes, starting with the least significant bit"; Length counts
  the ``#``). Checksum: 0xA50F74FF XOR every little-endian uint32 of the data;
- ``MMEMory:DATA '<file>',<block>`` writes the file (SMBV100B 1178.4460.02,
  MMEMory subsystem: ``MMEMory:DATA '/var/user/test.txt',#15hallo``);
  ``[:SOURce<hw>]:BB:ARBitrary:WAVeform:SELect``, ``...:BB:ARBitrary:STATe``,
  ``...:BB:ARBitrary:CLOCk``, ``[:SOURce<hw>]:POWer[:LEVel][:IMMediate][:AMPLitude]``
  (SCPI confirmed, e.g. ``SOUR:POW:LEV:IMM:AMPL 15``), ``[:SOURce]:POWer:LIMit[:AMPLitude]``,
  ``OUTPut<hw>[:STATe]``; the ARB's RF level is the RMS level of the waveform,
  so full scale stays at P_fs with level = P_fs + 20 log10(rms/32767), as generic;
- FSW/FSV I/Q Analyzer (FSW user manual 1173.9411.02; FSV3000 I/Q Analyzer
  1178.8536.02): ``INSTrument[:SELect] IQ``, ``INITiate:CONTinuous OFF``,
  ``TRACe:IQ:SRATe``, ``TRACe:IQ:RLENgth``, ``TRACe:IQ:DATA:FORMat IQPair``
  (I,Q,I,Q; the FSW's *RST is IQBLock), ``FORMat[:DATA] REAL,32`` ("8 bytes per
  sample"), ``TRACe:IQ:DATA:MEMory?``; values are volts at the RF input
  (50 ohm), little-endian; ``STATus:QUEStionable:POWer:CONDition?`` bits 0
  (RF OVLD), 2 (IF OVLD) and 3 (INPUT OVLD) mean overload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwloop.device import UsageError

WAVEFORM = "hwloop"


def num(v: float) -> str:
    """A number as the personalities spell it: up to 10 significant digits, no exponent for Hz."""
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return format(float(v), ".10g")


@dataclass(frozen=True)
class Generator:
    """Spelling of a vector signal generator's commands (generic = docs/scpi.md)."""

    name: str = "generic"
    src: str = "SOUR"
    out: str = "OUTP:STAT"

    def rf(self, on: bool) -> str:
        return f"{self.out} {'ON' if on else 'OFF'}"

    def rf_query(self) -> str:
        return f"{self.out}?"

    def limit(self, dbm: float | None = None) -> str:
        return f"{self.src}:POW:LIM:AMPL" + ("?" if dbm is None else f" {num(dbm)}")

    def level(self, dbm: float | None = None) -> str:
        return f"{self.src}:POW:LEV:IMM:AMPL" + ("?" if dbm is None else f" {num(dbm)}")

    def clock(self, hz: float | None = None) -> str:
        return f"{self.src}:BB:ARB:CLOC" + ("?" if hz is None else f" {num(hz)}")

    def arb(self, on: bool | None = None) -> str:
        return f"{self.src}:BB:ARB:STAT" + ("?" if on is None else f" {'ON' if on else 'OFF'}")

    def waveform_name(self) -> str:
        return f"NVWFM:{WAVEFORM}"

    def select(self, query: bool = False) -> str:
        """The generic set stores under ``"NVWFM:<name>"`` and selects ``"<name>"``."""
        return f"{self.src}:BB:ARB:WAV:SEL" + ("?" if query else f' "{WAVEFORM}"')

    def upload(self, iq: np.ndarray, fs: float) -> tuple[str, bytes]:
        """(command prefix, block payload) storing int16 (n, 2) I,Q: big-endian, interleaved."""
        return f'MMEM:DATA:UNPR "{self.waveform_name()}",', np.asarray(iq, ">i2").tobytes()

    def selected(self, reply: str) -> bool:
        """The selection read back names our waveform (with or without its memory prefix)."""
        return reply.strip().strip("'\"") in (WAVEFORM, self.waveform_name())


def wv_checksum(data: bytes) -> int:
    """The R&S TYPE tag checksum: 0xA50F74FF XOR every little-endian uint32 of the WAVEFORM data."""
    words = np.frombuffer(data[: len(data) // 4 * 4], "<u4")
    return int(np.bitwise_xor.reduce(words, initial=np.uint32(0xA50F74FF)))


def wv_file(iq: np.ndarray, fs: float) -> bytes:
    """An R&S ``.wv`` waveform file for int16 (n, 2) I,Q at clock ``fs``."""
    data = np.asarray(iq, "<i2").tobytes()
    mag = np.hypot(*np.asarray(iq, np.float64).T) / 32767.0
    rms = float(np.sqrt(np.mean(mag**2)))
    rms_off = -20 * math.log10(rms) if rms > 0 else 0.0
    peak_off = -20 * math.log10(float(mag.max())) if mag.max() > 0 else 0.0
    head = (
        f"{{TYPE: SMU-WV,{wv_checksum(data)}}}{{CLOCK: {num(fs)}}}"
        f"{{LEVEL OFFS: {rms_off:.6f},{peak_off:.6f}}}{{SAMPLES: {len(iq)}}}"
        f"{{WAVEFORM-{len(data) + 1}:#"
    )
    return head.encode("ascii") + data + b"}"


@dataclass(frozen=True)
class RSGenerator(Generator):
    """R&S SMW200A / SMBV100B: numbered nodes, waveform files in the tag format."""

    name: str = "rs_smw"
    src: str = "SOUR1"
    out: str = "OUTP1:STAT"
    folder: str = "/var/user"

    def waveform_name(self) -> str:
        return f"{self.folder}/{WAVEFORM}.wv"

    def select(self, query: bool = False) -> str:
        return f"{self.src}:BB:ARB:WAV:SEL" + ("?" if query else f" '{self.waveform_name()}'")

    def upload(self, iq: np.ndarray, fs: float) -> tuple[str, bytes]:
        return f"MMEM:DATA '{self.waveform_name()}',", wv_file(iq, fs)


@dataclass(frozen=True)
class Analyser:
    """Spelling of an I/Q analyser's commands (generic = docs/scpi.md)."""

    name: str = "generic"
    to_sqrt_mw: float = 1.0  # factor from the instrument's sample units to sqrt(mW)

    def setup(self) -> list[str]:
        return ["FORM REAL,32", "FORM:BORD SWAP"]

    def srate(self, hz: float | None = None) -> str:
        return "TRAC:IQ:SRAT" + ("?" if hz is None else f" {num(hz)}")

    def rlen(self, n: int | None = None) -> str:
        return "TRAC:IQ:RLEN" + ("?" if n is None else f" {int(n)}")

    def rlev(self, dbm: float | None = None) -> str:
        return "DISP:TRAC:Y:SCAL:RLEV" + ("?" if dbm is None else f" {num(dbm)}")

    def init(self) -> str:
        return "INIT:IMM"

    def fetch(self) -> str:
        return "TRAC:IQ:DATA:MEM?"

    def overload_query(self) -> str:
        return "STAT:QUES:POW:COND?"

    def overloaded(self, reply: str) -> bool:
        return int(float(reply)) != 0

    def decode(self, block: bytes) -> np.ndarray:
        """Complex samples in sqrt(mW) from a float32 little-endian I,Q block."""
        v = np.frombuffer(block, "<f4").astype(np.float64).reshape(-1, 2)
        return (v[:, 0] + 1j * v[:, 1]) * self.to_sqrt_mw


@dataclass(frozen=True)
class RSAnalyser(Analyser):
    """R&S FSW / FSV I/Q Analyzer: volts at 50 ohm, pairs on request, overload bits 0, 2, 3."""

    name: str = "rs_fsw"
    to_sqrt_mw: float = math.sqrt(20.0)  # |v|^2 / 50 ohm in W = |v|^2 * 20 in mW

    def setup(self) -> list[str]:
        return ["INST:SEL IQ", "INIT:CONT OFF", "FORM REAL,32", "TRAC:IQ:DATA:FORM IQP"]

    def overloaded(self, reply: str) -> bool:
        return (int(float(reply)) & 0b1101) != 0


GENERATORS: dict[str, Generator] = {"generic": Generator(), "rs_smw": RSGenerator()}
ANALYSERS: dict[str, Analyser] = {"generic": Analyser(), "rs_fsw": RSAnalyser()}


def generator(name: str) -> Generator:
    if name not in GENERATORS:
        raise UsageError(f"unknown generator personality {name!r} (known: {', '.join(GENERATORS)})")
    return GENERATORS[name]


def analyser(name: str) -> Analyser:
    if name not in ANALYSERS:
        raise UsageError(f"unknown analyser personality {name!r} (known: {', '.join(ANALYSERS)})")
    return ANALYSERS[name]
