"""One instrument's SCPI session over PyVISA (pyvisa-py): the transport, kept apart from the instrument.

What a session guarantees, because real benches taught it (docs/bench.md):

- every reply is read as the answer to the command just written, with a
  timeout; a timeout or a malformed reply marks the session out of step, and
  before the next command it is cleared and re-identified (`recover`): the
  resource is closed and opened again (a late reply then arrives on a dead
  connection, never as the answer to a later query), cleared, drained, and
  ``*IDN?`` must give the identity it gave first;
- IEEE 488.2 definite-length blocks are written by PyVISA's
  ``write_binary_values`` (it writes the header: no hand-made double header)
  and read by length, then the instrument's ``\\n`` terminator is checked;
- ``opc`` waits for ``*OPC?`` -> 1; ``errors`` drains ``SYST:ERR?`` to
  ``0,"No error"`` (at most 32 entries, -350 overflow included);
- ``busy_since``/``deadline``/``expected_s`` say whether an I/O call is
  running, until when it may, and how long it should take, for the
  interlock's watchdog on another thread;
- a closed connection is recognised as such, not as a timeout: pyvisa-py
  keeps polling a socket whose peer has closed until its timeout runs out,
  so `check_link` (the watchdog's, every few tens of milliseconds) peeks at
  the socket of a busy session; at end of file it marks the link lost and
  closes the socket, which ends the blocked read at once.

A lost link (the peer closed, a write failed) raises `DeviceDisconnected`,
a late reply `DeviceTimeout`; both leave the session out of step.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hwloop.device import DeviceDisconnected, DeviceError, DeviceTimeout

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

BLOCK_RATE = 10e6  # bytes/s a block transfer is allowed at least, on top of the timeout
MAX_ERRORS = 32


def resource_manager() -> Any:
    """PyVISA's resource manager on the pure-Python backend (pyvisa-py)."""
    import pyvisa

    return pyvisa.ResourceManager("@py")


