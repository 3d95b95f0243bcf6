"""SerialDevice against drivers/serve.py over a real pty, TCP and loop://."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import serial

from hwloop import BaseDevice, DeviceInfo, open_device
from hwloop.drivers import protocol as p
from hwloop.drivers.errors import DeviceFault
from hwloop.drivers.serial_device import SerialDevice, open_serial, split_uri
from hwloop.drivers.serve import FaultConfig, serve_in_thread
from hwloop.errors import (
    BadDeviceParameterError,
    DeviceDisconnected,
    DeviceRebooted,
    DeviceTimeout,
    OutOfRangeError,
)


class TanhDevice(BaseDevice):
    """y = tanh(x) + noise; records every (x, y) it really answered."""

    def __init__(self, max_batch: int = 16, noise: float = 1e-3) -> None:
        super().__init__(DeviceInfo("tanh", 1, 1, max_batch, (-1.0,), (1.0,), firmware="test"))
        self.rng = np.random.default_rng(1)
        self.noise = noise
        self.lock = threading.Lock()
        self.answered: dict[float, list[float]] = {}
        self.applied = 0

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        y = (np.tanh(x) + self.noise * self.rng.standard_normal(x.shape)).astype(np.float32)
        with self.lock:
            for xi, yi in zip(x[:, 0].tolist(), y[:, 0].tolist(), strict=False):
                self.answered.setdefault(xi, []).append(yi)
            self.applied += len(x)
        return y


class MemoryDevice(BaseDevice):
    """Stateful: y[t] = x[t] + 0.5 x[t-1]; every input applied twice would show."""

    def __init__(self) -> None:
        super().__init__(DeviceInfo("mem", 1, 1, 8, (-1.0,), (1.0,), stateful=True))
        self.prev = 0.0

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        for i, v in enumerate(x[:, 0]):
            out[i, 0] = v + np.float32(0.5) * np.float32(self.prev)
            self.prev = float(v)
        return out

    def _reset(self) -> None:
        self.prev = 0.0


class FaultyDevice(TanhDevice):
    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        raise RuntimeError("sensor stuck")


def memory_reference(x: np.ndarray) -> np.ndarray:
    return MemoryDevice()._query_batch(x.astype(np.float32))


def assert_all_attributed(dev: TanhDevice, x: np.ndarray, y: np.ndarray) -> None:
    """Every returned (x, y) is a pair the served device really produced."""
    bad = [
        (xi, yi)
        for xi, yi in zip(x[:, 0].tolist(), y[:, 0].tolist(), strict=False)
        if yi not in dev.answered.get(xi, [])
    ]
    assert bad == [], f"{len(bad)} misattributed answers, e.g. {bad[:3]}"


def unique_inputs(n: int, seed: int = 0) -> np.ndarray:
    grid = np.linspace(-1, 1, n, dtype=np.float32)
    x = np.random.default_rng(seed).permutation(grid)[:, None]
    assert len(np.unique(x)) == n
    return x


@pytest.fixture(params=["pty", "tcp"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


def server_kwargs(transport: str) -> dict:
    return {"pty": True} if transport == "pty" else {"listen": "tcp://127.0.0.1:0"}


# ------------------------------------------------------------------ basics


def test_query_over_pty_and_tcp(transport: str) -> None:
    dev = TanhDevice()
    with serve_in_thread(dev, **server_kwargs(transport)) as srv, open_serial(srv.url) as d:
        assert d.info.name == "tanh" and d.info.max_batch == 16 and d.window == 4
        assert d.info.low == (-1.0,) and d.info.high == (1.0,) and d.info.firmware == "test"
        x = unique_inputs(1000)
        y = d.query(x)
        assert y.shape == (1000, 1) and y.dtype == np.float32
        assert_all_attributed(dev, x, y)
        assert np.max(np.abs(y - np.tanh(x))) < 0.01
        assert d.stats.queries == 1000 and d.stats.calls == 63
        assert d.link.resends == 0 and d.link.bad_frames == 0
        assert dev.applied == 1000


def test_open_device_through_entry_points() -> None:
    with serve_in_thread(TanhDevice(), listen="tcp://127.0.0.1:0") as srv:
        dev = open_device(srv.url + "?timeout=2&logging=debug")  # logging= is pyserial's
        try:
            assert isinstance(dev, SerialDevice)
            assert dev.timeout == 2.0
            assert dev.query(np.zeros((3, 1), np.float32)).shape == (3, 1)
        finally:
            dev.close()


def test_split_uri() -> None:
    assert split_uri("serial:///dev/ttyUSB0?baud=9600&timeout=0.5") == (
        "/dev/ttyUSB0",
        {
            **{
                k: v.default
                for k, v in __import__("hwloop.drivers.serial_device", fromlist=["PARAMS"]).PARAMS.items()
            },
            "baud": 9600,
            "timeout": 0.5,
        },
    )
    url, params = split_uri("socket://localhost:7777?logging=debug&window=2")
    assert url == "socket://localhost:7777?logging=debug" and params["window"] == 2
    url, params = split_uri("/dev/ttyACM0")
    assert url == "/dev/ttyACM0" and params["baud"] == 115200
    with pytest.raises(BadDeviceParameterError, match="bogus"):
        split_uri("serial:///dev/ttyUSB0?bogus=1")
    with pytest.raises(BadDeviceParameterError):
        split_uri("/dev/ttyUSB0?timeout=soon")


def test_window_cap_gives_stop_and_wait() -> None:
    dev = TanhDevice()
    with serve_in_thread(dev, pty=True, window=4) as srv, open_serial(srv.url + "?window=1") as d:
        assert d.window == 1
        x = unique_inputs(200)
        assert_all_attributed(dev, x, d.query(x))


def test_loop_url_is_not_a_device() -> None:
    """loop:// echoes our own INFO back: never mistaken for INFO_OK."""
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout, match="no INFO_OK"):
        open_serial("loop://?handshake=0.5")
    assert time.monotonic() - t0 < 10


