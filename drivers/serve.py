"""Serve any hwloop Device over the wire protocol, on a pty or a TCP socket.

`serve` makes a Python device (a simulator, a bench instrument wrapper) look
exactly like the firmware on a serial port, so the host driver, its retries
and its tests run against the same bytes a board would send. Fault injection
(drops, garbled bytes, duplicates, a reboot, a throttled line) lets the tests
prove that a bad answer is never used as a measurement.

Behaviour where PROTOCOL.md is silent (the firmware does the same, see
drivers/firmware/README.md):
- A stored answer is replayed when a request repeats both its seq and its
  exact bytes (CRC of the payload); the same seq with different bytes is a new
  request (a new host session restarting at seq 1 must not get stale answers).
- Every answered request is stored (INFO, QUERY, RESET, and ERRORs with a
  known seq), so a retried RESET is not applied twice either.
- pty: the server holds the slave end open, so a client may close and
  re-open the port (as after unplugging); it serves until ``stop_event``.
- TCP: connections are served one after another; each new connection is a
  fresh boot (device reset, stored answers forgotten, READY sent), like an
  Arduino that resets when its port is opened.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import select
import socket
import threading
import time
import tty
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

from hwloop.device import Device, UsageError
from hwloop.drivers import protocol as p
from hwloop.drivers.errors import ProtocolError

log = logging.getLogger(__name__)

_POLL_S = 0.05
_BITS_PER_BYTE = 10  # 8N1: start + 8 data + stop


@dataclass
class FaultConfig:
    """Faults injected into the server's responses, for testing the host.

    Probabilities apply to each response frame independently. ``baud`` (if
    set) paces both directions at 10 bits per byte, like a real 8N1 line.
    ``reboot_after=k`` reboots once on receiving the k-th request (that
    request is lost, stored answers are forgotten, the device is reset and
    READY is sent). ``hangup_after=k`` closes the connection once on the k-th
    request, like an unplugged USB cable (TCP: the next connection is a fresh
    boot; pty: the pty disappears and `serve` returns). ``mute_after=k`` stops answering after k requests (to
    provoke timeouts). ``delay`` is added before every response.
    """

    drop: float = 0.0
    garble: float = 0.0
    duplicate: float = 0.0
    reboot_after: int | None = None
    hangup_after: int | None = None
    mute_after: int | None = None
    baud: int | None = None
    delay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop", "garble", "duplicate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise UsageError(f"fault {name}={v} must be a probability in [0, 1]")
        if self.baud is not None and self.baud <= 0:
            raise UsageError(f"fault baud={self.baud} must be positive")


@dataclass
class ServeStats:
    """What the server did; tests compare it with what the host saw."""

    requests: int = 0
    replays: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    dropped: int = 0
    garbled: int = 0
    duplicated: int = 0
    reboots: int = 0
    hangups: int = 0
    bad_frames: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


class _HangUp(Exception):
    """Raised inside a session to drop the connection (fault injection)."""


class _Line:
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


class _Transport:
    """A byte stream: ``read`` returns b"" on nothing yet, None at hang-up."""

    def read(self, timeout: float) -> bytes | None:
        raise NotImplementedError

    def write(self, data: bytes, stop: threading.Event) -> bool:
        raise NotImplementedError


class _FdTransport(_Transport):
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
                select.select([], [self.fd], [], _POLL_S)
            except OSError as exc:
                log.debug("pty write failed: %s", exc)
                return False
        return True


class _SocketTransport(_Transport):
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
                select.select([], [self.sock], [], _POLL_S)
            except OSError as exc:
                log.debug("socket write failed: %s", exc)
                return False
        return True


class _Writer(threading.Thread):
    """Sends frames from a queue, paced by the line; full duplex with the reader."""

    def __init__(self, transport: _Transport, line: _Line, stats: ServeStats) -> None:
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
                frame = self.q.get(timeout=_POLL_S)
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


class _Session:
    """Protocol logic for one device: blocks in, response frames out."""

    def __init__(self, device: Device, window: int, faults: FaultConfig, stats: ServeStats) -> None:
        if window < 1 or window > 255:
            raise UsageError(f"window={window} must be in 1..255")
        self.device = device
        self.info = device.info
        self.window = window
        self.faults = faults
        self.stats = stats
        self.rng = random.Random(faults.seed)
        self.stored: OrderedDict[int, tuple[int, bytes]] = OrderedDict()
        self.rebooted = False
        self.hung_up = False
        self.low = self.info.low_array
        self.high = self.info.high_array
        fit = min(p.max_rows(self.info.in_dim), p.max_rows(self.info.out_dim))
        self.max_batch = max(1, min(self.info.max_batch, fit, 0xFFFF))

    # -- responses ------------------------------------------------------
    def info_ok(self, seq: int) -> bytes:
        i = self.info
        msg = p.InfoOk(
            seq,
            i.in_dim,
            i.out_dim,
            self.max_batch,
            p.FLAG_STATEFUL if i.stateful else 0,
            self.window,
            i.low,
            i.high,
            i.name,
            i.firmware or "hwloop-serve",
        )
        return p.encode_message(msg)

    def error(self, seq: int, code: int, message: str) -> bytes:
        self.stats.errors[code] = self.stats.errors.get(code, 0) + 1
        log.debug("answering ERROR %d to seq %d: %s", code, seq, message)
        return p.encode_message(p.Error(seq, code, message))

    def boot(self) -> bytes:
        """Forget stored answers, reset the device: what a power cycle does."""
        self.stored.clear()
        try:
            self.device.reset()
        except Exception as exc:  # a device that cannot reset still boots
            log.warning("device reset on boot failed: %s", exc)
        return p.encode_message(p.Ready())

    # -- requests -------------------------------------------------------
    def handle(self, block: bytes) -> list[bytes]:
        """Response frames for one received block (before fault injection)."""
        try:
            payload = p.decode_frame(block)
        except ProtocolError as exc:
            self.stats.bad_frames += 1
            return [self.error(p.SEQ_UNKNOWN, p.ERR_BAD_FRAME, str(exc))]
        _, mtype, seq = p.peek_header(payload)
        self.stats.requests += 1
        f = self.faults
        if f.reboot_after is not None and not self.rebooted and self.stats.requests >= f.reboot_after:
            self.rebooted = True
            self.stats.reboots += 1
            log.info("fault injection: rebooting on request %d", self.stats.requests)
            return [self.boot()]
        if f.hangup_after is not None and not self.hung_up and self.stats.requests >= f.hangup_after:
            self.hung_up = True
            self.stats.hangups += 1
            log.info("fault injection: hanging up on request %d", self.stats.requests)
            raise _HangUp
        if f.mute_after is not None and self.stats.requests > f.mute_after:
            return []
        crc = p.crc16_xmodem(payload)
        hit = self.stored.get(seq)
        if hit is not None and hit[0] == crc:
            self.stats.replays += 1
            return [hit[1]]
        frame = self._answer(payload, mtype, seq)
        if seq != p.SEQ_UNKNOWN:
            self.stored[seq] = (crc, frame)
            self.stored.move_to_end(seq)
            while len(self.stored) > self.window:
                self.stored.popitem(last=False)
        return [frame]

    def _answer(self, payload: bytes, mtype: int, seq: int) -> bytes:
        if payload[0] == p.VERSION and mtype not in (p.INFO, p.QUERY, p.RESET):
            return self.error(seq, p.ERR_TYPE, f"unknown request type 0x{mtype:02x}")
        try:
            msg = p.decode_message(payload, dim=self.info.in_dim)
        except ProtocolError as exc:
            return self.error(seq, exc.code, str(exc))
        if isinstance(msg, p.Info):
            return self.info_ok(seq)
        if isinstance(msg, p.Reset):
            try:
                self.device.reset()
            except Exception as exc:
                return self.error(seq, p.ERR_FAULT, f"reset failed: {exc}")
            return p.encode_message(p.ResetOk(seq))
        if isinstance(msg, p.Query):
            return self._query(msg)
        return self.error(seq, p.ERR_TYPE, f"unknown request type 0x{mtype:02x}")

    def _query(self, msg: p.Query) -> bytes:
        if msg.n > self.max_batch:
            return self.error(msg.seq, p.ERR_BATCH, f"n={msg.n} > max_batch={self.max_batch}")
        x = msg.rows(self.info.in_dim)
        if not (np.all(np.isfinite(x)) and np.all(x >= self.low) and np.all(x <= self.high)):
            return self.error(msg.seq, p.ERR_RANGE, "x out of range")
        if msg.n == 0:
            return p.encode_message(p.QueryOk(msg.seq, 0, np.zeros(0, np.float32)))
        try:
            y = np.asarray(self.device.query(x), dtype=np.float32)
        except Exception as exc:
            log.warning("device fault on seq %d: %s", msg.seq, exc)
            return self.error(msg.seq, p.ERR_FAULT, f"{type(exc).__name__}: {exc}")
        if y.shape != (msg.n, self.info.out_dim) or not np.all(np.isfinite(y)):
            return self.error(msg.seq, p.ERR_FAULT, "device answered a bad shape or non-finite values")
        return p.encode_message(p.QueryOk(msg.seq, msg.n, y))

    def inject(self, frames: list[bytes]) -> list[bytes]:
        """Apply drop / garble / duplicate faults to outgoing frames."""
        out: list[bytes] = []
        f = self.faults
        for frame in frames:
            if f.drop and self.rng.random() < f.drop:
                self.stats.dropped += 1
                continue
            if f.garble and self.rng.random() < f.garble:
                b = bytearray(frame)
                i = self.rng.randrange(len(b) - 1)  # keep the delimiter
                b[i] ^= 1 << self.rng.randrange(8)
                frame = bytes(b)
                self.stats.garbled += 1
            out.append(frame)
            if f.duplicate and self.rng.random() < f.duplicate:
                self.stats.duplicated += 1
                out.append(frame)
        return out


def _run_session(
    transport: _Transport,
    session: _Session,
    faults: FaultConfig,
    stats: ServeStats,
    stop: threading.Event,
    first: bytes,
) -> None:
    """Serve one connection until hang-up or stop."""
    writer = _Writer(transport, _Line(faults.baud), stats)
    writer.start()
    rx = _Line(faults.baud)
    splitter = p.FrameSplitter()
    writer.q.put(first)
    try:
        while not stop.is_set() and not writer.failed:
            data = transport.read(_POLL_S)
            if data is None:
                log.info("peer hung up")
                return
            if not data:
                continue
            stats.bytes_in += len(data)
            for segment in _segments(data):
                rx.wait(len(segment))  # the block is complete only when its last byte arrives
                for block in splitter.feed(segment):
                    try:
                        frames = session.handle(block)
                    except _HangUp:
                        return
                    if faults.delay:
                        time.sleep(faults.delay)
                    for frame in session.inject(frames):
                        writer.q.put(frame)
    finally:
        writer.close()


def _segments(data: bytes) -> Iterator[bytes]:
    """Split ``data`` just after each 0x00, so pacing sees frame boundaries."""
    start = 0
    while start < len(data):
        idx = data.find(b"\x00", start)
        end = len(data) if idx < 0 else idx + 1
        yield data[start:end]
        start = end


def parse_listen(listen: str) -> tuple[str, int]:
    """``tcp://host:port`` (or ``host:port``) -> (host, port); port 0 picks one."""
    text = listen if "://" in listen else f"tcp://{listen}"
    parts = urlsplit(text)
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        raise UsageError(f"--listen wants tcp://HOST:PORT, got {listen!r}")
    return parts.hostname, parts.port


