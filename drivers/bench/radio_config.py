"""The ``[radio]`` bench file: a transceiver (Pluto, AD9361, AD9364) through pyadi-iio, not two instruments.

```toml
[radio]
uri = "ip:192.168.2.1"       # any libiio URI: ip:HOST[:PORT], usb:..., local:
device = "pluto"             # pluto | ad9364 | ad9361 (pyadi-iio's adi.Pluto, adi.ad9364, adi.ad9361)
sample_rate = 30720000.0     # Hz, RX = TX
lo_hz = 2400000000.0         # RX and TX LO (or tx_lo_hz and rx_lo_hz apart)
rf_bandwidth_hz = 20000000.0 # RX and TX analogue filters
tx_gain_db = -10.0           # TX hardwaregain: an attenuation, <= 0 dB
rx_gain_db = 30.0            # RX hardwaregain, manual gain control
[limits]
peak_dbfs = 0.0              # no sample above it reaches the DAC (dB re digital full scale)
rms_dbfs = -9.0
papr_db = 20.0
max_samples = 1000000
max_tx_gain_db = -10.0       # the largest TX gain (least attenuation) ever written
```

Driver keys with defaults: ``[radio]`` ``timeout_s`` (2: libiio's I/O timeout),
``flush`` (1: RX buffers read and discarded after TX starts, before the
capture); ``[signal]`` ``guard`` (256), ``periods`` (4, at least 2: the
carrier offset is measured between periods), ``calibration_db`` (-20),
``calibration_samples`` (4096); ``[interlock]`` as for the instrument bench.
Device input units: |x| = 1 is the DAC's full scale (12-bit code 2047), at
``tx_gain_db``. Only RF channel 0 is used (``ad9361``'s second channel is left
alone). Every mistake is one line naming the file, the table and the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwloop.device import UsageError
from hwloop.drivers.bench.config import Interlock, _Table, interlock_table

DEVICES = ("pluto", "ad9364", "ad9361")
TX_GAIN_MIN = -89.75
SCHEMES = ("ip:", "usb:", "local:", "serial:")


@dataclass(frozen=True)
class Radio:
    uri: str
    device: str
    sample_rate: float
    rx_lo_hz: float
    tx_lo_hz: float
    rf_bandwidth_hz: float
    tx_gain_db: float
    rx_gain_db: float
    timeout_s: float = 2.0
    flush: int = 1


@dataclass(frozen=True)
class RadioSignal:
    guard: int = 256
    periods: int = 4
    calibration_db: float = -20.0
    calibration_samples: int = 4096


@dataclass(frozen=True)
class RadioLimits:
    peak_dbfs: float
    rms_dbfs: float
    papr_db: float
    max_samples: int
    max_tx_gain_db: float


@dataclass(frozen=True)
class RadioConfig:
    path: Path
    radio: Radio
    signal: RadioSignal
    limits: RadioLimits
    interlock: Interlock

    @property
    def peak(self) -> float:
        """Peak |x| allowed, in units of the DAC's full scale."""
        return 10 ** (self.limits.peak_dbfs / 20)

    @property
    def rms(self) -> float:
        return 10 ** (self.limits.rms_dbfs / 20)


