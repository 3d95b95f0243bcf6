"""The fake vector signal generator: the generic set of docs/scpi.md, or the R&S SMW/SMBV dialect.

State: RF output, ARB on/off, ARB clock, level, the generator's own level
limit, stored waveforms (complex, in units of digital full scale) and the
selected one. Nothing plays unless OUTP and ARB are both on. Every time the
played signal changes while it plays, the envelope reaching the amplifier is
recorded (`Played`: peak, RMS and PAPR in dBm/dB), so a test can check that
nothing above a limit ever left the generator, and when RF went on and off.

Envelope at the output (docs/scpi.md): ``a_k = (I_k + jQ_k) / 32767 * A``, A such
that mean |a|^2 over the waveform is the level in mW.

Dialects: ``generic`` (docs/scpi.md exactly: int16 big-endian I,Q blocks under
``MMEM:DATA:UNPR "NVWFM:<name>"``) and ``rs`` (R&S SMW200A/SMBV100B remote
forms: numbered ``SOURce1``/``OUTPut1`` nodes, waveform files written with
``MMEMory:DATA '<file>',<block>`` in the R&S tag format
``{TYPE: SMU-WV,<sum>}...{WAVEFORM-<4n+1>:#<int16 LE I,Q>}``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

from hwloop.simulators.fake_bench.scpi import Command, ScpiError, ScpiServer


@dataclass(frozen=True)
class Played:
    """What the generator put out from time ``t`` on (output and ARB on), until the next entry."""

    t: float
    on: bool
    name: str = ""
    level_dbm: float = float("-inf")
    peak_dbm: float = float("-inf")
    papr_db: float = 0.0


def _unquote(s: str) -> str:
    return s.strip().strip("'\"")


def _on_off(arg: str) -> bool:
    a = arg.strip().upper()
    if a in ("ON", "1"):
        return True
    if a in ("OFF", "0"):
        return False
    raise ScpiError(-224, "Illegal parameter value")


def parse_wv(data: bytes) -> np.ndarray:
    """I/Q (int16, little-endian) of an R&S ``.wv`` tag file; a file without TYPE or WAVEFORM is refused."""
    if not data.startswith(b"{TYPE:"):
        raise ScpiError(-256, "File name not found: not a waveform file")
    m = re.search(rb"\{WAVEFORM-(\d+):\s?#", data)
    if not m:
        raise ScpiError(-256, "Waveform file without WAVEFORM tag")
    length = int(m.group(1)) - 1
    body = data[m.end() : m.end() + length]
    if len(body) != length or length % 4 or data[m.end() + length : m.end() + length + 1] != b"}":
        raise ScpiError(-222, "Data out of range: WAVEFORM length")
    return np.frombuffer(body, "<i2").reshape(-1, 2)


class FakeGenerator(ScpiServer):
    """A vector signal generator with an ARB, behind one TCP port."""

    def __init__(self, *, dialect: str = "generic", host: str = "127.0.0.1", port: int = 0) -> None:
        idn = (
            "hwloop,FakeVSG,0001,1.0" if dialect == "generic" else "Rohde&Schwarz,SMW200A,1412.0000K02/0,5.00"
        )
        super().__init__("generator", idn, host=host, port=port)
        self.dialect = dialect
        self.output = False
        self.arb = False
        self.clock = 100e6
        self.level = -30.0
        self.limit = 30.0
        self.waveforms: dict[str, np.ndarray] = {}  # name -> (n, 2) int16
        self.selected = ""
        self.played: list[Played] = [Played(time.time(), False)]
        self.on("*RST", lambda c: self._reset())
        if dialect == "generic":
            self._generic()
        else:
            self._rs()

    # ------------------------------------------------------------ dialects
    def _generic(self) -> None:
        self.on("OUTPut:STATe", lambda c: self._set_output(_on_off(c.arg)))
        self.on("OUTPut:STATe?", lambda c: str(int(self.output)))
        self._common("SOURce", "SOURce:BB:ARBitrary")
        self.on("MMEMory:DATA:UNPRotected", self._store_generic)

    def _rs(self) -> None:
        self.on("OUTPut<n>[:STATe]", lambda c: self._set_output(_on_off(c.arg)))
        self.on("OUTPut<n>[:STATe]?", lambda c: str(int(self.output)))
        self._common("[SOURce<n>]", "[SOURce<n>]:BB:ARBitrary")
        self.on("MMEMory:DATA", self._store_rs)

    def _common(self, src: str, arb: str) -> None:
        self.on(f"{src}:POWer:LIMit[:AMPLitude]", lambda c: self._set_limit(float(c.arg)))
        self.on(f"{src}:POWer:LIMit[:AMPLitude]?", lambda c: f"{self.limit:.4f}")
        self.on(f"{src}:POWer[:LEVel][:IMMediate][:AMPLitude]", lambda c: self._set_level(float(c.arg)))
        self.on(f"{src}:POWer[:LEVel][:IMMediate][:AMPLitude]?", lambda c: f"{self.level:.4f}")
        self.on(f"{arb}:CLOCk", lambda c: self._set_clock(float(c.arg)))
        self.on(f"{arb}:CLOCk?", lambda c: f"{self.clock:.6f}")
        self.on(f"{arb}:WAVeform:SELect", lambda c: self._select(_unquote(c.arg)))
        self.on(f"{arb}:WAVeform:SELect?", lambda c: f'"{self.selected}"')
        self.on(f"{arb}:STATe", lambda c: self._set_arb(_on_off(c.arg)))
        self.on(f"{arb}:STATe?", lambda c: str(int(self.arb)))

    # ------------------------------------------------------------ settings
    def _reset(self) -> None:
        self.output = self.arb = False
        self.level, self.limit, self.clock, self.selected = -30.0, 30.0, 100e6, ""
        self._record()

    def _set_output(self, on: bool) -> None:
        self.output = on
        self._record()

    def _set_arb(self, on: bool) -> None:
        if on and not self.selected:
            raise ScpiError(-221, "Settings conflict: no waveform selected")
        self.arb = on
        self._record()

    def _set_limit(self, dbm: float) -> None:
        if not -150 <= dbm <= 40:
            raise ScpiError(-222, "Data out of range")
        self.limit = dbm
        if self.level > dbm:
            self.level = dbm
            self._record()

    def _set_level(self, dbm: float) -> None:
        if not np.isfinite(dbm) or dbm > self.limit or dbm < -150:
            raise ScpiError(-222, "Data out of range")
        self.level = dbm
        self._record()

    def _set_clock(self, hz: float) -> None:
        if not 1e3 <= hz <= 10e9:
            raise ScpiError(-222, "Data out of range")
        self.clock = hz

    def _select(self, name: str) -> None:
        if self.dialect == "generic" and name.upper().startswith("NVWFM:"):
            name = name[len("NVWFM:") :]  # the stored name, with or without its memory prefix
        if self.arb:
            raise ScpiError(-221, "Settings conflict: ARB is on")
        if name not in self.waveforms:
            raise ScpiError(-256, "File name not found")
        self.selected = name
        self._record()

    def _store(self, name: str, iq: np.ndarray) -> None:
        if not 2 <= len(iq) <= 1 << 24:
            raise ScpiError(-222, "Data out of range: waveform length")
        if self.arb and name == self.selected:
            raise ScpiError(-221, "Settings conflict: ARB is playing this waveform")
        self.waveforms[name] = np.array(iq, np.int16)

    def _store_generic(self, c: Command) -> None:
        name = _unquote(c.arg)
        if not name.upper().startswith("NVWFM:") or c.block is None or len(c.block) % 4:
            raise ScpiError(-222, "Data out of range")
        self._store(name[len("NVWFM:") :], np.frombuffer(c.block, ">i2").reshape(-1, 2))

    def _store_rs(self, c: Command) -> None:
        if c.block is None:
            raise ScpiError(-109, "Missing parameter")
        self._store(_unquote(c.arg), parse_wv(c.block))

    # ------------------------------------------------------------ what plays
    def envelope(self) -> np.ndarray | None:
        """The complex envelope at the output in sqrt(mW), one ARB period, or None when nothing plays."""
        if not (self.output and self.arb and self.selected):
            return None
        iq = self.waveforms[self.selected].astype(np.float64)
        z = (iq[:, 0] + 1j * iq[:, 1]) / 32767.0
        ms = float(np.mean(np.abs(z) ** 2))
        if ms <= 0:
            return np.zeros(len(z), complex)
        return z * np.sqrt(10 ** (self.level / 10) / ms)

    def _record(self) -> None:
        z = self.envelope()
        if z is None:
            if self.played[-1].on:
                self.played.append(Played(time.time(), False))
            return
        p = np.abs(z) ** 2
        peak = 10 * np.log10(max(float(p.max()), 1e-30))
        self.played.append(
            Played(time.time(), True, self.selected, self.level, peak, peak - self.level if p.any() else 0.0)
        )

    def rf_is_on(self) -> bool:
        return self.played[-1].on
