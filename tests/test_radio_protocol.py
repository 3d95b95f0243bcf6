"""The fake radio speaks libiio's network protocol: libiio's own client and pyadi-iio run against it.

The client side is the real stack: pylibiio's ``iio`` over the system's
libiio 0.x (Debian's libiio0) and pyadi-iio's ``adi.Pluto`` / ``adi.ad9364`` /
``adi.ad9361``. Byte-level framing is checked on a raw socket, as libiio's
``iiod-client.c`` and ``network.c`` read it.
"""

from __future__ import annotations

import socket
import time

import adi
import iio
import numpy as np
import pytest

from hwloop.simulators.catalog import open_sim
from hwloop.simulators.fake_radio.context import DMA_STATUS
from hwloop.simulators.fake_radio.radio import FakeRadio


@pytest.fixture
def fake():
    with FakeRadio(open_sim("sim:pa_wh?seed=3"), seed=0) as fr:
        yield fr


def _raw(fr: FakeRadio) -> socket.socket:
    return socket.create_connection((fr.server.host, fr.server.port), timeout=5)


def _line(s: socket.socket) -> bytes:
    out = b""
    while not out.endswith(b"\n"):
        out += s.recv(1)
    return out


def _exact(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        out += s.recv(n - len(out))
    return out


def test_libiios_own_client_reads_the_context(fake: FakeRadio) -> None:
    ctx = iio.Context(fake.uri)
    assert ctx.name == "network" and ctx.version[:2] == (0, 24)
    names = {d.name: d for d in ctx.devices}
    assert set(names) == {"ad9361-phy", "cf-ad9361-dds-core-lpc", "cf-ad9361-lpc"}
    rx = names["cf-ad9361-lpc"]
    scan = [c for c in rx.channels if c.scan_element]
    assert [c.id for c in scan] == ["voltage0", "voltage1"]
    fmt = scan[0].data_format
    assert (fmt.length, fmt.bits, fmt.is_signed) == (16, 12, True)  # le:S12/16>>0
    tx_fmt = names["cf-ad9361-dds-core-lpc"].find_channel("voltage0", True).data_format
    assert (tx_fmt.length, tx_fmt.bits) == (16, 16)
    phy = names["ad9361-phy"]
    assert phy.find_channel("voltage0", True).attrs["hardwaregain"].value == "-10.000000 dB"
    assert "direct_reg_access" in rx.debug_attrs and "loopback" in phy.debug_attrs


@pytest.mark.parametrize(("cls", "rf"), [("Pluto", 1), ("ad9364", 1), ("ad9361", 2)])
def test_pyadi_iio_classes_configure_the_fake(cls: str, rf: int) -> None:
    device_class = {"Pluto": "pluto"}.get(cls, cls)
    with FakeRadio(open_sim("sim:pa_wh?seed=3"), device_class=device_class, seed=1) as fr:
        sdr = getattr(adi, cls)(uri=fr.uri)
        sdr.sample_rate = 20_000_000
        sdr.rx_lo = 915_000_000
        sdr.tx_lo = 915_000_000
        sdr.rx_rf_bandwidth = 10_000_000
        sdr.gain_control_mode_chan0 = "manual"
        sdr.rx_hardwaregain_chan0 = 25
        sdr.tx_hardwaregain_chan0 = -20.3  # the chip's steps are 0.25 dB
        assert sdr.sample_rate == 20_000_000 and sdr.rx_lo == 915_000_000
        assert sdr.rx_hardwaregain_chan0 == 25 and sdr.tx_hardwaregain_chan0 == -20.25
        assert fr.state.rx_lo == 915e6 and fr.state.rx_gain[0] == 25 and fr.state.fir_en  # FIR set by pyadi
        assert len(sdr._rx_channel_names) == 2 * rf
        sdr.close()


def test_an_out_of_range_or_read_only_write_is_refused_with_its_errno(fake: FakeRadio) -> None:
    ctx = iio.Context(fake.uri)
    phy = ctx.find_device("ad9361-phy")
    gain = phy.find_channel("voltage0", True).attrs["hardwaregain"]
    with pytest.raises(OSError) as err:
        gain.value = "3.0"  # an attenuation is <= 0 dB
    assert err.value.errno == 22
    rx_gain = phy.find_channel("voltage0", False).attrs["hardwaregain"]
    with pytest.raises(OSError) as err:
        rx_gain.value = "20"  # gain_control_mode is slow_attack: not writable
    assert err.value.errno == 1
    assert fake.state.tx_gain[0] == -10.0 and fake.state.rx_gain[0] == 71.0


def test_framing_byte_for_byte_on_a_raw_socket(fake: FakeRadio) -> None:
    with _raw(fake) as s:
        s.sendall(b"VERSION\r\n")
        assert _line(s) == b"0.24.hwloop0\n"
        s.sendall(b"ZPRINT\r\n")
        assert _line(s) == b"-22\n"  # no compressed context: libiio falls back to PRINT
        s.sendall(b"PRINT\r\n")
        n = int(_line(s))
        xml = _exact(s, n + 1)
        assert xml.startswith(b"<?xml") and xml.endswith(b"</context>\n")
        s.sendall(b"READ iio:device0 OUTPUT altvoltage1 frequency\r\n")
        assert _line(s) == b"10\n" and _exact(s, 11) == b"2400000000\n"
        s.sendall(b"WRITE iio:device0 OUTPUT voltage0 hardwaregain 5\r\n-20.5")
        assert _line(s) == b"5\n"
        s.sendall(b"READ iio:device0 OUTPUT voltage0 nosuch\r\n")
        assert _line(s) == b"-2\n"
        s.sendall(b"READBUF iio:device2 64\r\n")
        assert _line(s) == b"-9\n"  # EBADF: no buffer opened on this connection
        s.sendall(b"GETTRIG iio:device2\r\nTIMEOUT 2500\r\nHELLO\r\n")
        assert [_line(s) for _ in range(3)] == [b"0\n", b"0\n", b"-22\n"]
    assert fake.state.tx_gain[0] == -20.5


def test_buffers_open_write_read_close_as_iiod_frames_them(fake: FakeRadio) -> None:
    fake.state.gain_mode[0] = "manual"
    with _raw(fake) as tx, _raw(fake) as rx:
        tx.sendall(b"OPEN iio:device1 64 00000003\r\n")  # not cyclic: the fake plays cyclic buffers only
        assert _line(tx) == b"-38\n"
        tx.sendall(b"OPEN iio:device1 64 00000003 CYCLIC\r\n")
        assert _line(tx) == b"0\n"
        wave = (np.arange(128, dtype="<i2").reshape(64, 2) * 16).tobytes()
        tx.sendall(b"WRITEBUF iio:device1 256\r\n")
        assert _line(tx) == b"0\n"
        tx.sendall(wave)
        assert _line(tx) == b"256\n"
        assert fake.buffers()[-1].samples == 64 and fake.tx_is_on()
        rx.sendall(b"OPEN iio:device2 32 00000003\r\n")
        assert _line(rx) == b"0\n"
        rx.sendall(b"READBUF iio:device2 128\r\n")
        assert _line(rx) == b"128\n" and _line(rx) == b"00000003\n"
        data = np.frombuffer(_exact(rx, 128), "<i2")
        assert data.shape == (64,) and np.abs(data).max() <= 2048
        rx.sendall(b"CLOSE iio:device2\r\n")
        assert _line(rx) == b"0\n"
    deadline = time.monotonic() + 5
    while fake.tx_is_on() and time.monotonic() < deadline:  # the TX connection closed: its buffer goes
        time.sleep(0.01)
    assert not fake.tx_is_on() and fake.tx_log[-1].kind == "destroyed"


def test_pyadi_iio_plays_a_cyclic_buffer_and_captures_it(fake: FakeRadio) -> None:
    sdr = adi.Pluto(uri=fake.uri)
    sdr.tx_cyclic_buffer = True
    n = 1024
    tone = 0.5 * 2047 * 16 * np.exp(2j * np.pi * 32 * np.arange(n) / n)
    sdr.tx(tone)
    sdr.rx_buffer_size = 4 * n
    y = sdr.rx()
    assert y.shape == (4 * n,) and np.iscomplexobj(y)
    spectrum = np.abs(np.fft.fft(y))
    assert np.argmax(spectrum[1:]) + 1 in range(4 * 32 - 2, 4 * 32 + 3)  # the tone, near its bin (CFO)
    ev = fake.buffers()[-1]
    assert ev.samples == n and ev.peak_dbfs == pytest.approx(-6.02, abs=0.01)
    sdr.tx_destroy_buffer()
    assert not fake.tx_is_on()
    sdr.close()


def test_the_rx_dma_status_register_reports_an_injected_overflow(fake: FakeRadio) -> None:
    sdr = adi.Pluto(uri=fake.uri)
    adc = sdr._rxadc
    adc.reg_write(DMA_STATUS, 0x6)
    sdr.rx_buffer_size = 256
    sdr.rx()
    assert adc.reg_read(DMA_STATUS) & 0x4 == 0
    fired = fake.fault_at("READBUF", "overflow")
    sdr.rx()
    assert fired and adc.reg_read(DMA_STATUS) & 0x4
    adc.reg_write(DMA_STATUS, 0x4)  # write 1 to clear
    assert adc.reg_read(DMA_STATUS) & 0x4 == 0
    sdr.close()


def test_a_late_reply_and_a_dropped_link_reach_the_client(fake: FakeRadio) -> None:
    ctx = iio.Context(fake.uri)
    ctx.set_timeout(300)
    gain = ctx.find_device("ad9361-phy").find_channel("voltage0", True).attrs["hardwaregain"]
    fake.fault_at("READ iio:device0 OUTPUT voltage0 hardwaregain", "late", 1.0)
    t0 = time.monotonic()
    with pytest.raises(OSError):
        _ = gain.value
    assert 0.25 < time.monotonic() - t0 < 0.9  # libiio gave up at its timeout, not when the reply came
    ctx2 = iio.Context(fake.uri)
    gain2 = ctx2.find_device("ad9361-phy").find_channel("voltage0", True).attrs["hardwaregain"]
    fake.fault_at("READ", "drop", 0.2)
    t0 = time.monotonic()
    with pytest.raises(OSError):
        _ = gain2.value
    assert time.monotonic() - t0 < 0.2  # a closed connection is an error at once
