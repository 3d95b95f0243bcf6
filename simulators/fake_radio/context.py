"""The fake radio's IIO context: AD936x-like devices, channels and attributes, and their XML.

Three devices, as an ADALM-PLUTO or an AD9361/AD9364 evaluation board shows
them over libiio (the names pyadi-iio's ``adi.Pluto``, ``adi.ad9364`` and
``adi.ad9361`` look up):

- ``ad9361-phy`` (``iio:device0``), the transceiver's control: per RF channel
  an input and an output ``voltage<k>`` (``hardwaregain`` - RX gain in manual
  mode, TX attenuation as a gain <= 0 dB in 0.25 dB steps -,
  ``gain_control_mode``, ``rf_bandwidth``, ``sampling_frequency``,
  ``rf_port_select``, ``rssi``, the ``*_available`` lists), the two LOs
  ``altvoltage0`` (RX_LO) and ``altvoltage1`` (TX_LO) with ``frequency``, the
  input ``out`` channel's ``voltage_filter_fir_en``, and the device attributes
  pyadi-iio's ``sample_rate`` setter uses (``filter_fir_config``,
  ``tx_path_rates``, ``rx_path_rates``), ``ensm_mode`` and the debug
  ``loopback``;
- ``cf-ad9361-dds-core-lpc`` (``iio:device1``), the TX DMA: ``voltage0..`` I/Q
  scan elements ``le:S16/16>>0`` (the DAC takes the 12 most significant bits)
  and the DDS tone channels ``altvoltage<k>`` (``raw``, ``frequency``,
  ``scale``, ``phase``: stored, not synthesised);
- ``cf-ad9361-lpc`` (``iio:device2``), the RX DMA: ``voltage0..`` scan elements
  ``le:S12/16>>0`` (12-bit samples in 16 bits), and the debug attribute
  ``direct_reg_access`` through which the DMA status register 0x80000088 is
  read and cleared (bit 2: overflow), as libiio's ``iio_adi_xflow_check`` does.

Every attribute is an `Attr` with a getter and, if writable, a setter that
checks its value the way the driver would (a value out of range is -EINVAL)
and quantises it (TX attenuation to 0.25 dB, RX gain to 1 dB).
"""

from __future__ import annotations

import errno
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

DMA_STATUS = 0x80000088
OVERFLOW_BIT = 0x4
UNDERFLOW_BIT = 0x1
TX_GAIN_MIN = -89.75
CLASSES = {  # device class -> (RF channels, model string)
    "pluto": (1, "Analog Devices PlutoSDR Rev.C (Z7010-AD9364) - hwloop fake radio"),
    "ad9364": (1, "AD9364 evaluation board - hwloop fake radio"),
    "ad9361": (2, "AD9361 evaluation board - hwloop fake radio"),
}


class AttrError(Exception):
    """An attribute access the device refuses: the errno iiod answers with."""

    def __init__(self, code: int, text: str = "") -> None:
        super().__init__(text or errno.errorcode.get(code, str(code)))
        self.code = code


@dataclass
class Attr:
    name: str
    get: Callable[[], str]
    set: Callable[[str], None] | None = None
    filename: str = ""


@dataclass
class Channel:
    id: str
    output: bool
    name: str = ""
    scan: tuple[int, str] | None = None  # (index, libiio format)
    attrs: dict[str, Attr] = field(default_factory=dict)

    def xml(self) -> str:
        kind = "output" if self.output else "input"
        name = f" name={quoteattr(self.name)}" if self.name else ""
        out = [f"<channel id={quoteattr(self.id)}{name} type={quoteattr(kind)} >"]
        if self.scan is not None:
            out.append(
                f"<scan-element index={quoteattr(str(self.scan[0]))} format={quoteattr(self.scan[1])} />"
            )
        prefix = "out" if self.output else "in"
        for a in self.attrs.values():
            fn = a.filename or f"{prefix}_{self.id}_{a.name}"
            out.append(f"<attribute name={quoteattr(a.name)} filename={quoteattr(fn)} />")
        return "".join(out) + "</channel>"


