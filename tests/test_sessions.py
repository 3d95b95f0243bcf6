"""Host sessions (PROTOCOL.md, amendment 1): a stored answer from one host
process never answers the next one.

Two host sessions run one after the other against ONE persistent device: a
`hwloop serve --pty` subprocess with a stateful simulator, and the AVR
firmware under simavr. Each session starts its sequence numbers again at 1,
so without sessions the device would replay the first session's stored
RESET and answers to the second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import serial
from serial_fixtures import start_runner, start_serve, stop_process

from hwloop import open_device
from hwloop.drivers import protocol as p
from hwloop.drivers.errors import ProtocolError
from hwloop.drivers.serial_device import SerialDevice, open_serial
from hwloop.drivers.serve import FaultConfig, serve_in_thread

WH = "sim:wh?noise=0&seed=0"  # noise 0: a fresh simulator is a bit-exact reference


def inputs(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 1)).astype(np.float32)


def session(url: str, x: np.ndarray, *, reset: bool = True) -> np.ndarray:
    """One host process's worth of work: open, (reset,) query, close."""
    dev = open_serial(url)
    try:
        if reset:
            dev.reset()
        return dev.query(x)
    finally:
        dev.close()


def fresh_wh(x: np.ndarray) -> np.ndarray:
    ref = open_device(WH)
    try:
        ref.reset()
        return ref.query(x)
    finally:
        ref.close()


def test_second_session_on_persistent_serve_matches_a_fresh_device(tmp_path: Path) -> None:
    """Session B's RESET (seq 2, the same bytes as A's) must be applied, not replayed."""
    proc, path = start_serve(WH, tmp_path)
    try:
        xa, xb = inputs(8, 1), inputs(8, 2)
        ya = session(path, xa)
        yb = session(path, xb)
    finally:
        stop_process(proc)
    np.testing.assert_array_equal(ya, fresh_wh(xa))
    assert yb.tobytes() == fresh_wh(xb).tobytes(), "session B saw session A's state or stored answers"


@pytest.mark.parametrize("reset", [False, True])
def test_second_session_on_firmware_is_measured_afresh(build: Path, tmp_path: Path, reset: bool) -> None:
    """The same x in both sessions: B must get new measurements, not A's stored bytes.

    The firmware's noise generator runs on from boot, one draw per applied
    input (RESET does not touch it), so a fresh board asked xa then xb in one
    session is the bit-exact reference for what the persistent board answers
    session B. Without resets, a board from before sessions replays A's
    stored answers to B (its two-slot window still holds them).
    """
    x = inputs(4, 3)
    proc, path = start_runner(build, tmp_path)
    try:
        ya = session(path, x, reset=reset)
        yb = session(path, x, reset=reset)
    finally:
        stop_process(proc)
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    proc, path = start_runner(build, ref_dir)
    try:
        ref = session(path, np.concatenate([x, x]), reset=False)
    finally:
        stop_process(proc)
    assert ya.tobytes() == ref[:4].tobytes()
    assert yb.tobytes() == ref[4:].tobytes(), "session B got session A's stored answers"


# ------------------------------------------------------------------ the host side


class Counting:
    """A device wrapper that records every input row the device applied, and its resets."""

    def __init__(self, uri: str) -> None:
        self.dev = open_device(uri)
        self.info = self.dev.info
        self.applied: list[np.ndarray] = []
        self.resets = 0

    def query(self, x: np.ndarray) -> np.ndarray:
        self.applied.append(np.array(x, copy=True))
        return self.dev.query(x)

    def reset(self) -> None:
        self.resets += 1
        self.dev.reset()

    def close(self) -> None:
        self.dev.close()

    def rows(self) -> np.ndarray:
        return np.concatenate(self.applied) if self.applied else np.zeros((0, 1), np.float32)


class WriteFailsOnce:
    """A real port whose ``fail_on``-th write goes out and then reports the port gone
    (an unplugged cable right after the bytes left); records every frame written."""

    def __init__(self, url: str, log: list[bytes], fail: list[int]) -> None:
        self.port = serial.serial_for_url(url, timeout=0.02, write_timeout=5)
        self.log = log
        self.fail = fail

    def write(self, data: bytes) -> int:
        n = self.port.write(data)
        self.log.append(bytes(data))
        if self.fail and len(self.log) == self.fail[0]:
            self.fail.clear()
            raise serial.SerialException("device reports readiness to read but returned no data")
        return n

    def __getattr__(self, name: str) -> object:
        return getattr(self.port, name)


def infos(frames: list[bytes]) -> list[p.Info]:
    msgs = [p.decode_message(p.decode_frame(f)) for f in frames]
    return [m for m in msgs if isinstance(m, p.Info)]


