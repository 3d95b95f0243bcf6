"""A transceiver through pyadi-iio (``adi.Pluto``, ``adi.ad9364``, ``adi.ad9361``): the radio's pair of ends.

What a `RadioSession` guarantees, for the device and the interlock:

- every setting written through pyadi-iio's properties is read back
  (sample rate, LOs, bandwidths, manual gain control, RX gain, TX
  attenuation); a mismatch is a `ReadbackError`;
- TX plays one cyclic buffer (``tx_cyclic_buffer = True``: the DMA loops it)
  of 12-bit codes in the DAC's 16-bit words; `tx_off` destroys it and sets the
  attenuation to its maximum (-89.75 dB), read back;
- a capture is a fresh RX buffer: ``flush`` refills discarded (kernel buffers
  filled before TX settled), the RX DMA status register (0x80000088, bit 2)
  cleared, one refill kept, the status read again: an overflow (samples lost
  inside the capture) is reported;
- each call is timed (``busy_since``, ``deadline``, ``expected_s`` for the
  interlock's watchdog; the expected time grows by up to ``SLACK_S`` with
  the lateness of the last calls, so a loaded host or radio does not trip it,
  while a reply that does not come still does within 1 s); a libiio error is a lost link when it comes before
  the timeout (the peer closed or reset the connection: libiio 0.x answers
  both a timeout and a closed connection with EPIPE, so the clock tells them
  apart) and a `DeviceTimeout` after it. After either, the context is never
  used again (a late reply would answer the next command): the interlock
  works over a second context;
- `emergency_off` (the interlock's, from any thread): attenuation to its
  maximum over a second context (a fresh one if that fails), and the TX
  buffer destroyed if no other call holds it; `cancel` wakes a blocked RX
  refill (libiio's ``iio_buffer_cancel``).
"""

from __future__ import annotations

import errno
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from hwloop.device import DeviceDisconnected, DeviceError, DeviceTimeout, MissingExtraError
from hwloop.drivers.bench.radio_config import TX_GAIN_MIN, Radio

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

INSTALL_HINT = "pip install 'hwloop[sdr]' (pyadi-iio, pylibiio) and the libiio library (Debian: libiio0)"
DMA_STATUS = 0x80000088
OVERFLOW = 0x4
LATENCY_S = 0.05  # a round trip to a radio on the LAN or USB, generously
SLACK_S = 0.3  # at most this much is added to a call's expected time for the lateness seen lately
RATE = 10e6  # bytes/s a buffer transfer is allowed at least
LOST = (errno.EPIPE, errno.ECONNRESET, errno.ECONNREFUSED, errno.ENOTCONN, errno.ECONNABORTED, errno.EBADF)


class ReadbackError(DeviceError):
    """A radio setting read back differs from what was written."""


def pyadi_class(device: str) -> Any:
    """pyadi-iio's class for a device name; `MissingExtraError` without pyadi-iio or libiio."""
    try:
        import adi
        import iio  # noqa: F401
    except (ImportError, OSError, AttributeError) as exc:  # pylibiio without a libiio library: no symbols
        raise MissingExtraError(
            f"bench: a [radio] needs pyadi-iio and libiio ({exc}): {INSTALL_HINT}"
        ) from None
    return {"pluto": adi.Pluto, "ad9364": adi.ad9364, "ad9361": adi.ad9361}[device]


def connect(radio: Radio, timeout_s: float) -> Any:
    """A pyadi-iio object on a new libiio context, using RF channel 0 only."""
    cls = pyadi_class(radio.device)
    try:
        sdr = cls(uri=radio.uri)
        sdr.ctx.set_timeout(max(1, int(timeout_s * 1000)))
    except Exception as exc:  # pyadi-iio turns every failure into Exception("No device found")
        raise DeviceDisconnected(f"radio: cannot open {radio.uri} as {radio.device}: {exc}") from None
    sdr.rx_enabled_channels = [0]
    sdr.tx_enabled_channels = [0]
    return sdr