def test_cannot_open_missing_port() -> None:
    with pytest.raises(DeviceDisconnected, match="cannot open"):
        open_serial("serial:///dev/does-not-exist-hwloop")


# ------------------------------------------------------------------ faults


def test_faults_never_misattribute(transport: str) -> None:
    dev = TanhDevice()
    faults = FaultConfig(drop=0.02, garble=0.02, duplicate=0.02, reboot_after=100, seed=3)
    with (
        serve_in_thread(dev, **server_kwargs(transport), faults=faults) as srv,
        open_serial(srv.url + "?timeout=0.2&retries=10") as d,
    ):
        x = unique_inputs(8000, seed=1)
        y = d.query(x)
        st = srv.stats
        assert st.dropped > 0 and st.garbled > 0 and st.duplicated > 0 and st.reboots == 1
        assert d.link.reboots == 1
        assert d.link.resends > 0 and d.link.stale > 0
        assert_all_attributed(dev, x, y)
        assert np.max(np.abs(y - np.tanh(x))) < 0.01


def test_exactly_once_on_stateful_device_under_drops() -> None:
    """Retries replay stored answers: the memory sees every input once, in order."""
    faults = FaultConfig(drop=0.1, garble=0.05, duplicate=0.05, seed=5)
    with (
        serve_in_thread(MemoryDevice(), pty=True, faults=faults) as srv,
        open_serial(srv.url + "?timeout=0.2&retries=10") as d,
    ):
        assert d.info.stateful
        x = unique_inputs(2000, seed=2)
        y = d.query(x)
        assert srv.stats.replays > 0
        np.testing.assert_array_equal(y, memory_reference(x))
        d.reset()
        np.testing.assert_array_equal(d.query(x[:10]), memory_reference(x[:10]))


def test_stateful_reboot_raises_by_default() -> None:
    with (
        serve_in_thread(MemoryDevice(), pty=True, faults=FaultConfig(reboot_after=5)) as srv,
        open_serial(srv.url + "?timeout=0.5") as d,
    ):
        x = unique_inputs(400, seed=3)
        with pytest.raises(DeviceRebooted, match="rebooted mid-run"):
            d.query(x)
        assert d.link.reboots == 1
        d.reset()  # still usable afterwards
        np.testing.assert_array_equal(d.query(x[:20]), memory_reference(x[:20]))