def serve(
    device: Device,
    *,
    pty: bool = False,
    listen: str | None = None,
    window: int = 4,
    faults: FaultConfig | None = None,
    on_ready: Callable[[str], None] | None = None,
    stop_event: threading.Event | None = None,
    stats: ServeStats | None = None,
) -> None:
    """Serve ``device`` on a new pty (``pty=True``) or a TCP ``listen`` address.

    ``on_ready`` gets the pty slave path or ``tcp://host:port`` once clients
    can connect. Blocks until ``stop_event`` is set: a pty keeps serving
    across client re-opens, TCP serves connections one after another.
    ``stats`` (optional) is updated live with what the server did.
    """
    if pty == (listen is not None):
        raise UsageError("serve needs exactly one of pty=True or listen='tcp://HOST:PORT'")
    faults = faults or FaultConfig()
    stats = stats if stats is not None else ServeStats()
    stop = stop_event or threading.Event()
    session = _Session(device, window, faults, stats)
    if pty:
        _serve_pty(session, faults, stats, stop, on_ready)
    else:
        assert listen is not None
        _serve_tcp(listen, session, faults, stats, stop, on_ready)


def _serve_pty(
    session: _Session,
    faults: FaultConfig,
    stats: ServeStats,
    stop: threading.Event,
    on_ready: Callable[[str], None] | None,
) -> None:
    master, slave = os.openpty()
    try:
        tty.setraw(slave)  # no echo, no line editing: a binary line
        os.set_blocking(master, False)
        path = os.ttyname(slave)
        log.info("serving %s on %s", session.info.name, path)
        if on_ready:
            on_ready(path)
        _run_session(_FdTransport(master), session, faults, stats, stop, session.boot())
    finally:
        os.close(master)
        os.close(slave)