class ScpiSession:
    """A message-based VISA resource that never attributes a reply to the wrong query."""

    def __init__(self, resource: str, *, name: str, timeout_s: float, rm: Any = None) -> None:
        self.resource = resource
        self.name = name
        self.timeout_s = float(timeout_s)
        self._rm = rm if rm is not None else resource_manager()
        self._res: Any = None
        self.idn = ""
        self.in_step = False
        self.busy_since: float | None = None
        self.deadline: float | None = None
        self.expected_s = 0.0
        self.lost = ""
        self.recoveries = 0
        self._lock = threading.Lock()
        self._open()
        self.idn = self.query("*IDN?")
        self.in_step = True

    # ------------------------------------------------------------ transport
    def _open(self) -> None:
        try:
            res = self._rm.open_resource(
                self.resource, open_timeout=int(self.timeout_s * 1000) + 1000, read_termination="\n"
            )
        except Exception as exc:  # pyvisa raises plain Exception for a refused connection
            raise DeviceDisconnected(f"{self.name}: cannot open {self.resource}: {exc}") from None
        res.write_termination = "\n"
        res.timeout = int(self.timeout_s * 1000)
        _no_delay(self._rm, res)
        self._res = res
        self._sock = _socket_of(self._rm, res)
        self.lost = ""

    def _io(self, what: str, timeout: float, call: Callable[[], Any], expected_s: float = 0.0) -> Any:
        """Run one I/O call under the timeout; any failure leaves the session out of step."""
        import pyvisa

        if not self.in_step and self.idn:
            self.recover()
        with self._lock:
            self.expected_s = expected_s
            self.busy_since = time.monotonic()
            self.deadline = self.busy_since + timeout
            self._res.timeout = max(1, int(timeout * 1000))
            try:
                out = call()
                if self.lost:  # the watchdog closed the socket under a call that then returned
                    raise DeviceDisconnected(f"{self.name}: link lost during {what!r}: {self.lost}")
                return out
            except pyvisa.errors.VisaIOError as exc:
                self.in_step = False
                if self.lost:
                    raise DeviceDisconnected(f"{self.name}: link lost during {what!r}: {self.lost}") from None
                if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                    raise DeviceTimeout(f"{self.name}: no reply to {what!r} within {timeout:g} s") from None
                raise DeviceDisconnected(f"{self.name}: I/O error on {what!r}: {exc.description}") from None
            except (OSError, AttributeError, ValueError) as exc:  # a closed socket: pyvisa-py sets it to None
                self.in_step = False
                if isinstance(exc, ValueError) and not self.lost:
                    raise
                raise DeviceDisconnected(
                    f"{self.name}: link lost during {what!r}: {self.lost or exc}"
                ) from None
            except BaseException:
                self.in_step = False
                raise
            finally:
                self.busy_since = self.deadline = None
                self.expected_s = 0.0

    def check_link(self) -> str:
        """If a call is running on a socket whose peer has closed: mark the link lost, close the
        socket (the blocked read then ends) and say so; else "" (for the watchdog thread)."""
        sock = self._sock
        if self.busy_since is None or sock is None or self.lost:
            return ""
        why = peer_closed(sock)
        if why:
            self.lost = f"{self.resource} {why}"
            log.warning("%s: %s", self.name, self.lost)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        return self.lost

    # ------------------------------------------------------------ commands
    def write(self, cmd: str) -> None:
        self._io(cmd, self.timeout_s, lambda: self._res.write(cmd))

    def query(self, cmd: str, timeout: float | None = None, expected_s: float = 0.0) -> str:
        def call() -> str:
            self._res.write(cmd)
            return self._res.read().strip()

        return self._io(cmd, timeout or self.timeout_s, call, expected_s)

    def write_block(self, prefix: str, payload: bytes, timeout: float | None = None) -> None:
        """``prefix`` then the block ``#<d><len><payload>`` then ``\\n``, header by PyVISA."""
        data = np.frombuffer(payload, np.uint8)
        t = (timeout or self.timeout_s) + len(payload) / BLOCK_RATE
        self._io(prefix, t, lambda: self._res.write_binary_values(prefix, data, datatype="B"))

    def query_block(self, cmd: str, nbytes: int, timeout: float | None = None) -> bytes:
        """The block answering ``cmd``; its length must be ``nbytes`` and a ``\\n`` must follow it."""
        t = (timeout or self.timeout_s) + nbytes / BLOCK_RATE

        def call() -> bytes:
            self._res.write(cmd)
            head = self._res.read_bytes(2)
            if head[:1] != b"#" or not head[1:2].isdigit() or head[1:2] == b"0":
                raise _OutOfStep(f"{self.name}: {cmd!r} answered {head!r}, not a definite-length block")
            digits = int(head[1:2])
            length = int(self._res.read_bytes(digits))
            if length != nbytes:
                raise _OutOfStep(f"{self.name}: {cmd!r} answered a block of {length} bytes, not {nbytes}")
            body = self._res.read_bytes(length)
            end = self._res.read_bytes(1)
            if end != b"\n":
                raise _OutOfStep(f"{self.name}: block after {cmd!r} ended with {end!r}, not '\\n'")
            return bytes(body)

        try:
            return self._io(cmd, t, call)
        except _OutOfStep as exc:
            raise DeviceError(str(exc)) from None

    def query_float(self, cmd: str) -> float:
        reply = self.query(cmd)
        try:
            return float(reply)
        except ValueError:
            self.in_step = False
            raise DeviceError(f"{self.name}: {cmd!r} answered {reply!r}, not a number") from None

    def query_bool(self, cmd: str) -> bool:
        reply = self.query(cmd)
        if reply not in ("0", "1"):
            self.in_step = False
            raise DeviceError(f"{self.name}: {cmd!r} answered {reply!r}, not 0 or 1")
        return reply == "1"

    def opc(self, timeout: float | None = None, expected_s: float = 0.0) -> None:
        reply = self.query("*OPC?", timeout, expected_s)
        if reply != "1":
            self.in_step = False
            raise DeviceError(f"{self.name}: *OPC? answered {reply!r}, not 1")

    def errors(self) -> list[tuple[int, str]]:
        """Drain the error queue; [] when it held none."""
        found: list[tuple[int, str]] = []
        for _ in range(MAX_ERRORS):
            reply = self.query("SYST:ERR?")
            code_s, _, text = reply.partition(",")
            try:
                code = int(code_s)
            except ValueError:
                self.in_step = False
                raise DeviceError(f"{self.name}: SYST:ERR? answered {reply!r}") from None
            if code == 0:
                return found
            found.append((code, text.strip().strip('"')))
        return found

    # ------------------------------------------------------------ recovery
    def recover(self) -> None:
        """Reconnect, clear, drain and re-identify; a different or silent instrument raises."""
        self.recoveries += 1
        log.warning("%s: out of step: clearing and re-identifying the session", self.name)
        self._drop()
        self._open()
        try:
            self._res.clear()  # viClear; pyvisa-py also discards whatever already arrived
        except Exception as exc:
            log.debug("%s: clear failed: %s", self.name, exc)
        self.in_step = True
        idn = self.idn
        self.idn = ""  # no recursion into recover() while re-identifying
        try:
            again = self.query("*IDN?")
        finally:
            self.idn = idn
        if again != idn:
            self.in_step = False
            raise DeviceError(f"{self.name}: after recovery *IDN? answered {again!r}, expected {idn!r}")
        self.write("*CLS")

    def _drop(self) -> None:
        res, self._res = self._res, None
        if res is not None:
            try:
                res.close()
            except Exception as exc:
                log.debug("%s: close failed: %s", self.name, exc)

    def close(self) -> None:
        self._drop()
        self.in_step = False


