"""The fake signal analyser in I/Q mode: the generic set of docs/scpi.md, or the R&S FSW/FSV dialect.

``INIT:IMM`` captures ``RLEN`` samples of whatever the generator plays, through
the `PathModel`, starting at an arbitrary sample of the looped waveform; a
capture at a rate other than the ARB clock is refused (-221). Samples above
the reference level clip and set the overload condition until the next
capture. ``TRAC:IQ:DATA:MEM?`` returns the last capture as a block.

- ``generic``: float32 I,Q pairs in sqrt(mW), ``FORM:BORD SWAP`` little-endian
  (the default) or ``NORM`` big-endian; ``STAT:QUES:POW:COND?`` is 1 or 0.
- ``rs``: the R&S FSW/FSV I/Q Analyzer forms (``INSTrument[:SELect] IQ``,
  ``INITiate:CONTinuous OFF``, ``TRACe:IQ:DATA:FORMat IQPair``): float32
  little-endian, samples in volts at 50 ohm (|v|^2 / 50 W), the overload
  register's bit 0 (RF overload) set after a clipped capture.

``inject_overload()`` makes the next capture report an overload (the fault).
"""

from __future__ import annotations

import math

import numpy as np

from hwloop.simulators.fake_bench.generator import FakeGenerator, _on_off
from hwloop.simulators.fake_bench.path import PathModel
from hwloop.simulators.fake_bench.scpi import ScpiError, ScpiServer

MAX_RLEN = 1 << 24


class FakeAnalyser(ScpiServer):
    """A signal analyser's I/Q capture, fed by ``generator`` through ``path``."""

    def __init__(
        self,
        generator: FakeGenerator,
        path: PathModel,
        *,
        dialect: str = "generic",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        idn = (
            "hwloop,FakeVSA,0002,1.0" if dialect == "generic" else "Rohde&Schwarz,FSW-26,1331.5003K26/0,4.70"
        )
        super().__init__("analyser", idn, host=host, port=port)
        self.generator = generator
        self.path = path
        self.dialect = dialect
        self.srate = 100e6
        self.rlen = 1024
        self.rlev = 0.0
        self.big_endian = False
        self.real32 = dialect == "rs"
        self.iq_pairs = dialect == "generic"
        self.overloaded = False
        self.captures = 0
        self._forced_overload = False
        self._last = np.zeros(0, complex)
        self.on("*RST", lambda c: None)
        self.on("TRACe:IQ:SRATe", lambda c: self._set_srate(float(c.arg)))
        self.on("TRACe:IQ:SRATe?", lambda c: f"{self.srate:.6f}")
        self.on("TRACe:IQ:RLENgth", lambda c: self._set_rlen(c.arg))
        self.on("TRACe:IQ:RLENgth?", lambda c: str(self.rlen))
        rlev = "DISPlay[:WINDow<n>]:TRACe<n>:Y[:SCALe]:RLEVel"
        self.on(rlev, lambda c: self._set_rlev(float(c.arg)))
        self.on(rlev + "?", lambda c: f"{self.rlev:.4f}")
        self.on("FORMat[:DATA]", lambda c: self._set_format(c.arg))
        self.on("INITiate[:IMMediate]", lambda c: self._capture())
        self.on("STATus:QUEStionable:POWer:CONDition?", lambda c: str(int(self.overloaded)))
        self.on("TRACe:IQ:DATA:MEMory?", lambda c: self._data())
        if dialect == "generic":
            self.on("FORMat:BORDer", lambda c: self._set_border(c.arg))
        else:
            self.on("INSTrument[:SELect]", lambda c: self._select_app(c.arg))
            self.on("INITiate:CONTinuous", lambda c: _on_off(c.arg) and None)
            self.on("TRACe:IQ:DATA:FORMat", lambda c: self._set_order(c.arg))

    def inject_overload(self) -> None:
        """The next capture reports an overload, whatever it measured."""
        self._forced_overload = True

    # ------------------------------------------------------------ settings
    def _set_srate(self, hz: float) -> None:
        if not 1e3 <= hz <= 10e9:
            raise ScpiError(-222, "Data out of range")
        self.srate = hz

    def _set_rlen(self, arg: str) -> None:
        n = int(arg)
        if not 1 <= n <= MAX_RLEN:
            raise ScpiError(-222, "Data out of range")
        self.rlen = n

    def _set_rlev(self, dbm: float) -> None:
        if not -130 <= dbm <= 30:
            raise ScpiError(-222, "Data out of range")
        self.rlev = dbm

    def _set_format(self, arg: str) -> None:
        if arg.replace(" ", "").upper() != "REAL,32":
            raise ScpiError(-224, "Illegal parameter value: only REAL,32")
        self.real32 = True

    def _set_border(self, arg: str) -> None:
        a = arg.strip().upper()
        if a not in ("SWAP", "SWAPPED", "NORM", "NORMAL"):
            raise ScpiError(-224, "Illegal parameter value")
        self.big_endian = a.startswith("NORM")

    def _select_app(self, arg: str) -> None:
        if arg.strip().strip("'\"").upper() != "IQ":
            raise ScpiError(-224, "Illegal parameter value: only the IQ application")

    def _set_order(self, arg: str) -> None:
        a = arg.strip().upper()
        if a not in ("IQP", "IQPAIR", "IQBL", "IQBLOCK"):
            raise ScpiError(-224, "Illegal parameter value")
        self.iq_pairs = a.startswith("IQP")

    # ------------------------------------------------------------ capture
    def _capture(self) -> None:
        gen = self.generator
        with gen.lock:
            env = gen.envelope()
            clock = gen.clock
        if env is not None and not math.isclose(clock, self.srate, rel_tol=1e-9):
            raise ScpiError(-221, "Settings conflict: capture rate differs from the ARB clock")
        y, clipped = self.path.capture(env, self.rlen, self.rlev)
        self.overloaded = clipped or self._forced_overload
        self._forced_overload = False
        self.captures += 1
        self._last = y

    def _data(self) -> bytes:
        if not self.real32:
            raise ScpiError(-221, "Settings conflict: set FORM REAL,32 first")
        y = self._last
        if self.dialect == "rs":
            y = y / np.sqrt(20.0)  # sqrt(mW) -> volts at 50 ohm: |v|^2 / 50 = |a|^2 / 1000
        pairs = np.stack([y.real, y.imag], axis=1)
        flat = pairs.ravel() if self.iq_pairs else pairs.T.ravel()
        return flat.astype(">f4" if self.big_endian else "<f4").tobytes()
