"""libiio's network protocol (iiod, the text protocol of libiio 0.x), served over TCP for the fake radio.

What libiio's network backend (``ip:HOST[:PORT]``, port 30431) sends, and what
iiod answers (libiio ``iiod/parser.y``, ``iiod/ops.c``; the client is
``iiod-client.c`` and ``network.c``). Every command is one line ending in
``\\r\\n``; the answer starts with a decimal integer line, negative for an
errno:

- ``VERSION`` -> ``0.24.<7-character tag>``; ``PRINT`` -> ``<len>`` then the
  context's XML and ``\\n``; ``ZPRINT`` -> ``-22`` (no compressed XML: the client
  falls back to ``PRINT``); ``TIMEOUT <ms>`` -> ``0``; ``EXIT`` closes;
- ``READ <dev> [DEBUG|BUFFER|INPUT <chn>|OUTPUT <chn>] <attr>`` -> ``<len>``,
  the value and ``\\n``; ``WRITE ... <attr> <len>`` then ``len`` bytes ->
  the bytes written (or an errno);
- ``OPEN <dev> <samples> <mask> [CYCLIC]`` (on a connection of its own: the
  client opens one per buffer) -> ``0``; ``CLOSE <dev>`` -> ``0``;
- ``READBUF <dev> <bytes>`` -> ``<len>``, the channel mask in hex, ``\\n``,
  then ``len`` bytes of samples; ``WRITEBUF <dev> <bytes>`` -> ``0``, then the
  client sends the bytes -> ``<bytes>``;
- ``GETTRIG <dev>`` -> ``0`` (no trigger); ``SETTRIG``, ``SET <dev>
  BUFFERS_COUNT <n>`` -> ``0``; anything else -> ``-22``.

As iiod does, a connection that closes (or is cut) closes every buffer it
opened: a cyclic TX buffer on it is destroyed, and the transmitter stops.

The server only parses and frames; a `Backend` (the radio) owns the devices
and the buffers. It records every command (``transcript``: time, connection,
line) and injects faults: a reply held back on its connection
(``late``), every connection cut at once, or only the control ones, or only the
buffers' (``drop_links``), new connections refused for a while (``refuse``),
and any of these at a chosen command (``fault_on``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from hwloop.simulators.fake_radio.context import AttrError, Channel, IioDevice

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

IIOD_PORT = 30431
VERSION = "0.24.hwloop0"
MAX_LINE = 1 << 16
HELP = b"Available commands: HELP EXIT PRINT ZPRINT VERSION TIMEOUT OPEN CLOSE READ WRITE READBUF WRITEBUF \
GETTRIG SETTRIG SET\n"


@dataclass
class Conn:
    """One client connection: its socket, the buffers it opened, faults pending on it."""

    cid: int
    sock: socket.socket
    opened: dict[str, tuple[int, int, bool]] = field(
        default_factory=dict
    )  # dev id -> (samples, mask, cyclic)
    late: float = 0.0
    buf: bytearray = field(default_factory=bytearray)

    @property
    def is_buffer(self) -> bool:
        return bool(self.opened)

    def read_line(self) -> bytes | None:
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                return None
            data = self.sock.recv(1 << 16)
            if not data:
                return None
            self.buf.extend(data)
        i = self.buf.index(b"\n")
        line = bytes(self.buf[:i])
        del self.buf[: i + 1]
        return line.rstrip(b"\r")

    def read_exact(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            data = self.sock.recv(max(1 << 16, n - len(self.buf)))
            if not data:
                return None
            self.buf.extend(data)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class Backend(Protocol):
    """What the server needs from the radio behind it."""

    devices: list[IioDevice]

    def xml(self) -> str: ...
    def open_buffer(self, conn: Conn, dev: IioDevice, samples: int, mask: int, cyclic: bool) -> int: ...
    def close_buffer(self, conn: Conn, dev: IioDevice) -> int: ...
    def read_buffer(self, conn: Conn, dev: IioDevice, nbytes: int) -> bytes | int: ...
    def write_buffer(self, conn: Conn, dev: IioDevice, data: bytes) -> int: ...
    def attr_written(self, dev: IioDevice, what: str, value: str) -> None: ...


def sample_size(dev: IioDevice, mask: int) -> int:
    """Bytes per sample of the enabled scan elements (every format here is 16 bits)."""
    return 2 * sum(1 for i, c in enumerate(dev.channels) if c.scan is not None and mask >> i & 1)


class IiodServer:
    """The TCP server: one thread per connection, commands parsed and passed to the backend."""

    def __init__(self, backend: Backend, *, host: str = "127.0.0.1", port: int = IIOD_PORT) -> None:
        self.backend = backend
        self.lock = threading.RLock()  # device state: one command at a time across connections
        self.transcript: list[tuple[float, int, str]] = []
        self._conns: dict[int, Conn] = {}
        self._next = 0
        self._faults: list[list] = []  # [prefix, action, matching commands still to let through]
        self._refuse_until = 0.0
        self._stop = threading.Event()
        self._sock = socket.create_server((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self._thread = threading.Thread(target=self._accept, name="fake-iiod", daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"ip:{self.host}:{self.port}"

    # ------------------------------------------------------------ faults
    def fault_on(self, prefix: str, action: Callable[[Conn], None], nth: int = 1) -> None:
        """Run ``action(conn)`` once, when the ``nth`` command starting with ``prefix`` from now
        arrives, before it is handled."""
        with self.lock:
            self._faults.append([prefix.upper(), action, int(nth) - 1])

    def drop_links(self, which: str = "all") -> None:
        """Cut connections at once: ``all``, ``control`` (no buffer open) or ``buffers`` (a buffer open)."""
        if which not in ("all", "control", "buffers"):
            raise ValueError("which is 'all', 'control' or 'buffers'")
        with self.lock:
            conns = [
                c for c in self._conns.values()
                if which == "all" or (c.is_buffer == (which == "buffers"))
            ]  # fmt: skip
        for c in conns:
            with contextlib.suppress(OSError):
                c.sock.shutdown(socket.SHUT_RDWR)

    def refuse(self, seconds: float) -> None:
        """New connections are closed as soon as they are accepted, for ``seconds``."""
        self._refuse_until = time.monotonic() + float(seconds)

    def lines(self) -> list[str]:
        """Every command received so far, in order."""
        return [line for _, _, line in self.transcript]

    def close(self) -> None:
        self._stop.set()
        self.drop_links()
        self._sock.close()

    # ------------------------------------------------------------ serving
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                sock.close()
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                conn = Conn(self._next, sock)
                self._next += 1
                self._conns[conn.cid] = conn
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name=f"iiod-{conn.cid}").start()

    def _serve(self, conn: Conn) -> None:
        try:
            while not self._stop.is_set():
                line = conn.read_line()
                if line is None:
                    return
                text = line.decode("ascii", "replace").strip()
                if not text:
                    continue
                if not self._command(conn, text):
                    return
        except OSError:
            return
        finally:
            with self.lock:
                self._conns.pop(conn.cid, None)
                for dev_id in list(conn.opened):  # as iiod does: the connection's buffers go with it
                    dev = self._device(dev_id)
                    if dev is not None:
                        self.backend.close_buffer(conn, dev)
                conn.opened.clear()
            with contextlib.suppress(OSError):
                conn.sock.close()

    def _send(self, conn: Conn, data: bytes) -> None:
        delay, conn.late = conn.late, 0.0
        if delay:
            time.sleep(delay)  # the connection answers in order: everything after waits too
        conn.sock.sendall(data)

    def _reply(self, conn: Conn, value: int, payload: bytes = b"") -> None:
        self._send(conn, f"{value}\n".encode() + payload)

    def _device(self, word: str) -> IioDevice | None:
        for d in self.backend.devices:
            if word in (d.id, d.name):
                return d
        return None

    def _command(self, conn: Conn, text: str) -> bool:
        """Handle one command line; False when the connection should close."""
        with self.lock:
            self.transcript.append((time.time(), conn.cid, text))
            upper = text.upper()
            for i, fault in enumerate(self._faults):
                if upper.startswith(fault[0]):
                    if fault[2] > 0:
                        fault[2] -= 1
                        continue
                    del self._faults[i]
                    fault[1](conn)
                    break
        words = text.split()
        cmd = words[0].upper()
        if cmd in ("EXIT", "QUIT"):
            return False
        if cmd == "VERSION":
            self._send(conn, f"{VERSION}\n".encode())
        elif cmd == "PRINT":
            xml = self.backend.xml().encode()
            self._reply(conn, len(xml), xml + b"\n")
        elif cmd == "TIMEOUT" and len(words) == 2 and words[1].isdigit():
            self._reply(conn, 0)
        elif cmd == "HELP":
            self._send(conn, HELP)
        elif cmd in ("READ", "WRITE"):
            return self._attr(conn, cmd, words[1:])
        elif cmd in ("OPEN", "CLOSE", "READBUF", "WRITEBUF", "GETTRIG", "SETTRIG", "SET"):
            return self._buffer(conn, cmd, words[1:])
        else:  # ZPRINT (no compressed context here) and anything the parser would not accept
            self._reply(conn, -errno.EINVAL)
        return True

    # ------------------------------------------------------------ attributes
    def _attr(self, conn: Conn, cmd: str, args: list[str]) -> bool:
        length = 0
        if cmd == "WRITE":
            if len(args) < 2 or not args[-1].isdigit():
                self._reply(conn, -errno.EINVAL)
                return True
            length = int(args[-1])
            args = args[:-1]
            payload = conn.read_exact(length)
            if payload is None:
                return False
        dev = self._device(args[0]) if args else None
        if dev is None:
            self._reply(conn, -errno.ENODEV)
            return True
        kind, rest = "device", args[1:]
        table: dict = dev.attrs
        if rest and rest[0].upper() in ("DEBUG", "BUFFER"):
            kind, rest = rest[0].lower(), rest[1:]
            table = dev.debug if kind == "debug" else dev.buffer_attrs
        elif rest and rest[0].upper() in ("INPUT", "OUTPUT"):
            chn: Channel | None = dev.channel(rest[1], rest[0].upper() == "OUTPUT") if len(rest) > 1 else None
            if chn is None:
                self._reply(conn, -errno.ENXIO)
                return True
            table, rest = chn.attrs, rest[2:]
            kind = f"{'out' if chn.output else 'in'}_{chn.id}"
        if len(rest) != 1:
            self._reply(conn, -errno.ENOSYS)  # all attributes at once: not served
            return True
        attr = table.get(rest[0])
        if attr is None:
            self._reply(conn, -errno.ENOENT)
            return True
        with self.lock:
            try:
                if cmd == "READ":
                    value = attr.get().encode()
                else:
                    if attr.set is None:
                        raise AttrError(errno.EACCES)
                    attr.set(payload.rstrip(b"\x00").decode("ascii", "replace"))
                    self.backend.attr_written(dev, f"{kind}/{attr.name}", payload.decode("ascii", "replace"))
            except AttrError as exc:
                self._reply(conn, -exc.code)
                return True
        if cmd == "READ":
            self._reply(conn, len(value), value + b"\n")
        else:
            self._reply(conn, length)
        return True

    # ------------------------------------------------------------ buffers
    def _buffer(self, conn: Conn, cmd: str, args: list[str]) -> bool:
        dev = self._device(args[0]) if args else None
        if dev is None:
            self._reply(conn, -errno.ENODEV)
            return True
        if cmd == "GETTRIG":
            self._reply(conn, 0)
            return True
        if cmd in ("SETTRIG", "SET"):
            self._reply(conn, 0)
            return True
        if cmd == "OPEN":
            try:
                samples, mask = int(args[1]), int(args[2], 16)
            except (IndexError, ValueError):
                self._reply(conn, -errno.EINVAL)
                return True
            cyclic = len(args) > 3 and args[3].upper() == "CYCLIC"
            words = (len(dev.channels) + 31) // 32
            if len(args[2]) != 8 * words or samples <= 0 or dev.id in conn.opened:
                self._reply(conn, -errno.EINVAL if dev.id not in conn.opened else -errno.EBUSY)
                return True
            with self.lock:
                ret = self.backend.open_buffer(conn, dev, samples, mask, cyclic)
                if ret == 0:
                    conn.opened[dev.id] = (samples, mask, cyclic)
            self._reply(conn, ret)
            return True
        if dev.id not in conn.opened:
            self._reply(conn, -errno.EBADF)
            return True
        samples, mask, _ = conn.opened[dev.id]
        if cmd == "CLOSE":
            with self.lock:
                ret = self.backend.close_buffer(conn, dev)
                conn.opened.pop(dev.id, None)
            self._reply(conn, ret)
            return True
        try:
            nbytes = int(args[1])
        except (IndexError, ValueError):
            self._reply(conn, -errno.EINVAL)
            return True
        if cmd == "WRITEBUF":
            self._reply(conn, 0)
            data = conn.read_exact(nbytes)
            if data is None:
                return False
            with self.lock:
                ret = self.backend.write_buffer(conn, dev, data)
            self._reply(conn, ret)
            return True
        out = self.backend.read_buffer(conn, dev, min(nbytes, samples * sample_size(dev, mask)))
        if isinstance(out, int):
            self._reply(conn, out)
            return True
        words = (len(dev.channels) + 31) // 32
        mask_hex = "".join(f"{(mask >> (32 * w)) & 0xFFFFFFFF:08x}" for w in reversed(range(words)))
        self._reply(conn, len(out), mask_hex.encode() + b"\n" + out)
        return True
