"""The two instruments as hwloop drives them: each setting written, then read back and compared.

`Generator` and `Analyser` sequence a personality's commands over a
`ScpiSession` the way docs/scpi.md and real benches ask: upload only with ARB and output off;
every setting read back (a mismatch is a `ReadbackError`, which trips the
interlock); a configuration ends with ``*OPC?`` and a drained ``SYST:ERR?``
(any queued error is an `InstrumentError`). Nothing here decides whether a
waveform is safe: the interlock has checked it before these are called.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from hwloop.device import DeviceError
from hwloop.drivers.bench.personalities import Analyser as AnalyserDialect
from hwloop.drivers.bench.personalities import Generator as GeneratorDialect
from hwloop.drivers.bench.session import ScpiSession

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

LEVEL_TOLERANCE_DB = 0.01
CAPTURE_ALLOWANCE_S = 5e-6  # extra time per captured sample an analyser may take (capture + processing)


class InstrumentError(DeviceError):
    """An instrument queued an error (``SYST:ERR?``) for a command hwloop sent."""


class ReadbackError(DeviceError):
    """A setting read back differs from what was written."""


def _check_errors(session: ScpiSession, after: str) -> None:
    errs = session.errors()
    if errs:
        text = "; ".join(f"{c},{t!r}" for c, t in errs)
        raise InstrumentError(f"{session.name}: error queue after {after}: {text}")


class Generator:
    """A vector signal generator with an ARB."""

    def __init__(self, session: ScpiSession, dialect: GeneratorDialect) -> None:
        self.s = session
        self.d = dialect
        self.rf_on = True  # unknown until read back: assume the worst

    def rf(self, on: bool) -> None:
        """Output on or off, read back."""
        self.s.write(self.d.rf(on))
        state = self.s.query_bool(self.d.rf_query())
        self.rf_on = state
        if state != on:
            raise ReadbackError(f"{self.s.name}: output read back {'ON' if state else 'OFF'} after {on}")

    def arb(self, on: bool) -> None:
        self.s.write(self.d.arb(on))
        if self.s.query_bool(self.d.arb()) != on:
            raise ReadbackError(f"{self.s.name}: ARB state did not read back {'ON' if on else 'OFF'}")

    def _number(self, cmd: str, query: str, value: float, tol: float, what: str) -> None:
        self.s.write(cmd)
        got = self.s.query_float(query)
        if not math.isclose(got, value, abs_tol=tol, rel_tol=1e-9):
            raise ReadbackError(f"{self.s.name}: {what} read back {got:g}, wrote {value:g}")

    def configure(self, fs: float, limit_dbm: float) -> None:
        """Known safe state: RF off, ARB off, clock, the generator's own level limit."""
        self.s.write("*CLS")
        self.rf(False)
        self.arb(False)
        self._number(self.d.clock(fs), self.d.clock(), fs, 1e-3, "ARB clock")
        self._number(self.d.limit(limit_dbm), self.d.limit(), limit_dbm, LEVEL_TOLERANCE_DB, "level limit")
        self.s.opc()
        _check_errors(self.s, "configuration")

    def load(self, iq: np.ndarray, level_dbm: float, fs: float) -> None:
        """Upload (RF and ARB off), select, set the level: all read back, then OPC and no error."""
        if self.rf_on:
            raise ReadbackError(f"{self.s.name}: refusing to upload with RF on")
        self.arb(False)
        prefix, payload = self.d.upload(iq, fs)
        self.s.write_block(prefix, payload)
        self.s.write(self.d.select())
        if not self.d.selected(self.s.query(self.d.select(query=True))):
            raise ReadbackError(f"{self.s.name}: waveform {self.d.waveform_name()!r} is not selected")
        self._number(self.d.clock(fs), self.d.clock(), fs, 1e-3, "ARB clock")
        self._number(self.d.level(level_dbm), self.d.level(), level_dbm, LEVEL_TOLERANCE_DB, "level")
        self.s.opc(self.s.timeout_s + len(payload) / 10e6)
        _check_errors(self.s, "waveform upload")

    def play(self) -> None:
        """ARB on, then RF on, each read back (the interlock has armed this)."""
        self.arb(True)
        self.rf(True)

    def stop(self) -> None:
        self.rf(False)
        self.arb(False)


class Analyser:
    """A signal analyser in I/Q mode."""

    def __init__(self, session: ScpiSession, dialect: AnalyserDialect) -> None:
        self.s = session
        self.d = dialect
        self.rlen = 0
        self.ref_level = math.nan

    def configure(self, fs: float, ref_level_dbm: float) -> None:
        self.s.write("*CLS")
        for cmd in self.d.setup():
            self.s.write(cmd)
        self.s.write(self.d.srate(fs))
        got = self.s.query_float(self.d.srate())
        if not math.isclose(got, fs, rel_tol=1e-9, abs_tol=1e-3):
            raise ReadbackError(f"{self.s.name}: capture rate read back {got:g}, wrote {fs:g}")
        self.set_ref_level(ref_level_dbm)
        self.s.opc()
        _check_errors(self.s, "configuration")

    def set_ref_level(self, dbm: float) -> None:
        self.s.write(self.d.rlev(dbm))
        got = self.s.query_float(self.d.rlev())
        if not math.isclose(got, dbm, abs_tol=LEVEL_TOLERANCE_DB):
            raise ReadbackError(f"{self.s.name}: reference level read back {got:g}, wrote {dbm:g}")
        self.ref_level = got

    def set_rlen(self, n: int) -> None:
        if n == self.rlen:
            return
        self.s.write(self.d.rlen(n))
        got = self.s.query_float(self.d.rlen())
        if int(got) != n:
            self.rlen = 0
            raise ReadbackError(f"{self.s.name}: record length read back {got:g}, wrote {n}")
        self.rlen = n

    def acquire(self, n: int, fs: float) -> None:
        """One capture of ``n`` samples, done when this returns (what needs RF on)."""
        self.set_rlen(n)
        self.s.write(self.d.init())
        expected = n / fs + n * CAPTURE_ALLOWANCE_S
        self.s.opc(self.s.timeout_s + expected, expected_s=expected)

    def fetch(self, n: int) -> tuple[np.ndarray, bool]:
        """The last capture (``n`` samples, complex sqrt(mW)) and whether it overloaded (RF may be off)."""
        overloaded = self.d.overloaded(self.s.query(self.d.overload_query()))
        block = self.s.query_block(self.d.fetch(), 8 * n)
        _check_errors(self.s, "capture")
        return self.d.decode(block), overloaded

    def capture(self, n: int, fs: float) -> tuple[np.ndarray, bool]:
        """One capture of ``n`` samples: (complex sqrt(mW), overloaded)."""
        self.acquire(n, fs)
        return self.fetch(n)