@dataclass
class IioDevice:
    id: str
    name: str
    channels: list[Channel] = field(default_factory=list)
    attrs: dict[str, Attr] = field(default_factory=dict)
    debug: dict[str, Attr] = field(default_factory=dict)
    buffer_attrs: dict[str, Attr] = field(default_factory=dict)

    def channel(self, cid: str, output: bool) -> Channel | None:
        for c in self.channels:
            if c.output == output and (c.id == cid or (c.name and c.name == cid)):
                return c
        return None

    @property
    def scan_channels(self) -> list[Channel]:
        return [c for c in self.channels if c.scan is not None]

    def xml(self) -> str:
        out = [f"<device id={quoteattr(self.id)} name={quoteattr(self.name)} >"]
        out += [c.xml() for c in self.channels]
        out += [f"<attribute name={quoteattr(a)} />" for a in self.attrs]
        out += [f"<debug-attribute name={quoteattr(a)} />" for a in self.debug]
        out += [f"<buffer-attribute name={quoteattr(a)} />" for a in self.buffer_attrs]
        return "".join(out) + "</device>"


def _num(text: str) -> float:
    try:
        v = float(text.strip().split()[0])
    except (ValueError, IndexError):
        raise AttrError(errno.EINVAL, f"not a number: {text!r}") from None
    if not math.isfinite(v):
        raise AttrError(errno.EINVAL, "not finite")
    return v


def _field(obj: object, name: str) -> Callable[[object], None]:
    return lambda v: setattr(obj, name, v)


def _item(values: list, k: int) -> Callable[[object], None]:
    return lambda v: values.__setitem__(k, v)


