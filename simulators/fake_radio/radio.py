"""A whole fake radio: an AD936x-like IIO context served over libiio's network protocol, an amplifier inside.

    with FakeRadio(open_sim("sim:pa_wh?seed=3"), seed=0) as fr:
        Path("radio.toml").write_text(fr.toml())
        ...                                   # hwloop train --device bench:radio.toml ...
        fr.tx_log                             # every TX buffer (peak, RMS, PAPR in dBFS), gain, destroy
        fr.fault_at("READBUF", "late", 2.0)   # faults: late reply, dropped link, RX overflow, stale data

The client side is libiio's own (``ip:127.0.0.1:PORT``): pyadi-iio's
``adi.Pluto(uri)`` and friends work against it unchanged. `hwloop serve-bench
--radio` runs one. What the radio transmits is judged by its own clock:
``tx_log`` has one `TxEvent` per change (a buffer pushed, destroyed, the TX
attenuation written), and `tx_is_on` says whether a waveform is playing with
the attenuation below its maximum.
"""

from __future__ import annotations

import errno
import logging
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from hwloop.device import Device
from hwloop.simulators.fake_radio.context import (
    CLASSES,
    DMA_STATUS,
    OVERFLOW_BIT,
    TX_GAIN_MIN,
    IioDevice,
    TransceiverState,
    build_context,
    context_xml,
)
from hwloop.simulators.fake_radio.iiod import IIOD_PORT, Conn, IiodServer, sample_size
from hwloop.simulators.fake_radio.rf import DAC_FS, RadioPath

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

PYADI_CLASS = {"pluto": "Pluto", "ad9364": "ad9364", "ad9361": "ad9361"}


@dataclass(frozen=True)
class TxEvent:
    """A change of what the transmitter does, at time ``t`` (the fake's clock, time.time())."""

    t: float
    kind: str  # "reset" (the radio started, no buffer), "buffer" (a waveform pushed), "destroyed", "gain"
    gain_db: float
    peak_dbfs: float = -math.inf
    rms_dbfs: float = -math.inf
    papr_db: float = 0.0
    samples: int = 0


def levels(iq16: np.ndarray) -> tuple[float, float, float]:
    """(peak dBFS, RMS dBFS, PAPR dB) of an int16 TX buffer as the 12-bit DAC plays it."""
    codes = np.asarray(iq16, np.int16) >> 4
    mag2 = (codes.astype(np.float64) ** 2).sum(axis=1) / DAC_FS**2
    ms, pk = float(mag2.mean()), float(mag2.max())
    if ms <= 0:
        return -math.inf, -math.inf, 0.0
    return 10 * math.log10(pk), 10 * math.log10(ms), 10 * math.log10(pk / ms)


