"""A small SCPI-over-TCP server: the transport half of a fake instrument.

Each instrument listens on one TCP port (a VISA ``::SOCKET`` resource) and
serves any number of connections at once, one thread each: a driver's main
session and the interlock's second connection both get through. A command is
a line ending in ``\\n``; an IEEE 488.2 definite-length block (``#<d><len>``)
inside it is read by its length, so binary ``\\n`` bytes never end a command.
A command ending in ``?`` gets one reply line (or a block and ``\\n``).

Headers are matched against specs written the way manuals write them,
``[SOURce]:POWer[:LEVel][:IMMediate][:AMPLitude]``: each node in its short or
long form, optional nodes in brackets, a numeric suffix allowed where the
spec says ``<n>`` (``OUTPut<n>``). Unknown headers queue -113.

What the server records for tests and faults:

- ``transcript``: every command's raw bytes, as received, with the time and
  the connection number;
- ``late_reply(seconds)``: the next reply is held back that long, then sent on
  the same connection (the fault that shifts a careless host's answers by one);
- ``drop_links()``: every open connection is closed at once (a lost link);
  new connections are accepted as before;
- ``refuse(seconds, connections)``: new connections are closed as soon as
  they are accepted, for that long or that many (a LAN stack coming back up);
- ``fault_on(header, action)``: either of those (or anything) at a chosen
  command, once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

MAX_ERRORS = 10
Handler = Callable[[str, bytes | None], "str | bytes | None"]


class ScpiError(Exception):
    """A command the instrument refuses: queued as ``code,"text"``, no reply."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code},{text}")
        self.code = code
        self.text = text


def _node_regex(node: str) -> str:
    suffix = node.endswith("<n>")
    name = node[:-3] if suffix else node
    short = "".join(c for c in name if not c.islower()).upper()
    alts = sorted({short, name.upper()}, key=len, reverse=True)
    core = "(?:" + "|".join(re.escape(a) for a in alts) + ")"
    return core + (r"\d*" if suffix else "")


def compile_header(spec: str) -> re.Pattern[str]:
    """A regex for a manual-style header spec; ``*IDN?``-style common commands match literally."""
    query = spec.endswith("?")
    body = spec[:-1] if query else spec
    if body.startswith("*"):
        return re.compile(re.escape(body.upper()) + (r"\?" if query else "") + "$")
    parts = re.findall(r"\[:?([^\]]+)\]|:?([^:\[\]]+)", body)
    out = ":?"
    first = True
    for optional, required in parts:
        node = optional or required
        piece = ("" if first else ":") + _node_regex(node.lstrip(":"))
        out += f"(?:{piece})?" if optional else piece
        first = False
    return re.compile(out + (r"\?" if query else "") + "$")


@dataclass
class Command:
    """One received command: its header, text argument, block payload and raw bytes."""

    header: str
    arg: str
    block: bytes | None
    raw: bytes


def split_command(raw: bytes) -> Command:
    """Header and argument of one command line (without its ``\\n``); a block is cut out whole."""
    block = None
    text = raw
    m = re.search(rb"#([1-9])", raw)
    if m:
        digits = int(m.group(1))
        start = m.end()
        length = int(raw[start : start + digits])
        block = raw[start + digits : start + digits + length]
        text = raw[: m.start()]
    line = text.decode("ascii", "replace").strip()
    header, _, arg = line.partition(" ")
    return Command(header.upper(), arg.strip().rstrip(","), block, raw)


def _frame_end(buf: bytearray) -> int:
    """Index just past the next complete command in ``buf`` (its ``\\n``), or -1."""
    i = 0
    while i < len(buf):
        c = buf[i]
        if c == 0x23 and i + 1 < len(buf) and 0x31 <= buf[i + 1] <= 0x39:  # '#1'..'#9': a block
            digits = buf[i + 1] - 0x30
            if len(buf) < i + 2 + digits:
                return -1
            length = int(bytes(buf[i + 2 : i + 2 + digits]))
            i += 2 + digits + length
            continue
        if c == 0x0A:
            return i + 1
        i += 1
    return -1


def ieee_block(payload: bytes) -> bytes:
    """``#<d><len><payload>``."""
    length = str(len(payload)).encode()
    return b"#" + str(len(length)).encode() + length + payload


