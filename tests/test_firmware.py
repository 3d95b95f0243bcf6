"""The ATmega328P firmware under simavr, through SerialDevice and raw frames.

Needs gcc-avr, avr-libc, simavr and libsimavr-dev; CI installs them, so a
missing tool FAILS these tests (with the apt line to fix it) instead of
skipping them.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator

import numpy as np
import pytest
import serial

from hwloop.drivers import protocol as p
from hwloop.drivers.errors import DeviceFault, ProtocolError
from hwloop.drivers.serial_device import SerialDevice, open_serial

SIGMA = 1e-3  # the Makefile's default NOISE_SIGMA


def rapp(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.sqrt(1.0 + x**4))


@pytest.fixture
def raw(board: str) -> Iterator[serial.SerialBase]:
    port = serial.serial_for_url(board, baudrate=115200, timeout=0.05)
    try:
        yield port
    finally:
        port.close()


def read_message(port: serial.SerialBase, *, skip_ready: bool = True, timeout: float = 10) -> p.Message:
    splitter = p.FrameSplitter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = port.read(1)
        if data:
            data += port.read(port.in_waiting)
        for block in splitter.feed(data):
            try:  # the tail of a READY cut by the port's input flush on open is garbage
                msg = p.decode_message(p.decode_frame(block))
            except ProtocolError:
                continue
            if skip_ready and isinstance(msg, p.Ready):
                continue
            return msg
    raise AssertionError("no answer from the firmware")


def ask(port: serial.SerialBase, frame: bytes) -> p.Message:
    port.write(frame)
    return read_message(port)


def frame(mtype: int, seq: int, body: bytes = b"", version: int = 1) -> bytes:
    return p.encode_frame(bytes([version, mtype]) + seq.to_bytes(2, "little") + body)


def q_body(*xs: float, n: int | None = None) -> bytes:
    return (len(xs) if n is None else n).to_bytes(2, "little") + np.array(xs, "<f4").tobytes()


def test_ready_after_boot(board: str) -> None:
    """READY is the first frame after boot (read with os.read: pyserial flushes on open)."""
    fd = os.open(board, os.O_RDWR | os.O_NOCTTY)
    try:
        got = b""
        deadline = time.monotonic() + 10
        while b"\x00" not in got and time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                got += os.read(fd, 64)
        assert got == p.encode_message(p.Ready())
    finally:
        os.close(fd)


def test_info_and_queries_through_serial_device(board: str) -> None:
    with open_serial(f"serial://{board}?timeout=1") as dev:
        assert isinstance(dev, SerialDevice)
        i = dev.info
        assert (i.name, i.in_dim, i.out_dim, i.max_batch, i.stateful) == ("rapp-avr", 1, 1, 16, False)
        assert i.low == (-1.0,) and i.high == (1.0,) and i.firmware == "1.0"
        assert dev.window == 2
        x = np.linspace(-1, 1, 400, dtype=np.float32)[:, None]
        y = dev.query(x)
        err = y - rapp(x)
        assert np.max(np.abs(err)) < 6.5 * SIGMA  # sum-of-12-uniforms noise is bounded at 6 sigma
        assert 0.7 * SIGMA < float(np.std(err)) < 1.3 * SIGMA
        assert abs(float(np.mean(err))) < 0.3 * SIGMA
        assert dev.link.resends == 0 and dev.link.bad_frames == 0
        dev.reset()
        assert dev.query(np.zeros((3, 1), np.float32)).shape == (3, 1)


def test_exactly_once_replay(raw: serial.SerialBase) -> None:
    q = frame(p.QUERY, 5, q_body(0.5, -0.25, 0.75))
    first = ask(raw, q)
    again = ask(raw, q)
    assert isinstance(first, p.QueryOk) and isinstance(again, p.QueryOk) and first.seq == 5
    np.testing.assert_array_equal(first.values, again.values)  # replayed, not re-measured
    fresh = ask(raw, frame(p.QUERY, 6, q_body(0.5, -0.25, 0.75)))
    assert isinstance(fresh, p.QueryOk)
    assert not np.array_equal(fresh.values, first.values)  # new noise: applied again
    np.testing.assert_allclose(fresh.values, rapp(np.array([0.5, -0.25, 0.75])), atol=6.5 * SIGMA)


@pytest.mark.parametrize(
    ("data", "seq", "code"),
    [
        (b"\x05junk\x00", 0xFFFF, 1),
        (frame(p.INFO, 3)[:-2] + b"\x01\x00", 0xFFFF, 1),  # CRC damaged
        (frame(p.INFO, 7, version=2), 7, 2),
        (frame(0x44, 8), 8, 3),
        (frame(p.INFO, 9, b"\x00"), 9, 4),
        (frame(p.QUERY, 10, q_body(0.1, n=2)), 10, 4),
        (frame(p.QUERY, 11, q_body(*([0.1] * 17))), 11, 5),  # longer than the receive buffer
        (frame(p.QUERY, 12, q_body(*([0.1] * 250))), 12, 5),
        (frame(p.QUERY, 13, q_body(0.1, 1.01)), 13, 6),
        (frame(p.QUERY, 14, q_body(float("nan"))), 14, 6),
    ],
)
def test_error_codes(raw: serial.SerialBase, data: bytes, seq: int, code: int) -> None:
    msg = ask(raw, data)
    assert isinstance(msg, p.Error), msg
    assert (msg.seq, msg.code) == (seq, code), msg


def test_over_long_frame_is_bad(raw: serial.SerialBase) -> None:
    payload = bytes([1, p.QUERY, 20, 0]) + q_body(*([0.1] * 260))  # 1048 bytes decoded
    block = payload + p.crc16_xmodem(payload).to_bytes(2, "little")
    msg = ask(raw, p.cobs_encode(block) + b"\x00")
    assert isinstance(msg, p.Error) and (msg.seq, msg.code) == (0xFFFF, 1)


def test_out_of_range_is_not_applied_and_reset(raw: serial.SerialBase) -> None:
    err = ask(raw, frame(p.QUERY, 30, q_body(0.2, -1.5)))
    assert isinstance(err, p.Error) and err.code == 6 and err.message == "x out of range"
    assert ask(raw, frame(p.RESET, 31)) == p.ResetOk(31)
    info = ask(raw, frame(p.INFO, 32))
    assert isinstance(info, p.InfoOk) and info.window == 2 and info.max_batch == 16


def test_device_fault_surfaces_through_driver(board: str) -> None:
    """The driver never sends out-of-range rows, so provoke an error the driver must type."""
    with open_serial(f"serial://{board}") as dev:
        dev.info = dev.info.__class__(**{**dev.info.to_dict(), "high": (2.0,)})  # lie about the range
        with pytest.raises(DeviceFault, match="error 6") as ei:
            dev.query(np.array([[1.5]], np.float32))
        assert ei.value.code == 6