class FakeRadio:
    """One transceiver on a TCP port (libiio's network protocol), the amplifier between TX and RX."""

    def __init__(
        self,
        pa: Device,
        *,
        device_class: str = "pluto",
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        **path: float | None,
    ) -> None:
        if device_class not in CLASSES:
            raise ValueError(f"unknown device class {device_class!r} (known: {', '.join(CLASSES)})")
        self.device_class = device_class
        self.path = RadioPath(pa, seed=seed, **path)  # type: ignore[arg-type]
        self.state = TransceiverState()
        self.devices: list[IioDevice] = build_context(device_class, self.state, self._changed)
        self.phy, self.dds, self.adc = self.devices
        self.tx_log: list[TxEvent] = [TxEvent(time.time(), "reset", self.state.tx_gain[0])]
        self.captures = 0
        self.rx_buffer_sizes: list[int] = []
        self._lock = threading.RLock()
        self._rx_lock = threading.Lock()  # one capture at a time (the RF model's random state)
        self._waveform: np.ndarray | None = None
        self._previous: np.ndarray | None = None
        self._tx_owner: int | None = None
        self._overflow_next = False
        self._stale_next = False
        self.server = IiodServer(self, host=host, port=port)

    # ------------------------------------------------------------ the bench file
    @property
    def uri(self) -> str:
        return self.server.uri

    def toml(
        self,
        *,
        timeout_s: float = 2.0,
        log: str | None = None,
        sample_rate: float = 30.72e6,
        tx_gain_db: float = -10.0,
        rx_gain_db: float = 30.0,
        guard: int = 256,
        periods: int = 4,
        rf_grace_s: float | None = None,
    ) -> str:
        """A bench file for this radio: ``[radio]``, ``[signal]``, ``[limits]`` (and ``[interlock]``:
        ``log``, ``rf_grace_s`` when given)."""
        lines = [
            "[radio]",
            f'uri = "{self.uri}"',
            f'device = "{self.device_class}"',
            f"sample_rate = {float(sample_rate)!r}",
            "lo_hz = 2400000000.0",
            f"rf_bandwidth_hz = {float(min(0.8 * sample_rate, 40e6))!r}",
            f"tx_gain_db = {tx_gain_db}",
            f"rx_gain_db = {rx_gain_db}",
            f"timeout_s = {timeout_s}",
            "",
            "[signal]",
            f"guard = {guard}",
            f"periods = {periods}",
            "",
            "[limits]",
            "peak_dbfs = 0.0",
            "rms_dbfs = -6.0",
            "papr_db = 20.0",
            "max_samples = 1000000",
            f"max_tx_gain_db = {tx_gain_db}",
        ]
        interlock = ([f'log = "{log}"'] if log else []) + (
            [f"rf_grace_s = {rf_grace_s}"] if rf_grace_s is not None else []
        )
        if interlock:
            lines += ["", "[interlock]", *interlock]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------ what the transmitter does
    def tx_is_on(self) -> bool:
        """A waveform plays (a cyclic buffer pushed, not destroyed) with the attenuation below its maximum."""
        with self._lock:
            return self._waveform is not None and self.state.tx_gain[0] > TX_GAIN_MIN

    def tx_off_since(self, t: float) -> float | None:
        """The first time at or after ``t`` (the fake's clock) when nothing was transmitted;
        None if the transmitter is still on."""
        playing = on = reached = False
        for ev in self.tx_log:
            if ev.t >= t and not reached:
                reached = True
                if not on:
                    return t
            if ev.kind == "buffer":
                playing = True
            elif ev.kind == "destroyed":
                playing = False
            on = playing and ev.gain_db > TX_GAIN_MIN
            if reached and not on:
                return ev.t
        return None if on else t

    def buffers(self) -> list[TxEvent]:
        """Every TX buffer that reached the radio, with its levels."""
        return [e for e in self.tx_log if e.kind == "buffer"]

    def _record(self, kind: str, wave: np.ndarray | None = None) -> None:
        gain = self.state.tx_gain[0]
        if wave is None:
            self.tx_log.append(TxEvent(time.time(), kind, gain))
        else:
            pk, rms, papr = levels(wave)
            self.tx_log.append(TxEvent(time.time(), kind, gain, pk, rms, papr, len(wave)))

    def _changed(self, what: str, value: str) -> None:
        if what.startswith("tx_gain"):
            self._record("gain")

    # ------------------------------------------------------------ faults
    def fault_at(self, command: str, fault: str, seconds: float = 2.0, nth: int = 1) -> list[float]:
        """A fault when the ``nth`` command starting with ``command`` from now arrives (``READBUF``,
        ``WRITE iio:device0 OUTPUT voltage0 hardwaregain``, ...): ``late`` (its reply ``seconds``
        late), ``drop`` (every connection cut, new ones refused for ``seconds``), ``drop_control``
        (the connections without a buffer cut), ``overflow`` (the next capture loses samples and
        flags the DMA overflow), ``stale`` (the next capture is of the waveform played before).
        Returns a list the fault's time (the fake's clock) is appended to when it fires."""
        when: list[float] = []

        def act(conn: Conn) -> None:
            when.append(time.time())
            if fault == "late":
                conn.late = seconds
            elif fault == "drop":
                self.server.refuse(seconds)
                self.server.drop_links("all")
            elif fault == "drop_control":
                self.server.drop_links("control")
            elif fault == "overflow":
                self._overflow_next = True
            elif fault == "stale":
                self._stale_next = True

        if fault not in ("late", "drop", "drop_control", "overflow", "stale"):
            raise ValueError(f"unknown fault {fault!r}")
        self.server.fault_on(command, act, nth)
        return when

    # ------------------------------------------------------------ the server's backend
    def xml(self) -> str:
        attrs = {
            "hw_model": CLASSES[self.device_class][1],
            "hw_serial": f"hwloop-fake-{self.path.seed}",
            "ad9361-phy,model": "ad9364" if self.device_class != "ad9361" else "ad9361",
            "pyadi-iio,class": PYADI_CLASS[self.device_class],
        }
        return context_xml(self.devices, attrs, "hwloop fake radio (libiio network protocol)")

    def attr_written(self, dev: IioDevice, what: str, value: str) -> None:
        log.debug("%s %s <- %s", dev.name, what, value)

    def open_buffer(self, conn: Conn, dev: IioDevice, samples: int, mask: int, cyclic: bool) -> int:
        if dev is self.phy:
            return -errno.ENODEV
        if sample_size(dev, mask) == 0:
            return -errno.EINVAL
        if dev is self.dds:
            if not cyclic:
                return -errno.ENOSYS  # the fake plays cyclic TX buffers only
            with self._lock:
                if self._tx_owner is not None:
                    return -errno.EBUSY
                self._tx_owner = conn.cid
            return 0
        self.rx_buffer_sizes.append(samples)
        return 0

    def close_buffer(self, conn: Conn, dev: IioDevice) -> int:
        if dev is self.dds:
            with self._lock:
                if self._tx_owner == conn.cid:
                    self._tx_owner = None
                    if self._waveform is not None:
                        self._previous, self._waveform = self._waveform, None
                        self._record("destroyed")
        return 0

    def write_buffer(self, conn: Conn, dev: IioDevice, data: bytes) -> int:
        if dev is not self.dds:
            return -errno.EBADF
        samples, mask, _ = conn.opened[dev.id]
        size = sample_size(dev, mask)
        if len(data) % size or len(data) > samples * size:
            return -errno.EINVAL
        raw = np.frombuffer(data, "<i2").reshape(-1, size // 2)
        # the first enabled I/Q pair drives RF channel 0 (the others are not modelled)
        wave = np.ascontiguousarray(raw[:, :2]).astype(np.int16)
        with self._lock:
            if self._waveform is not None:
                return -errno.EBUSY  # a cyclic buffer is pushed once
            self._waveform = wave
            self._record("buffer", wave)
            gain = self.state.tx_gain[0]
        # the RF world runs on while the host sets up its capture: the amplifier's response is ready sooner
        threading.Thread(target=self.path.period, args=(wave, gain), daemon=True, name="fake-rf").start()
        return len(data)

    def read_buffer(self, conn: Conn, dev: IioDevice, nbytes: int) -> bytes | int:
        if dev is not self.adc:
            return -errno.EBADF
        _, mask, _ = conn.opened[dev.id]
        size = sample_size(dev, mask)
        n = nbytes // size
        with self._lock:  # what plays now; the capture is computed outside, TX may change meanwhile
            wave = self._previous if self._stale_next else self._waveform
            overflow, self._overflow_next, self._stale_next = self._overflow_next, False, False
            st = self.state
            tx_gain, rx_gain, fs = st.tx_gain[0], st.rx_gain[0], st.sample_rate
            if overflow:
                regs = st.registers["adc"]
                regs[DMA_STATUS] = regs.get(DMA_STATUS, 0) | OVERFLOW_BIT
            self.captures += 1
        with self._rx_lock:
            codes, _ = self.path.capture(wave, n, tx_gain_db=tx_gain, rx_gain_db=rx_gain, fs=fs,
                                         overflow=overflow)  # fmt: skip
        out = np.zeros((n, size // 2), np.int16)
        out[:, :2] = codes
        return out.astype("<i2").tobytes()

    # ------------------------------------------------------------ life
    def close(self) -> None:
        self.server.close()

    def __enter__(self) -> FakeRadio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["IIOD_PORT", "FakeRadio", "TxEvent", "levels"]