class ScpiServer:
    """One instrument on a TCP port: commands dispatched to ``handlers`` in order of spec."""

    def __init__(self, name: str, idn: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self.idn = idn
        self.lock = threading.RLock()  # instrument state: one command at a time across connections
        self.errors: list[tuple[int, str]] = []
        self.transcript: list[tuple[float, int, bytes]] = []
        self._handlers: list[tuple[re.Pattern[str], Handler]] = []
        self._late: float = 0.0
        self._faults: list[tuple[str, Callable[[], None]]] = []
        self._conns: dict[int, socket.socket] = {}
        self._next_conn = 0
        self._refuse_until = 0.0
        self._refuse_count = 0
        self._stop = threading.Event()
        self._sock = socket.create_server((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self.on("*IDN?", lambda c: self.idn)
        self.on("*CLS", lambda c: self.errors.clear())
        self.on("*OPC?", lambda c: "1")
        self.on("SYSTem:ERRor[:NEXT]?", lambda c: self._pop_error())
        self._thread = threading.Thread(target=self._accept, name=f"fake-{name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ setup
    def on(self, spec: str, handler: Callable[[Command], str | bytes | None]) -> None:
        self._handlers.append((compile_header(spec), handler))  # type: ignore[arg-type]

    @property
    def resource(self) -> str:
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    def push_error(self, code: int, text: str) -> None:
        with self.lock:
            if len(self.errors) >= MAX_ERRORS:
                self.errors[-1] = (-350, "Queue overflow")
            else:
                self.errors.append((code, text))

    def _pop_error(self) -> str:
        if not self.errors:
            return '0,"No error"'
        code, text = self.errors.pop(0)
        return f'{code},"{text}"'

    # ------------------------------------------------------------ faults
    def late_reply(self, seconds: float) -> None:
        """Hold the next reply back for ``seconds``, then send it on its connection."""
        self._late = float(seconds)

    def fault_on(self, header: str, action: Callable[[], None]) -> None:
        """Run ``action`` (e.g. ``drop_links``, a late reply) once, when a command whose text
        starts with ``header`` (``OUTP:STAT ON``) arrives, before it is handled: a fault at a chosen step."""
        self._faults.append((header.upper(), action))

    def drop_links(self) -> None:
        """Close every open connection at once, as a pulled cable or a crashed LAN stack would."""
        with self.lock:
            conns = list(self._conns.values())
            self._conns.clear()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def refuse(self, seconds: float = 0.0, connections: int = 0) -> None:
        """Close new connections as soon as they are accepted, for ``seconds`` or the next ``connections``."""
        self._refuse_until = time.monotonic() + float(seconds)
        self._refuse_count = int(connections)

    def commands(self) -> list[bytes]:
        """Every command received so far, raw, in order."""
        return [raw for _, _, raw in self.transcript]

    def close(self) -> None:
        self._stop.set()
        self.drop_links()
        self._sock.close()

    # ------------------------------------------------------------ serving
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if time.monotonic() < self._refuse_until or self._refuse_count > 0:
                self._refuse_count -= 1
                conn.close()
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                cid = self._next_conn
                self._next_conn += 1
                self._conns[cid] = conn
            threading.Thread(target=self._serve, args=(cid, conn), daemon=True).start()

    def _serve(self, cid: int, conn: socket.socket) -> None:
        buf = bytearray()
        try:
            while not self._stop.is_set():
                end = _frame_end(buf)
                if end < 0:
                    data = conn.recv(1 << 16)
                    if not data:
                        return
                    buf.extend(data)
                    continue
                raw = bytes(buf[:end])
                del buf[:end]
                reply = self._dispatch(cid, raw)
                if reply is not None:
                    self._send(conn, reply)
        except OSError:
            return
        finally:
            with self.lock:
                self._conns.pop(cid, None)
            conn.close()

    def _send(self, conn: socket.socket, reply: bytes) -> None:
        delay, self._late = self._late, 0.0
        if not delay:
            conn.sendall(reply)
            return

        def later() -> None:
            time.sleep(delay)
            with contextlib.suppress(OSError):  # the host closed that connection: the reply reaches no one
                conn.sendall(reply)

        threading.Thread(target=later, daemon=True).start()

    def _dispatch(self, cid: int, raw: bytes) -> bytes | None:
        with self.lock:
            self.transcript.append((time.time(), cid, raw))
            cmd = split_command(raw.rstrip(b"\n"))
            if not cmd.header:
                return None
            text = raw.decode("ascii", "replace").upper()
            for i, (prefix, action) in enumerate(self._faults):
                if text.startswith(prefix):
                    del self._faults[i]
                    action()
                    break
            for pattern, handler in self._handlers:
                if pattern.match(cmd.header):
                    try:
                        out = handler(cmd)  # type: ignore[arg-type]
                    except ScpiError as exc:
                        self.push_error(exc.code, exc.text)
                        return None
                    except ValueError:
                        self.push_error(-222, "Data out of range")
                        return None
                    if not cmd.header.endswith("?"):
                        return None
                    if isinstance(out, bytes):
                        return ieee_block(out) + b"\n"
                    return f"{out}\n".encode()
            self.push_error(-113, "Undefined header")
            return None