def test_stateful_reboot_resend_policy_counts() -> None:
    with (
        serve_in_thread(MemoryDevice(), pty=True, faults=FaultConfig(reboot_after=5)) as srv,
        open_serial(srv.url + "?timeout=0.5&on_reboot=resend") as d,
    ):
        y = d.query(unique_inputs(400, seed=3))
        assert y.shape == (400, 1) and d.link.reboots == 1


def test_reconnect_after_hangup() -> None:
    """The TCP peer vanishes mid-run (like an unplugged cable) and comes back."""
    dev = TanhDevice()
    with (
        serve_in_thread(dev, listen="tcp://127.0.0.1:0", faults=FaultConfig(hangup_after=10)) as srv,
        open_serial(srv.url + "?timeout=0.3&reconnect=5") as d,
    ):
        x = unique_inputs(1000, seed=4)
        y = d.query(x)
        assert srv.stats.hangups == 1 and d.link.reconnects == 1
        assert_all_attributed(dev, x, y)


def test_port_gone_for_good_gives_typed_error() -> None:
    dev = TanhDevice()
    with serve_in_thread(dev, pty=True, faults=FaultConfig(hangup_after=3)) as srv:
        d = open_serial(srv.url + "?timeout=0.3&reconnect=0.5")
        try:
            with pytest.raises(DeviceDisconnected, match=r"re-open|answer again|link lost"):
                d.query(unique_inputs(500))
        finally:
            d.close()
        # The vanished name stays vanished while the server runs: ptys opened
        # since (other tests run beside this one) never take it, so a client
        # re-opening it cannot reach another device.
        assert srv.stats.hangups == 1
        fresh = [os.openpty() for _ in range(8)]
        try:
            assert srv.address not in {os.ttyname(slave) for _, slave in fresh}
            assert not os.path.exists(srv.address)
        finally:
            for fd in (fd for pair in fresh for fd in pair):
                os.close(fd)


def test_timeout_is_typed() -> None:
    with (
        serve_in_thread(TanhDevice(), pty=True, faults=FaultConfig(mute_after=2)) as srv,
        open_serial(srv.url + "?timeout=0.1&retries=2") as d,
    ):
        d.query(np.zeros((4, 1), np.float32))  # request 2 still answered
        t0 = time.monotonic()
        with pytest.raises(DeviceTimeout, match=r"no valid answer to QUERY seq \d+ after 2 re-send"):
            d.query(np.zeros((4, 1), np.float32))
        assert time.monotonic() - t0 < 10


def test_handshake_timeout_on_silent_port() -> None:
    with (
        serve_in_thread(TanhDevice(), pty=True, faults=FaultConfig(mute_after=0)) as srv,
        pytest.raises(DeviceTimeout, match=r"no INFO_OK within 0\.5 s"),
    ):
        open_serial(srv.url + "?handshake=0.5")


def test_out_of_range_never_sent() -> None:
    dev = TanhDevice()
    with serve_in_thread(dev, pty=True) as srv, open_serial(srv.url) as d:
        before = srv.stats.requests
        for bad in (np.array([[2.0]]), np.array([[np.nan]]), np.array([[0.5], [-1.5]])):
            with pytest.raises(OutOfRangeError):
                d.query(bad)
        time.sleep(0.1)
        assert srv.stats.requests == before and dev.applied == 0


def test_device_exception_becomes_device_fault() -> None:
    with serve_in_thread(FaultyDevice(), pty=True) as srv, open_serial(srv.url) as d:
        with pytest.raises(DeviceFault, match="error 7") as ei:
            d.query(np.zeros((2, 1), np.float32))
        assert ei.value.code == 7 and "sensor stuck" in ei.value.device_message


# ------------------------------------------------------------------ server, byte level


@pytest.fixture
def raw() -> Iterator[tuple[serial.SerialBase, TanhDevice]]:
    dev = TanhDevice()
    with serve_in_thread(dev, pty=True, window=2) as srv:
        port = serial.serial_for_url(srv.url, timeout=2)
        try:
            yield port, dev
        finally:
            port.close()


