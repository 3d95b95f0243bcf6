"""Serve any hwloop Device over the wire protocol, on a pty or a TCP socket.

`serve` makes a Python device (a simulator, a bench instrument wrapper) look
exactly like the firmware on a serial port, so the host driver, its retries
and its tests run against the same bytes a board would send. Fault injection
(drops, garbled bytes, duplicates, a reboot, unusable answers, a throttled
line) lets the tests prove that a bad answer is never used as a measurement.
The protocol logic is `responder.Responder` (stored answers, sessions,
faults); the byte transports are in `serve_io`.

- pty: the server holds the slave end open, so a client may close and
  re-open the port (as after unplugging); it serves until ``stop_event``.
  Host sessions (PROTOCOL.md amendment 1) keep one host process's stored
  answers from answering the next.
- TCP: connections are served one after another; each new connection is a
  fresh boot (device reset, stored answers forgotten, READY sent), like an
  Arduino that resets when its port is opened. The link has no
  authentication: a non-loopback address needs ``allow_remote=True``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import queue
import select
import socket
import threading
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from hwloop.device import Device, UsageError
from hwloop.drivers.responder import FaultConfig, Responder, ServeStats
from hwloop.drivers.serve_io import POLL_S, FdTransport, SocketTransport, run_connection

__all__ = [
    "FaultConfig",
    "ServeStats",
    "ServerHandle",
    "is_loopback",
    "parse_listen",
    "serve",
    "serve_in_thread",
]

log = logging.getLogger(__name__)


def parse_listen(listen: str) -> tuple[str, int]:
    """``tcp://host:port`` (or ``host:port``) -> (host, port); port 0 picks one."""
    text = listen if "://" in listen else f"tcp://{listen}"
    parts = urlsplit(text)
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        raise UsageError(f"--listen wants tcp://HOST:PORT, got {listen!r}")
    return parts.hostname, parts.port


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback one (127.0.0.0/8, ::1).

    A name is resolved; one that does not resolve, or that also names a
    non-loopback address, is not loopback. 0.0.0.0 and :: mean every interface.
    """
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    addrs = {info[4][0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def check_listen(listen: str, *, allow_remote: bool) -> tuple[str, int]:
    """(host, port) of ``listen``; a non-loopback host needs ``allow_remote``.

    The wire protocol has no authentication: whoever reaches the port drives
    the device. So serving beyond this machine must be asked for explicitly.
    """
    host, port = parse_listen(listen)
    if not is_loopback(host):
        if not allow_remote:
            raise UsageError(
                f"--listen {listen}: {host} is not a loopback address and the link has no "
                "authentication; pass --allow-remote to serve it anyway"
            )
        log.warning(
            "serving on %s: the link has no authentication - anyone who reaches this port "
            "can drive the device",
            listen,
        )
    return host, port


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
    allow_remote: bool = False,
) -> None:
    """Serve ``device`` on a new pty (``pty=True``) or a TCP ``listen`` address.

    ``on_ready`` gets the pty slave path or ``tcp://host:port`` once clients
    can connect. Blocks until ``stop_event`` is set: a pty keeps serving
    across client re-opens, TCP serves connections one after another.
    ``stats`` (optional) is updated live with what the server did. A
    non-loopback ``listen`` address raises `UsageError` unless
    ``allow_remote`` (then a warning says the link has no authentication).
    """
    if pty == (listen is not None):
        raise UsageError("serve needs exactly one of pty=True or listen='tcp://HOST:PORT'")
    if listen is not None:
        check_listen(listen, allow_remote=allow_remote)
    faults = faults or FaultConfig()
    stats = stats if stats is not None else ServeStats()
    stop = stop_event or threading.Event()
    responder = Responder(device, window, faults, stats)
    if pty:
        _serve_pty(responder, faults, stats, stop, on_ready)
    else:
        assert listen is not None
        _serve_tcp(listen, responder, faults, stats, stop, on_ready)


def _serve_pty(
    responder: Responder,
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
        log.info("serving %s on %s", responder.info.name, path)
        if on_ready:
            on_ready(path)
        run_connection(FdTransport(master), responder, faults, stats, stop, responder.boot())
        os.close(master)  # the pty's node disappears (after a hang-up: as if unplugged)
        master = -1
        # Held until stopped: while a slave fd is open the kernel keeps the pty's
        # number, so a client re-opening the vanished path meets ENOENT and never
        # a pty that another server has opened since under the same name.
        stop.wait()
    finally:
        if master >= 0:
            os.close(master)
        os.close(slave)


def _serve_tcp(
    listen: str,
    responder: Responder,
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
        log.info("serving %s on %s", responder.info.name, address)
        if on_ready:
            on_ready(address)
        while not stop.is_set():
            r, _, _ = select.select([srv], [], [], POLL_S)
            if not r:
                continue
            conn, peer = srv.accept()
            log.info("connection from %s", peer)
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.setblocking(False)
                run_connection(SocketTransport(conn), responder, faults, stats, stop, responder.boot())
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
