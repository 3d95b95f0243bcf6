"""Byte transports for `serve`: a pty or a TCP socket, paced like a UART, full duplex.

A reader loop feeds received blocks to a `Responder` and a writer thread
sends its frames, so a slow line (``baud``) delays answers the way a real
8N1 link does without stalling the receive side.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import socket
import threading
import time
from collections.abc import Iterator

from hwloop.drivers import protocol as p
from hwloop.drivers.responder import FaultConfig, HangUp, Responder, ServeStats

log = logging.getLogger(__name__)

POLL_S = 0.05
_BITS_PER_BYTE = 10  # 8N1: start + 8 data + stop


class Line:
    """Paces bytes like a UART at ``baud`` (or not at all when None)."""

    def __init__(self, baud: int | None) -> None:
        self.baud = baud
        self.free_at = 0.0

    def wait(self, nbytes: int) -> None:
        if not self.baud:
            return
        now = time.monotonic()
        self.free_at = max(self.free_at, now) + nbytes * _BITS_PER_BYTE / self.baud
        if self.free_at > now:
            time.sleep(self.free_at - now)


class Transport:
    """A byte stream: ``read`` returns b"" on nothing yet, None at hang-up."""

    def read(self, timeout: float) -> bytes | None:
        raise NotImplementedError

    def write(self, data: bytes, stop: threading.Event) -> bool:
        raise NotImplementedError


class FdTransport(Transport):
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, timeout: float) -> bytes | None:
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return b""
        try:
            return os.read(self.fd, 4096)
        except BlockingIOError:
            return b""
        except OSError:  # EIO: no slave open (cannot happen while we hold it)
            time.sleep(timeout)
            return b""

    def write(self, data: bytes, stop: threading.Event) -> bool:
        view = memoryview(data)
        while view and not stop.is_set():
            try:
                k = os.write(self.fd, view)
                view = view[k:]
            except BlockingIOError:  # nobody is reading: wait, but stay stoppable
                select.select([], [self.fd], [], POLL_S)
            except OSError as exc:
                log.debug("pty write failed: %s", exc)
                return False
        return True


class SocketTransport(Transport):
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def read(self, timeout: float) -> bytes | None:
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return b""
        try:
            data = self.sock.recv(4096)
        except OSError:
            return None
        return data or None

    def write(self, data: bytes, stop: threading.Event) -> bool:
        view = memoryview(data)
        while view and not stop.is_set():
            try:
                k = self.sock.send(view)
                view = view[k:]
            except (TimeoutError, BlockingIOError):
                select.select([], [self.sock], [], POLL_S)
            except OSError as exc:
                log.debug("socket write failed: %s", exc)
                return False
        return True


class Writer(threading.Thread):
    """Sends frames from a queue, paced by the line; full duplex with the reader."""

    def __init__(self, transport: Transport, line: Line, stats: ServeStats) -> None:
        super().__init__(name="hwloop-serve-writer", daemon=True)
        self.transport = transport
        self.line = line
        self.stats = stats
        self.q: queue.Queue[bytes | None] = queue.Queue()
        self.stop = threading.Event()
        self.failed = False

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                frame = self.q.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if frame is None:
                return
            self.line.wait(len(frame))
            if not self.transport.write(frame, self.stop):
                self.failed = True
                return
            self.stats.bytes_out += len(frame)

    def close(self) -> None:
        self.stop.set()
        self.q.put(None)
        self.join(timeout=5)


def run_connection(
    transport: Transport,
    responder: Responder,
    faults: FaultConfig,
    stats: ServeStats,
    stop: threading.Event,
    first: bytes,
) -> None:
    """Serve one connection until hang-up or stop."""
    writer = Writer(transport, Line(faults.baud), stats)
    writer.start()
    rx = Line(faults.baud)
    splitter = p.FrameSplitter()
    writer.q.put(first)
    try:
        while not stop.is_set() and not writer.failed:
            data = transport.read(POLL_S)
            if data is None:
                log.info("peer hung up")
                return
            if not data:
                continue
            stats.bytes_in += len(data)
            for segment in segments(data):
                rx.wait(len(segment))  # the block is complete only when its last byte arrives
                for block in splitter.feed(segment):
                    try:
                        frames = responder.handle(block)
                    except HangUp:
                        return
                    if faults.delay:
                        time.sleep(faults.delay)
                    for frame in responder.inject(frames):
                        writer.q.put(frame)
    finally:
        writer.close()


def segments(data: bytes) -> Iterator[bytes]:
    """Split ``data`` just after each 0x00, so pacing sees frame boundaries."""
    start = 0
    while start < len(data):
        idx = data.find(b"\x00", start)
        end = len(data) if idx < 0 else idx + 1
        yield data[start:end]
        start = end