class RadioSession:
    """One transceiver, every call timed and its failures classified."""

    name = "radio"

    def __init__(self, radio: Radio, *, emergency_timeout_s: float = 0.5) -> None:
        self.radio = radio
        self.timeout_s = radio.timeout_s
        self.emergency_timeout_s = emergency_timeout_s
        self.busy_since: float | None = None
        self.deadline: float | None = None
        self.expected_s = 0.0
        self.broken = ""
        self.tx_lock = threading.Lock()
        self._lock = threading.Lock()
        self._late: deque[float] = deque(maxlen=20)  # how late the last calls came, past their expected time
        self.sdr = connect(radio, self.timeout_s)
        self.second: Any = connect(radio, emergency_timeout_s)
        attrs = dict(self.sdr.ctx.attrs)
        self.idn = (
            " ".join(v for k, v in attrs.items() if k in ("hw_model", "hw_serial"))
            or self.sdr.ctx.description
        )

    # ------------------------------------------------------------ calls
    def _io(self, what: str, call: Callable[[], Any], expected_s: float = 0.0) -> Any:
        if self.broken:
            raise DeviceDisconnected(f"radio: the session is closed after {self.broken}")
        with self._lock:
            t0 = time.monotonic()
            slack = min(SLACK_S, 2 * max(self._late, default=0.0))
            self.expected_s, self.busy_since = expected_s + slack, t0
            self.deadline = t0 + self.timeout_s + expected_s
            try:
                out = call()
                self._late.append(max(0.0, time.monotonic() - t0 - expected_s))
                return out
            except OSError as exc:
                took = time.monotonic() - t0
                code = exc.errno or 0
                if (
                    code == errno.ETIMEDOUT
                    or (code not in LOST)
                    or took >= 0.9 * (self.timeout_s + expected_s)
                ):
                    self.broken = f"no reply to {what} within {took:.2f} s"
                    raise DeviceTimeout(f"radio: {self.broken} ({exc})") from None
                self.broken = f"link lost during {what} after {took:.3f} s"
                raise DeviceDisconnected(f"radio: {self.broken} ({exc})") from None
            except Exception as exc:
                if isinstance(exc, DeviceError):
                    raise
                self.broken = f"{type(exc).__name__} during {what}"
                raise DeviceError(f"radio: {what} failed: {exc}") from None
            finally:
                self.busy_since = self.deadline = None
                self.expected_s = 0.0

    def check_link(self) -> str:
        """libiio recognises a closed connection itself (EPIPE before the timeout): nothing to poll."""
        return ""

    def _set(self, what: str, prop: str, value: Any, ok: Callable[[Any], bool]) -> Any:
        def call() -> Any:
            setattr(self.sdr, prop, value)
            return getattr(self.sdr, prop)

        got = self._io(f"{prop} = {value!r}", call)
        if not ok(got):
            raise ReadbackError(f"radio: {what} read back {got!r}, wrote {value!r}")
        return got

    # ------------------------------------------------------------ settings
    def configure(self) -> dict[str, Any]:
        """Safe state first (no TX buffer, attenuation at its maximum), then rate, LOs, filters, gains."""
        r = self.radio
        off = self.tx_off()
        fs = self._set("sample rate", "sample_rate", round(r.sample_rate),
                       lambda v: math.isclose(v, r.sample_rate, rel_tol=1e-4))  # fmt: skip
        rx_lo = self._set("RX LO", "rx_lo", round(r.rx_lo_hz), lambda v: abs(v - r.rx_lo_hz) < 1e3)
        tx_lo = self._set("TX LO", "tx_lo", round(r.tx_lo_hz), lambda v: abs(v - r.tx_lo_hz) < 1e3)
        bw = round(r.rf_bandwidth_hz)
        rx_bw = self._set("RX bandwidth", "rx_rf_bandwidth", bw, lambda v: v > 0)
        tx_bw = self._set("TX bandwidth", "tx_rf_bandwidth", bw, lambda v: v > 0)
        self._set("RX gain control", "gain_control_mode_chan0", "manual", lambda v: v == "manual")
        rx_gain = self._set("RX gain", "rx_hardwaregain_chan0", float(r.rx_gain_db),
                            lambda v: abs(v - r.rx_gain_db) <= 0.5)  # fmt: skip
        self._io("tx_cyclic_buffer = True", lambda: setattr(self.sdr, "tx_cyclic_buffer", True))
        return {"sample_rate": fs, "rx_lo_hz": rx_lo, "tx_lo_hz": tx_lo, "rx_bandwidth_hz": rx_bw,
                "tx_bandwidth_hz": tx_bw, "rx_gain_db": rx_gain, "tx_gain_db": off}  # fmt: skip

    def set_tx_gain(self, db: float) -> float:
        """TX attenuation written and read back (0.25 dB steps)."""
        return float(self._set("TX gain", "tx_hardwaregain_chan0", float(db), lambda v: abs(v - db) <= 0.125))

    # ------------------------------------------------------------ TX and RX
    def play(self, codes: np.ndarray) -> None:
        """One cyclic TX buffer of 12-bit codes (n, 2), in the DAC's 16-bit words: TX on."""
        words = (codes[:, 0].astype(np.float64) + 1j * codes[:, 1].astype(np.float64)) * 16.0
        expected = LATENCY_S + 4 * len(codes) / RATE
        with self.tx_lock:
            self._io(f"TX buffer of {len(codes)} samples", lambda: self.sdr.tx(words), expected)

    def capture(self, n: int, flush: int) -> tuple[np.ndarray, bool]:
        """``n`` samples (complex, ADC codes) on a fresh RX buffer after ``flush`` discarded ones, and
        whether the RX DMA overflowed during the kept one. Each refill is its own timed call."""
        sdr = self.sdr
        one = LATENCY_S + n / self.radio.sample_rate + 4 * n / RATE

        def fresh() -> None:
            sdr.rx_destroy_buffer()
            sdr.rx_buffer_size = n

        self._io("RX buffer", fresh)
        for k in range(flush):
            self._io(f"RX refill {k + 1} of {flush} discarded ({n} samples)", sdr.rx, one)
        self._io("RX DMA status cleared", lambda: sdr._rxadc.reg_write(DMA_STATUS, OVERFLOW | 0x2))
        data = np.asarray(self._io(f"RX capture of {n} samples", sdr.rx, one), complex)
        status = self._io("RX DMA status", lambda: sdr._rxadc.reg_read(DMA_STATUS))
        self._io("RX buffer destroyed", sdr.rx_destroy_buffer)
        return data, bool(status & OVERFLOW)

    def tx_off(self) -> float:
        """TX buffer destroyed, attenuation at its maximum (read back); returns the read-back."""
        with self.tx_lock:
            self._io("TX buffer destroyed", self.sdr.tx_destroy_buffer)
        return self.set_tx_gain(TX_GAIN_MIN)

    # ------------------------------------------------------------ the interlock's side
    def emergency_off(self) -> str:
        """Attenuation to its maximum over a second context (a fresh one if the kept one fails),
        read back; the TX buffer destroyed if no call holds it. Any thread."""
        if self.tx_lock.acquire(blocking=False):
            try:
                self.sdr.tx_destroy_buffer()
            except Exception as exc:  # the main context may be gone: the attenuation is what counts
                log.debug("radio: TX buffer not destroyed on the main context: %s", exc)
            finally:
                self.tx_lock.release()
        try:
            sdr = self.second
            if sdr is None:
                sdr = self.second = connect(self.radio, self.emergency_timeout_s)
            sdr.tx_hardwaregain_chan0 = TX_GAIN_MIN
            got = float(sdr.tx_hardwaregain_chan0)
        except Exception:
            self.second = None  # next attempt: a fresh context
            raise
        if abs(got - TX_GAIN_MIN) > 0.125:
            raise ReadbackError(f"radio: TX gain read back {got} after {TX_GAIN_MIN} over the second context")
        return f"{got:g}"

    def cancel(self) -> None:
        """Wake a refill blocked on the RX buffer (from another thread)."""
        buf = getattr(self.sdr, "_rxbuf", None)
        cancel = getattr(buf, "cancel", None)
        if callable(cancel):
            try:
                cancel()
            except Exception as exc:
                log.debug("radio: RX buffer cancel failed: %s", exc)

    def close(self) -> None:
        for sdr in (self.sdr, self.second):
            if sdr is None:
                continue
            try:
                sdr.rx_destroy_buffer()
                sdr.tx_destroy_buffer()
                sdr.close()
            except Exception as exc:
                log.debug("radio: close: %s", exc)
        self.second = None
        self.broken = self.broken or "close"