def exchange(port: serial.SerialBase, frame: bytes) -> p.Message:
    """Send one frame, return the first non-READY answer."""
    port.write(frame)
    splitter = p.FrameSplitter()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for block in splitter.feed(port.read(1) + port.read(port.in_waiting)):
            msg = p.decode_message(p.decode_frame(block))
            if not isinstance(msg, p.Ready):
                return msg
    raise AssertionError("no answer")


def raw_frame(version: int, mtype: int, seq: int, body: bytes = b"") -> bytes:
    return p.encode_frame(bytes([version, mtype]) + seq.to_bytes(2, "little") + body)


def q_body(*xs: float, n: int | None = None) -> bytes:
    return (len(xs) if n is None else n).to_bytes(2, "little") + np.array(xs, "<f4").tobytes()


@pytest.mark.parametrize(
    ("frame", "seq", "code"),
    [
        (b"\x05garbage\x00", 0xFFFF, 1),
        (p.encode_frame(b"\x01\x01\x09\x00")[:-3] + b"\x01\x00", 0xFFFF, 1),  # bad crc
        (raw_frame(2, p.INFO, 9), 9, 2),
        (raw_frame(1, 0x55, 10), 10, 3),
        (raw_frame(1, p.INFO_OK, 11), 11, 3),  # a device-to-host type
        (raw_frame(1, p.INFO, 12, b"\x00"), 12, 4),
        (raw_frame(1, p.QUERY, 13, q_body(0.1, n=3)), 13, 4),
        (raw_frame(1, p.QUERY, 14, q_body(*([0.1] * 17))), 14, 5),
        (raw_frame(1, p.QUERY, 15, q_body(0.1, 1.5)), 15, 6),
        (raw_frame(1, p.QUERY, 16, q_body(float("nan"))), 16, 6),
    ],
)
def test_server_error_codes(raw: tuple, frame: bytes, seq: int, code: int) -> None:
    port, dev = raw
    msg = exchange(port, frame)
    assert isinstance(msg, p.Error), msg
    assert (msg.seq, msg.code) == (seq, code)
    assert dev.applied == 0  # nothing applied, in particular not the in-range row of seq 15


def test_server_replays_stored_answers(raw: tuple) -> None:
    port, dev = raw
    q = raw_frame(1, p.QUERY, 40, q_body(0.25, -0.5))
    first = exchange(port, q)
    again = exchange(port, q)
    assert isinstance(first, p.QueryOk) and isinstance(again, p.QueryOk)
    np.testing.assert_array_equal(first.values, again.values)
    assert dev.applied == 2  # applied once
    # same seq, different bytes: a new request, not a replay
    other = exchange(port, raw_frame(1, p.QUERY, 40, q_body(0.75)))
    assert isinstance(other, p.QueryOk) and other.n == 1 and dev.applied == 3
    # window 2: seq 40 falls out after two newer answers
    exchange(port, raw_frame(1, p.INFO, 41))
    exchange(port, raw_frame(1, p.INFO, 42))
    exchange(port, raw_frame(1, p.QUERY, 40, q_body(0.75)))
    assert dev.applied == 4


def test_server_info_and_reset(raw: tuple) -> None:
    port, _ = raw
    info = exchange(port, raw_frame(1, p.INFO, 1))
    assert isinstance(info, p.InfoOk) and info.window == 2 and info.max_batch == 16
    assert exchange(port, raw_frame(1, p.RESET, 2)) == p.ResetOk(2)


def test_windowed_and_stop_and_wait_agree_on_throttled_line() -> None:
    """Pipelining sanity on a 115200-baud line: both complete, both correct."""
    for window in (1, 4):
        dev = TanhDevice(max_batch=32)
        with (
            serve_in_thread(dev, pty=True, window=window, faults=FaultConfig(baud=115200)) as srv,
            open_serial(srv.url) as d,
        ):
            x = unique_inputs(1000, seed=window)
            assert d.window == window
            assert_all_attributed(dev, x, d.query(x))
            assert d.link.resends == 0