def _serve_tcp(
    listen: str,
    session: _Session,
    faults: FaultConfig,
    stats: ServeStats,
    stop: threading.Event,
    on_ready: Callable[[str], None] | None,
) -> None:
    host, port = parse_listen(listen)
    srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, port))
        srv.listen(1)
        bound = srv.getsockname()[1]
        address = f"tcp://{host}:{bound}"
        log.info("serving %s on %s", session.info.name, address)
        if on_ready:
            on_ready(address)
        while not stop.is_set():
            r, _, _ = select.select([srv], [], [], _POLL_S)
            if not r:
                continue
            conn, peer = srv.accept()
            log.info("connection from %s", peer)
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.setblocking(False)
                _run_session(_SocketTransport(conn), session, faults, stats, stop, session.boot())
    finally:
        srv.close()


@dataclass
class ServerHandle:
    """A server running in a background thread (see `serve_in_thread`)."""

    address: str
    stats: ServeStats
    stop_event: threading.Event
    thread: threading.Thread

    @property
    def url(self) -> str:
        """The address as a SerialDevice URI (pty path, or socket://host:port)."""
        if self.address.startswith("tcp://"):
            return "socket://" + self.address[len("tcp://") :]
        return self.address


@contextlib.contextmanager
def serve_in_thread(
    device: Device,
    *,
    pty: bool = False,
    listen: str | None = None,
    window: int = 4,
    faults: FaultConfig | None = None,
    start_timeout: float = 10.0,
) -> Iterator[ServerHandle]:
    """Run `serve` in a daemon thread; yields once it listens, stops it on exit."""
    ready: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    stats = ServeStats()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            serve(
                device,
                pty=pty,
                listen=listen,
                window=window,
                faults=faults,
                on_ready=ready.put,
                stop_event=stop,
                stats=stats,
            )
        except BaseException as exc:
            failure.append(exc)
            ready.put("")

    thread = threading.Thread(target=target, name="hwloop-serve", daemon=True)
    thread.start()
    try:
        address = ready.get(timeout=start_timeout)
    except queue.Empty:
        stop.set()
        raise TimeoutError("server did not start in time") from None
    if failure:
        thread.join(timeout=5)
        raise failure[0]
    handle = ServerHandle(address, stats, stop, thread)
    try:
        yield handle
    finally:
        stop.set()
        thread.join(timeout=10)
        if thread.is_alive():
            log.error("server thread did not stop")
    if failure:
        raise failure[0]