def _ranged(lo: float, hi: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        v = _num(text)
        if not lo <= v <= hi:
            raise AttrError(errno.EINVAL, f"{v} outside [{lo}, {hi}]")
        return v

    return parse


@dataclass
class TransceiverState:
    """What the control attributes hold; the RF model reads it (gains, rate, LOs)."""

    channels: int = 1
    sample_rate: float = 30.72e6
    rx_lo: float = 2.4e9
    tx_lo: float = 2.4e9
    rx_bw: list[float] = field(default_factory=lambda: [18e6, 18e6])
    tx_bw: list[float] = field(default_factory=lambda: [18e6, 18e6])
    rx_gain: list[float] = field(default_factory=lambda: [71.0, 71.0])
    tx_gain: list[float] = field(default_factory=lambda: [-10.0, -10.0])
    gain_mode: list[str] = field(default_factory=lambda: ["slow_attack", "slow_attack"])
    fir_en: bool = False
    fir_config: str = ""
    ensm: str = "fdd"
    loopback: int = 0
    dds: dict[str, dict[str, str]] = field(default_factory=dict)
    registers: dict[str, dict[int, int]] = field(default_factory=dict)
    reg_addr: dict[str, int] = field(default_factory=dict)


GAIN_MODES = ("manual", "fast_attack", "slow_attack", "hybrid")
RATES = (520833, 61.44e6)  # below 2.08 MS/s with the FIR filter, as pyadi-iio sets it


def build_context(
    device_class: str, st: TransceiverState, on_change: Callable[[str, str], None]
) -> list[IioDevice]:
    """The three devices of an AD936x context, their attributes bound to ``st``.

    ``on_change(what, value)`` is called after every successful write (the radio
    logs TX gain changes with it)."""
    if device_class not in CLASSES:
        raise ValueError(f"unknown device class {device_class!r} (known: {', '.join(CLASSES)})")
    n_rf = CLASSES[device_class][0]
    st.channels = n_rf

    def setter(what: str, parse: Callable[[str], object], store: Callable[[object], None]):
        def write(text: str) -> None:
            store(parse(text))
            on_change(what, text.strip())

        return write

    phy = IioDevice("iio:device0", "ad9361-phy")
    for k in range(n_rf):
        rx = Channel(f"voltage{k}", False)
        tx = Channel(f"voltage{k}", True)

        def set_rx_gain(v: object, k: int = k) -> None:
            if st.gain_mode[k] != "manual":
                raise AttrError(errno.EPERM, "hardwaregain is read-only unless gain_control_mode is manual")
            st.rx_gain[k] = float(round(float(v)))  # type: ignore[arg-type]

        def set_mode(v: object, k: int = k) -> None:
            if v not in GAIN_MODES:
                raise AttrError(errno.EINVAL, f"unknown gain_control_mode {v!r}")
            st.gain_mode[k] = str(v)

        def set_tx_gain(v: object, k: int = k) -> None:
            st.tx_gain[k] = round(float(v) * 4) / 4  # type: ignore[arg-type]

        rx.attrs = _attrs(
            Attr("hardwaregain", lambda k=k: f"{st.rx_gain[k]:.6f} dB",
                 setter(f"rx_gain{k}", _ranged(-3, 71), set_rx_gain)),
            Attr("hardwaregain_available", lambda: "[-3 1 71]"),
            Attr("gain_control_mode", lambda k=k: st.gain_mode[k],
                 setter(f"gain_mode{k}", lambda t: t.strip(), set_mode)),
            Attr("gain_control_mode_available", lambda: " ".join(GAIN_MODES)),
            Attr("rf_bandwidth", lambda k=k: str(int(st.rx_bw[k])),
                 setter("rx_bw", _ranged(200e3, 56e6), _item(st.rx_bw, k))),
            Attr("rf_bandwidth_available", lambda: "[200000 1 56000000]"),
            Attr("sampling_frequency", lambda: str(int(st.sample_rate)),
                 setter("sample_rate", _ranged(*RATES), _field(st, "sample_rate"))),
            Attr("sampling_frequency_available", lambda: "[520833 1 61440000]"),
            Attr("rf_port_select", lambda: "A_BALANCED", lambda t: None),
            Attr("rf_port_select_available", lambda: "A_BALANCED B_BALANCED C_BALANCED"),
            Attr("rssi", lambda: "100.00 dB"),
            Attr("filter_fir_en", lambda: str(int(st.fir_en))),
            Attr("quadrature_tracking_en", lambda: "1", lambda t: None),
            Attr("rf_dc_offset_tracking_en", lambda: "1", lambda t: None),
            Attr("bb_dc_offset_tracking_en", lambda: "1", lambda t: None),
        )  # fmt: skip
        tx.attrs = _attrs(
            Attr("hardwaregain", lambda k=k: f"{st.tx_gain[k]:.6f} dB",
                 setter(f"tx_gain{k}", _ranged(TX_GAIN_MIN, 0.0), set_tx_gain)),
            Attr("hardwaregain_available", lambda: "[-89.750000 0.250000 0.000000]"),
            Attr("rf_bandwidth", lambda k=k: str(int(st.tx_bw[k])),
                 setter("tx_bw", _ranged(200e3, 40e6), _item(st.tx_bw, k))),
            Attr("rf_bandwidth_available", lambda: "[200000 1 40000000]"),
            Attr("sampling_frequency", lambda: str(int(st.sample_rate)),
                 setter("sample_rate", _ranged(*RATES), _field(st, "sample_rate"))),
            Attr("sampling_frequency_available", lambda: "[520833 1 61440000]"),
            Attr("rf_port_select", lambda: "A", lambda t: None),
            Attr("rf_port_select_available", lambda: "A B"),
            Attr("rssi", lambda: "0.00 dB"),
            Attr("filter_fir_en", lambda: str(int(st.fir_en))),
        )  # fmt: skip
        phy.channels += [rx, tx]
    for k, (name, attr) in enumerate((("RX_LO", "rx_lo"), ("TX_LO", "tx_lo"))):
        lo = Channel(f"altvoltage{k}", True, name=name)
        lo.attrs = _attrs(
            Attr("frequency", lambda a=attr: str(int(getattr(st, a))),
                 setter(attr, _ranged(70e6, 6e9), _field(st, attr))),
            Attr("frequency_available", lambda: "[70000000 1 6000000000]"),
            Attr("external", lambda: "0", lambda t: None),
            Attr("powerdown", lambda: "0", lambda t: None),
        )  # fmt: skip
        phy.channels.append(lo)
    fir = Channel("out", False)
    fir.attrs = _attrs(
        Attr("voltage_filter_fir_en", lambda: str(int(st.fir_en)),
             setter("fir_en", lambda t: int(_num(t)) != 0, _field(st, "fir_en")),
             filename="in_out_voltage_filter_fir_en"),
    )  # fmt: skip
    temp = Channel("temp0", False)
    temp.attrs = _attrs(Attr("input", lambda: "35000"))
    phy.channels += [fir, temp]

    def rates(kind: str) -> str:
        fs = int(st.sample_rate)
        if kind == "tx":
            return f"BBPLL:{fs * 32} DAC:{fs * 4} T2:{fs * 2} T1:{fs} TF:{fs} TXSAMP:{fs}"
        return f"BBPLL:{fs * 32} ADC:{fs * 4} R2:{fs * 2} R1:{fs} RF:{fs} RXSAMP:{fs}"

    phy.attrs = _attrs(
        Attr("calib_mode", lambda: "auto", lambda t: None),
        Attr("calib_mode_available", lambda: "auto manual manual_tx_quad tx_quad rf_dc_offs rssi_gain_step"),
        Attr("ensm_mode", lambda: st.ensm, setter("ensm", lambda t: t.strip(), _field(st, "ensm"))),
        Attr("ensm_mode_available", lambda: "sleep wait alert fdd pinctrl pinctrl_fdd_indep"),
        Attr("filter_fir_config", lambda: "FIR Rx: 0,0 Tx: 0,0",
             setter("fir_config", lambda t: t, _field(st, "fir_config"))),
        Attr("rx_path_rates", lambda: rates("rx")),
        Attr("tx_path_rates", lambda: rates("tx")),
        Attr("trx_rate_governor", lambda: "nominal", lambda t: None),
        Attr("xo_correction", lambda: "40000000", lambda t: None),
    )  # fmt: skip
    phy.debug = _attrs(
        Attr("loopback", lambda: str(st.loopback),
             setter("loopback", lambda t: int(_ranged(0, 2)(t)), _field(st, "loopback"))),
        Attr("direct_reg_access", *_register(st, "phy")),
    )  # fmt: skip

    dds = IioDevice("iio:device1", "cf-ad9361-dds-core-lpc")
    for k in range(2 * n_rf):
        ch = Channel(f"voltage{k}", True, scan=(k, "le:S16/16>>0"))
        ch.attrs = _attrs(
            Attr("calibphase", lambda: "0.000000", lambda t: None),
            Attr("calibscale", lambda: "1.000000", lambda t: None),
            Attr("sampling_frequency", lambda: str(int(st.sample_rate))),
            Attr("sampling_frequency_available", lambda: f"{int(st.sample_rate)} {int(st.sample_rate) // 8}"),
        )
        dds.channels.append(ch)
    for k in range(4 * n_rf):
        tone = f"TX{k // 4 + 1}_{'IQ'[(k // 2) % 2]}_F{k % 2 + 1}"
        cfg = st.dds.setdefault(f"altvoltage{k}", {"raw": "0", "frequency": "9279985", "scale": "0.000000",
                                                    "phase": "90000"})  # fmt: skip
        ch = Channel(f"altvoltage{k}", True, name=tone)
        ch.attrs = _attrs(
            *(Attr(a, lambda a=a, c=cfg: c[a], lambda t, a=a, c=cfg: c.__setitem__(a, t.strip()))
              for a in ("raw", "frequency", "scale", "phase")),
            Attr("sampling_frequency", lambda: str(int(st.sample_rate))),
        )  # fmt: skip
        dds.channels.append(ch)
    dds.debug = _attrs(Attr("direct_reg_access", *_register(st, "dds")))

    adc = IioDevice("iio:device2", "cf-ad9361-lpc")
    for k in range(2 * n_rf):
        ch = Channel(f"voltage{k}", False, scan=(k, "le:S12/16>>0"))
        ch.attrs = _attrs(
            Attr("calibbias", lambda: "0", lambda t: None),
            Attr("calibphase", lambda: "0.000000", lambda t: None),
            Attr("calibscale", lambda: "1.000000", lambda t: None),
            Attr("samples_pps", lambda: "0"),
            Attr("sampling_frequency", lambda: str(int(st.sample_rate))),
            Attr("sampling_frequency_available", lambda: f"{int(st.sample_rate)} {int(st.sample_rate) // 8}"),
        )
        adc.channels.append(ch)
    adc.debug = _attrs(Attr("direct_reg_access", *_register(st, "adc")))
    return [phy, dds, adc]


def _attrs(*attrs: Attr) -> dict[str, Attr]:
    return {a.name: a for a in attrs}


def _register(st: TransceiverState, dev: str) -> tuple[Callable[[], str], Callable[[str], None]]:
    """``direct_reg_access``: write ``ADDR`` to select, ``ADDR VALUE`` to write (1s clear the DMA
    status bits, as the HDL does), read the selected register as ``0x%X``."""
    regs = st.registers.setdefault(dev, {DMA_STATUS: 0})

    def read() -> str:
        return f"0x{regs.get(st.reg_addr.get(dev, 0), 0):X}"

    def write(text: str) -> None:
        parts = text.split()
        try:
            vals = [int(p, 0) for p in parts]
        except ValueError:
            raise AttrError(errno.EINVAL, f"bad register access {text!r}") from None
        if not 1 <= len(vals) <= 2:
            raise AttrError(errno.EINVAL, f"bad register access {text!r}")
        st.reg_addr[dev] = vals[0]
        if len(vals) == 2:
            if vals[0] == DMA_STATUS:
                regs[DMA_STATUS] = regs.get(DMA_STATUS, 0) & ~vals[1]
            else:
                regs[vals[0]] = vals[1]

    return read, write


def context_xml(devices: list[IioDevice], attrs: dict[str, str], description: str) -> str:
    """The context as libiio 0.x's ``PRINT`` sends it."""
    head = (
        '<?xml version="1.0" encoding="utf-8"?>'
        "<!DOCTYPE context [<!ELEMENT context (device | context-attribute)*>"
        "<!ELEMENT context-attribute EMPTY><!ELEMENT device (channel | attribute | debug-attribute | "
        "buffer-attribute)*><!ELEMENT channel (scan-element?, attribute*)><!ELEMENT attribute EMPTY>"
        "<!ELEMENT scan-element EMPTY><!ELEMENT debug-attribute EMPTY><!ELEMENT buffer-attribute EMPTY>"
        "<!ATTLIST context name CDATA #REQUIRED description CDATA #IMPLIED>"
        "<!ATTLIST context-attribute name CDATA #REQUIRED value CDATA #REQUIRED>"
        "<!ATTLIST device id CDATA #REQUIRED name CDATA #IMPLIED>"
        "<!ATTLIST channel id CDATA #REQUIRED type (input|output) #REQUIRED name CDATA #IMPLIED>"
        "<!ATTLIST scan-element index CDATA #REQUIRED format CDATA #REQUIRED scale CDATA #IMPLIED>"
        "<!ATTLIST attribute name CDATA #REQUIRED filename CDATA #IMPLIED>"
        "<!ATTLIST debug-attribute name CDATA #REQUIRED><!ATTLIST buffer-attribute name CDATA #REQUIRED>]>"
    )
    body = [f'<context name="local" description={quoteattr(description)} >']
    body += [f"<context-attribute name={quoteattr(k)} value={quoteattr(v)} />" for k, v in attrs.items()]
    body += [d.xml() for d in devices]
    return head + "".join(body) + "</context>"
