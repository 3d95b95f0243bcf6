"""Host driver: a Device behind the hwloop wire protocol on any pyserial URL.

`SerialDevice` speaks PROTOCOL.md over ``serial.serial_for_url``: a port path
(``/dev/ttyACM0``, ``serial:///dev/ttyUSB0?baud=115200``), ``socket://``,
``rfc2217://`` or ``loop://``. It guarantees that every value it returns is
the device's answer to exactly that input row:

- answers are matched by seq, checked for type, row count and finiteness;
  anything else (bad CRC, stale seq, duplicate) is dropped, never used. A
  CRC-valid but unusable answer (wrong n or type, non-finite) is asked again
  under a fresh seq for a stateless device; a stateful one may already have
  applied the input, so it raises `UnusableAnswer` (`NonFiniteAnswer`) and
  the caller resets and re-warms the device: no input is applied twice;
- a lost answer is re-requested with the SAME seq, so the device replays its
  stored answer instead of applying the input twice (exactly-once);
- up to ``window`` requests are in flight at once (a sliding window over the
  issue order, so every retried seq is still among the device's last
  ``window`` stored answers);
- a READY mid-run means the device rebooted: outstanding requests are re-sent
  with fresh seqs; for a stateful device the default is to raise
  `DeviceRebooted` (its memory is gone mid-sequence; the caller re-warms it),
  ``on_reboot=resend`` makes it only count ``reboots`` and log a warning;
- a vanished port (SerialException) is re-opened with backoff for up to
  ``reconnect`` seconds, re-handshaken, and the outstanding requests re-sent;
- every INFO carries this device object's host session (`serial_link`), so
  another host process's stored answers never answer this one.

URI parameters (hwloop's own; any other query parameter is passed through to
pyserial's URL handler, e.g. ``socket://host:port?logging=debug``):
``baud`` (115200), ``timeout`` s per answer (1.0), ``retries`` per request (8),
``window`` cap (0 = the device's), ``handshake`` s to wait for INFO_OK after
opening (10), ``reconnect`` s to keep re-opening a vanished port (10; 0 = off),
``on_reboot`` = ``raise`` | ``resend`` (stateful devices; default raise).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np
import serial

from hwloop.device import (
    BadDeviceParameterError,
    BaseDevice,
    DeviceRebooted,
    DeviceTimeout,
    NonFiniteAnswer,
    Param,
    UnusableAnswer,
    parse_params,
)
from hwloop.drivers import protocol as p
from hwloop.drivers.errors import DeviceFault, ProtocolError
from hwloop.drivers.serial_link import LinkStats, SerialLink, new_session

log = logging.getLogger(__name__)

_NON_FINITE = "non-finite values"

PARAMS: dict[str, Param] = {
    "baud": Param(int, 115200, "line rate of a real serial port (ignored by sockets and ptys)"),
    "timeout": Param(float, 1.0, "seconds to wait for one answer before re-sending it"),
    "retries": Param(int, 8, "re-sends of one request before giving up with DeviceTimeout"),
    "window": Param(int, 0, "cap on requests in flight (0 = what the device offers)"),
    "handshake": Param(float, 10.0, "seconds to wait for INFO_OK after opening (boot time)"),
    "reconnect": Param(float, 10.0, "seconds to keep re-opening a vanished port (0 = never)"),
    "on_reboot": Param(str, "raise", "stateful device rebooted mid-run: raise | resend"),
}


@dataclass
class _Req:
    """One request in flight; ``frame`` holds the exact bytes to re-send."""

    index: int
    kind: int
    body: bytes
    n: int = 0
    seq: int = 0
    frame: bytes = b""
    sent_at: float = 0.0
    attempts: int = 0
    done: bool = False
    result: np.ndarray | None = None


def split_uri(uri: str) -> tuple[str, dict[str, Any]]:
    """``(pyserial_url, hwloop_params)`` from a device URI.

    ``serial://PATH`` and bare paths become the path; other schemes keep
    the query parameters hwloop does not know, for pyserial's URL handler.
    """
    uri = uri.strip()
    where = f"device {uri!r}"
    if uri.lower().startswith("serial://"):
        uri = uri[len("serial://") :]
    if "://" not in uri:
        path, _, query = uri.partition("?")
        if not path:
            raise BadDeviceParameterError(f"{where}: no serial port path")
        return path, parse_params(query, PARAMS, where=where)
    parts = urlsplit(uri)
    mine, theirs = [], []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        (mine if key in PARAMS else theirs).append((key, value))
    params = parse_params(urlencode(mine), PARAMS, where=where)
    # built by hand: urlunsplit drops the "//" of an empty netloc (loop://)
    url = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{urlencode(theirs)}" if theirs else "")
    return url, params


class SerialDevice(SerialLink, BaseDevice):
    """A device on the far side of a byte stream that speaks PROTOCOL.md."""

    def __init__(
        self,
        url: str,
        *,
        baud: int = 115200,
        timeout: float = 1.0,
        retries: int = 8,
        window: int = 0,
        handshake: float = 10.0,
        reconnect: float = 10.0,
        on_reboot: str = "raise",
        opener: Callable[[], serial.SerialBase] | None = None,
    ) -> None:
        if timeout <= 0 or retries < 0 or window < 0 or handshake <= 0 or reconnect < 0:
            raise BadDeviceParameterError(
                f"device {url!r}: timeout/handshake must be > 0, retries/window/reconnect >= 0"
            )
        if on_reboot not in ("raise", "resend"):
            raise BadDeviceParameterError(f"device {url!r}: on_reboot must be 'raise' or 'resend'")
        self.url = url
        self.baud = baud
        self.timeout = timeout
        self.retries = retries
        self.window_cap = window
        self.handshake_s = handshake
        self.reconnect_s = reconnect
        self.on_reboot = on_reboot
        self.link = LinkStats()
        self.window = 1
        self._opener = opener or self._open_port
        self._seq = 0
        self._splitter = p.FrameSplitter()
        self._generation = 0
        self.session = new_session()
        self.sessions = True
        self._port: serial.SerialBase | None = None
        self._port = self._connect_with_retry(first=True)
        try:
            hello = self._handshake(self.handshake_s)
        except BaseException:
            self._drop_port()
            raise
        super().__init__(self._info_from(hello))
        self._set_window(hello)
        self._reset_first = self.info.stateful and not self.sessions
        log.info(
            "%s: %s %d->%d, max_batch %d, window %d, firmware %r",
            url,
            hello.name,
            hello.in_dim,
            hello.out_dim,
            self.info.max_batch,
            self.window,
            hello.firmware,
        )

    # ------------------------------------------------------------ exchange
    def _rebooted(self, outstanding: list[_Req] | None) -> None:
        self.link.reboots += 1
        if self.info.stateful and self.on_reboot == "raise":
            raise DeviceRebooted(
                f"{self.url}: stateful device {self.info.name!r} rebooted mid-run (READY); "
                "its memory is cleared - reset() and re-warm it"
            )
        log.warning(
            "%s: device rebooted (READY #%d); re-sending %d request(s) with fresh seqs",
            self.url,
            self.link.reboots,
            len(outstanding or []),
        )

    def _send(self, req: _Req, *, fresh: bool) -> None:
        if fresh or not req.frame:
            req.seq = self._next_seq()
            header = bytes([p.VERSION, req.kind]) + req.seq.to_bytes(2, "little")
            req.frame = p.encode_frame(header + req.body)
        req.sent_at = time.monotonic()
        self._write(req.frame)

    def _exchange(self, reqs: list[_Req]) -> None:
        """Drive ``reqs`` to completion (see `_pipeline`)."""
        for _ in self._pipeline(reqs):
            pass

    def _pipeline(self, reqs: list[_Req]) -> Iterator[_Req]:
        """Drive ``reqs`` with a sliding window, retries and checks; yield each
        request once it and every request before it are answered.

        The window is refilled before a request is yielded, so the link stays
        busy while the caller handles the answer (e.g. commits it to a log).
        """
        inflight: dict[int, _Req] = {}
        next_i = 0
        lo = 0
        gen = self._generation
        while True:
            ready = []
            while lo < len(reqs) and reqs[lo].done:
                ready.append(reqs[lo])
                lo += 1
            while next_i < len(reqs) and next_i - lo < self.window and gen == self._generation:
                req = reqs[next_i]
                self._send(req, fresh=True)
                self.link.requests += 1
                inflight[req.seq] = req
                next_i += 1
            yield from ready
            if gen != self._generation:  # reconnected: re-send everything outstanding, same seqs
                gen = self._generation
                for req in sorted(inflight.values(), key=lambda r: r.index):
                    self.link.resends += 1
                    self._send(req, fresh=False)
                continue
            if lo >= len(reqs):
                return
            deadline = min(r.sent_at for r in inflight.values()) + self.timeout
            payloads = self._read_payloads(deadline)
            if gen != self._generation:
                continue
            for payload in payloads:
                self._handle(payload, inflight)
            now = time.monotonic()
            for req in sorted(inflight.values(), key=lambda r: r.index):
                if now - req.sent_at >= self.timeout:
                    self.link.timeouts += 1
                    self._retry(req, inflight, fresh=False, why="timeout")

    def _retry(self, req: _Req, inflight: dict[int, _Req], *, fresh: bool, why: str) -> None:
        req.attempts += 1
        if req.attempts > self.retries:
            kind = {p.QUERY: "QUERY", p.RESET: "RESET"}.get(req.kind, hex(req.kind))
            raise DeviceTimeout(
                f"{self.url}: no valid answer to {kind} seq {req.seq} after {self.retries} "
                f"re-send(s) (last problem: {why}; timeout {self.timeout:g} s)"
            )
        self.link.resends += 1
        log.debug("%s: re-sending seq %d (%s)", self.url, req.seq, why)
        if fresh:
            inflight.pop(req.seq, None)
        self._send(req, fresh=fresh)
        inflight[req.seq] = req

    def _handle(self, payload: bytes, inflight: dict[int, _Req]) -> None:
        try:
            msg = p.decode_message(payload, dim=self.info.out_dim)
        except ProtocolError as exc:
            self.link.rejected += 1
            log.debug("%s: rejected a frame: %s", self.url, exc)
            return
        if isinstance(msg, p.Ready):
            outstanding = sorted(inflight.values(), key=lambda r: r.index)
            self._rebooted(outstanding)
            inflight.clear()
            for req in outstanding:
                self._send(req, fresh=True)
                self.link.resends += 1
                inflight[req.seq] = req
            return
        if isinstance(msg, p.Error):
            if msg.seq == p.SEQ_UNKNOWN:  # our request arrived damaged; the oldest is the best guess
                if msg.code == p.ERR_BAD_FRAME and inflight:
                    oldest = min(inflight.values(), key=lambda r: r.sent_at)
                    self._retry(oldest, inflight, fresh=False, why="device saw a bad frame")
                return
            req = inflight.get(msg.seq)
            if req is None:
                self.link.stale += 1
                return
            req.done = True
            del inflight[msg.seq]
            name = p.ERROR_NAMES.get(msg.code, "unknown error")
            raise DeviceFault(
                msg.code,
                msg.message,
                f"{self.url}: device answered error {msg.code} ({name}) to seq {msg.seq}: {msg.message}",
            )
        req = inflight.get(msg.seq)
        if req is None:
            self.link.stale += 1  # a duplicate or an answer to a request already re-sent
            return
        problem = self._check(req, msg)
        if problem:
            self.link.rejected += 1
            if req.kind == p.QUERY and self.info.stateful:
                self._unusable(req, msg, problem)
            # the device would replay the same stored answer for this seq: ask under a fresh one
            self._retry(req, inflight, fresh=True, why=problem)
            return
        req.done = True
        del inflight[msg.seq]
        # answers come in order: anything sent before this request and still open was lost
        for other in sorted(inflight.values(), key=lambda r: r.index):
            if other.sent_at <= req.sent_at:
                self._retry(other, inflight, fresh=False, why="answer lost (a later one arrived)")

    def _unusable(self, req: _Req, msg: p.Message, problem: str) -> None:
        """A stateful device may have applied the input already: asking again under a
        fresh seq would apply it twice, so the caller must reset and re-warm it."""
        cls = NonFiniteAnswer if problem == _NON_FINITE else UnusableAnswer
        raise cls(
            f"{self.url}: stateful device {self.info.name!r} answered QUERY seq {msg.seq} with "
            f"{problem}; it may have applied the input, so it is not asked again - "
            "reset() it and re-warm it before querying on"
        )

    def _check(self, req: _Req, msg: p.Message) -> str:
        """Why ``msg`` is not a usable answer to ``req`` ('' if it is)."""
        if req.kind == p.RESET:
            return "" if isinstance(msg, p.ResetOk) else f"type 0x{msg.type:02x} for RESET"
        if not isinstance(msg, p.QueryOk):
            return f"type 0x{msg.type:02x} for QUERY"
        if msg.n != req.n:
            return f"n={msg.n} for a QUERY of n={req.n}"
        if not np.all(np.isfinite(msg.values)):
            return _NON_FINITE
        req.result = msg.rows(self.info.out_dim)
        return ""

    # ------------------------------------------------------------ Device API
    def _query_chunks(self, chunks: list[np.ndarray]) -> Iterator[np.ndarray]:
        """Keep up to ``window`` chunks in flight; yield each answer in order as it lands."""
        if self._reset_first:  # a device without sessions may hold another host's state
            log.info("%s: resetting the stateful device before its first query", self.url)
            self._reset()
        reqs = [
            _Req(
                index=i, kind=p.QUERY, body=len(c).to_bytes(2, "little") + c.astype("<f4").tobytes(), n=len(c)
            )
            for i, c in enumerate(chunks)
        ]
        for req in self._pipeline(reqs):
            assert req.result is not None
            yield req.result

    def _query_batch(self, x: np.ndarray) -> np.ndarray:
        """One chunk, stop-and-wait (``_query_chunks`` normally bypasses this)."""
        return next(iter(self._query_chunks([x])))

    def _reset(self) -> None:
        self._exchange([_Req(index=0, kind=p.RESET, body=b"")])
        self._reset_first = False

    def _close(self) -> None:
        self._drop_port()


def open_serial(uri: str) -> SerialDevice:
    """Entry-point factory for ``serial``, ``socket``, ``rfc2217``, ``loop`` URIs."""
    url, params = split_uri(uri)
    return SerialDevice(url, **params)


def _check(uri: str) -> None:
    """The URI's path and parameters, checked without opening the port."""
    split_uri(uri)


open_serial.check = _check  # type: ignore[attr-defined]
open_serial.parameters = lambda uri: dict(PARAMS)  # type: ignore[attr-defined]


def _describe() -> list[tuple[str, str]]:
    return [
        ("serial:///dev/ttyUSB0", "the hwloop wire protocol on a serial port (also /dev/..., COM3)"),
        ("socket://HOST:PORT", "the same over raw TCP (hwloop serve --listen, ser2net)"),
        ("rfc2217://HOST:PORT", "the same through an RFC 2217 serial server"),
        ("loop://", "pyserial's loopback (tests only: it echoes)"),
    ]


open_serial.describe = _describe  # type: ignore[attr-defined]