def radio_config(p: Path, doc: dict[str, Any]) -> RadioConfig:
    """Check a ``[radio]`` bench file's document."""
    where = str(p)
    known = {"radio", "signal", "limits", "interlock"}
    if extra := sorted(set(doc) - known):
        raise UsageError(
            f"{where}: unknown table [{extra[0]}] in a radio bench file (known: {', '.join(sorted(known))})"
        )
    r = _Table(where, "radio", doc["radio"])
    lo = r.get("lo_hz", float, None, lambda v: 70e6 <= v <= 6e9, need="in [70e6, 6e9] Hz")
    lo_need = "in [70e6, 6e9] Hz"
    radio = Radio(
        uri=r.get("uri", str, check=lambda s: s.startswith(SCHEMES), need="a libiio URI (ip:HOST, usb:...)"),
        device=r.get("device", str, check=lambda s: s in DEVICES, need=" | ".join(DEVICES)),
        sample_rate=r.get("sample_rate", float, check=lambda v: 521e3 <= v <= 61.44e6,
                          need="in [521e3, 61.44e6]"),
        rx_lo_hz=r.get("rx_lo_hz", float, lo, lambda v: 70e6 <= v <= 6e9, need=lo_need),
        tx_lo_hz=r.get("tx_lo_hz", float, lo, lambda v: 70e6 <= v <= 6e9, need=lo_need),
        rf_bandwidth_hz=r.get("rf_bandwidth_hz", float, check=lambda v: 200e3 <= v <= 56e6,
                              need="in [200e3, 56e6]"),
        tx_gain_db=r.get("tx_gain_db", float, check=lambda v: TX_GAIN_MIN <= v <= 0, need="in [-89.75, 0]"),
        rx_gain_db=r.get("rx_gain_db", float, check=lambda v: -3 <= v <= 73, need="in [-3, 73]"),
        timeout_s=r.get("timeout_s", float, 2.0, lambda v: 0 < v <= 600, need="in (0, 600]"),
        flush=r.get("flush", int, 1, lambda v: 0 <= v <= 16, need="in [0, 16]"),
    )  # fmt: skip
    if radio.rx_lo_hz is None or radio.tx_lo_hz is None:
        raise UsageError(f"{where}: [radio] lo_hz is missing (or give rx_lo_hz and tx_lo_hz)")
    r.done()
    s = _Table(where, "signal", doc.get("signal", {}))
    signal = RadioSignal(
        guard=s.get("guard", int, 256, lambda v: 0 <= v <= 1 << 20, need="in [0, 2^20]"),
        periods=s.get("periods", int, 4, lambda v: 2 <= v <= 64, need="in [2, 64]"),
        calibration_db=s.get("calibration_db", float, -20.0, lambda v: -60 <= v < 0, need="in [-60, 0)"),
        calibration_samples=s.get("calibration_samples", int, 4096, lambda v: v >= 256, need=">= 256"),
    )
    s.done()
    t = _Table(where, "limits", doc.get("limits"))
    limits = RadioLimits(
        peak_dbfs=t.get("peak_dbfs", float, check=lambda v: -60 <= v <= 0, need="in [-60, 0] dBFS"),
        rms_dbfs=t.get("rms_dbfs", float, check=lambda v: -80 <= v <= 0, need="in [-80, 0] dBFS"),
        papr_db=t.get("papr_db", float, check=lambda v: 0 < v <= 60, need="in (0, 60]"),
        max_samples=t.get("max_samples", int, check=lambda v: 16 <= v <= 1 << 24, need="in [16, 2^24]"),
        max_tx_gain_db=t.get("max_tx_gain_db", float, check=lambda v: TX_GAIN_MIN <= v <= 0,
                             need="in [-89.75, 0]"),
    )  # fmt: skip
    t.done()
    if limits.rms_dbfs > limits.peak_dbfs:
        raise UsageError(
            f"{where}: [limits] rms_dbfs {limits.rms_dbfs} is above peak_dbfs {limits.peak_dbfs}"
        )
    if radio.tx_gain_db > limits.max_tx_gain_db:
        raise UsageError(
            f"{where}: [radio] tx_gain_db {radio.tx_gain_db} is above [limits] max_tx_gain_db "
            f"{limits.max_tx_gain_db}: nothing would be sent"
        )
    if limits.max_samples < signal.guard + 16:
        raise UsageError(f"{where}: [limits] max_samples leaves no room after the guard of {signal.guard}")
    if signal.calibration_db > limits.rms_dbfs:
        raise UsageError(f"{where}: [signal] calibration_db puts the calibration above rms_dbfs")
    if not math.isfinite(radio.sample_rate):  # pragma: no cover - _Table refuses it already
        raise UsageError(f"{where}: [radio] sample_rate must be finite")
    return RadioConfig(p.resolve(), radio, signal, limits, interlock_table(p, doc))