def _no_delay(rm: Any, res: Any) -> None:
    """TCP_NODELAY on a SOCKET resource: without it, a write after a write waits for the peer's
    delayed ACK (about 40 ms on Linux). pyvisa-py 0.8 maps VI_ATTR_TCPIP_NODELAY's setter to a
    no-op, so the option is set on its socket directly when there is one."""
    try:
        sock = rm.visalib.sessions[res.session].interface
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, KeyError, OSError, TypeError) as exc:
        log.debug("TCP_NODELAY not set on %s: %s", res, exc)


class _OutOfStep(Exception):
    """A reply that cannot be the answer to the command just written."""


def _socket_of(rm: Any, res: Any) -> socket.socket | None:
    """The TCP socket under a pyvisa-py SOCKET resource, or None (another kind of resource)."""
    try:
        sock = rm.visalib.sessions[res.session].interface
    except (AttributeError, KeyError, TypeError):
        return None
    return sock if isinstance(sock, socket.socket) else None


def peer_closed(sock: socket.socket) -> str:
    """ "closed the connection" / "reset the connection" when the peer has, else "" (never blocks)."""
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return ""
    except ConnectionResetError:
        return "reset the connection"
    except OSError as exc:
        return f"socket error: {exc}"
    return "" if data else "closed the connection"


def _await_reply(sock: socket.socket | None, timeout_s: float) -> None:
    """Wait until a reply starts arriving; a peer that closes is `DeviceDisconnected` at once."""
    if sock is None:
        return
    t_end = time.monotonic() + timeout_s
    while True:
        left = t_end - time.monotonic()
        if left <= 0:
            raise DeviceTimeout(f"no reply within {timeout_s:g} s")
        readable, _, _ = select.select([sock], [], [], min(left, 0.05))
        if readable:
            why = peer_closed(sock)
            if why:
                raise DeviceDisconnected(f"the instrument {why}")
            return


def quick_command(rm: Any, resource: str, commands: list[str], query: str, timeout_s: float) -> str:
    """A second, short-lived connection: write ``commands``, answer ``query``, close (the interlock).

    A peer that closes the connection is an error at once, not after the timeout."""
    try:
        res = rm.open_resource(resource, open_timeout=int(timeout_s * 1000), read_termination="\n")
    except Exception as exc:  # pyvisa raises plain Exception for a refused connection
        raise DeviceDisconnected(f"cannot open {resource}: {exc}") from None
    try:
        res.write_termination = "\n"
        res.timeout = int(timeout_s * 1000)
        _no_delay(rm, res)
        for cmd in commands:
            res.write(cmd)
        res.write(query)
        _await_reply(_socket_of(rm, res), timeout_s)
        return res.read().strip()
    finally:
        with contextlib.suppress(Exception):
            res.close()