def test_every_info_carries_the_session_and_a_reconnect_keeps_stored_answers() -> None:
    """After a reconnect the same session reaches the stored answers: the re-sent
    QUERY is replayed, so the stateful device applies each input exactly once."""
    dev = Counting("sim:wh?noise=0&seed=0&max_batch=8")
    written: list[bytes] = []
    with serve_in_thread(dev, pty=True) as srv:
        fail = [3]  # INFO, RESET, then the first QUERY frame "loses" the port after sending
        d = SerialDevice(srv.url, timeout=0.3, opener=lambda: WriteFailsOnce(srv.url, written, fail))
        try:
            d.reset()
            x = inputs(40, 4)
            y = d.query(x)
        finally:
            d.close()
        assert d.link.reconnects == 1 and srv.stats.replays >= 1
    sent = infos(written)
    assert len(sent) == 2 and {i.session for i in sent} == {d.session} and d.session != 0
    assert dev.rows().tobytes() == x.tobytes(), "an input was applied twice or not at all"
    assert y.tobytes() == fresh_wh(x).tobytes()


def test_two_host_processes_pick_different_sessions() -> None:
    with serve_in_thread(Counting("sim:tanh?noise=0"), pty=True) as srv:
        sessions = set()
        for _ in range(3):
            with open_serial(srv.url) as d:
                sessions.add(d.session)
        assert len(sessions) == 3 and 0 not in sessions and srv.stats.sessions == 3


@pytest.mark.parametrize("stateful", [True, False])
def test_device_without_sessions_gets_an_empty_info_a_warning_and_a_reset(
    stateful: bool, caplog: pytest.LogCaptureFixture
) -> None:
    uri = "sim:wh?noise=0&seed=0" if stateful else "sim:tanh?noise=0"
    dev = Counting(uri)
    written: list[bytes] = []
    faults = FaultConfig(legacy_info=True)
    with serve_in_thread(dev, pty=True, faults=faults) as srv:
        boot_resets = dev.resets
        with caplog.at_level(logging.WARNING, logger="hwloop.drivers"):
            d = SerialDevice(srv.url, opener=lambda: WriteFailsOnce(srv.url, written, []))
        try:
            assert not d.sessions and srv.stats.errors.get(p.ERR_LENGTH) == 1
            assert "cross-session safety cannot be relied on" in caplog.text
            x = inputs(10, 5)
            y = d.query(x)
            d.query(x)  # only the first query is preceded by a RESET
        finally:
            d.close()
    sent = infos(written)
    assert [i.session is None for i in sent] == [False, True]
    assert dev.resets - boot_resets == (1 if stateful else 0)
    if stateful:
        assert y.tobytes() == fresh_wh(x).tobytes()


# ------------------------------------------------------------------ the device side, raw frames


def raw_ask(port: serial.SerialBase, msg: p.Message) -> p.Message:
    port.write(p.encode_message(msg))
    splitter = p.FrameSplitter()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        data = port.read(1)
        if data:
            data += port.read(port.in_waiting)
        for block in splitter.feed(data):
            try:
                answer = p.decode_message(p.decode_frame(block))
            except ProtocolError:  # the tail of a READY cut when the port opened
                continue
            if not isinstance(answer, p.Ready):
                return answer
    raise AssertionError(f"no answer to {msg}")


def replayed_after(port: serial.SerialBase, first: int | None, second: int | None) -> bool:
    """INFO(first), QUERY seq 2; INFO(second), the same QUERY bytes: was it replayed?"""
    q = p.Query(2, 1, np.array([0.25], np.float32))
    assert isinstance(raw_ask(port, p.Info(1, first)), p.InfoOk)
    a = raw_ask(port, q)
    assert isinstance(raw_ask(port, p.Info(3, second)), p.InfoOk)
    b = raw_ask(port, q)
    assert isinstance(a, p.QueryOk) and isinstance(b, p.QueryOk)
    return a.values.tobytes() == b.values.tobytes()  # noisy device: a fresh answer differs


@pytest.fixture(params=["serve", "firmware"])
def noisy_port(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[serial.SerialBase]:
    """A raw port to a noisy stateless device: `hwloop serve` or the firmware under simavr."""
    if request.param == "serve":
        proc, path = start_serve("sim:tanh?noise=1e-3&seed=0", tmp_path)
    else:
        proc, path = start_runner(request.getfixturevalue("build"), tmp_path)
    try:
        port = serial.serial_for_url(path, baudrate=115200, timeout=0.05)
        try:
            yield port
        finally:
            port.close()
    finally:
        stop_process(proc)


def test_device_forgets_stored_answers_on_a_new_session(noisy_port: serial.SerialBase) -> None:
    assert replayed_after(noisy_port, 7, 7), "the same session (a reconnect) must keep stored answers"
    assert not replayed_after(noisy_port, 7, 8), "a new session must not get stored answers"
    assert not replayed_after(noisy_port, None, None), "an empty INFO counts as a new session"
    assert not replayed_after(noisy_port, 9, None)
