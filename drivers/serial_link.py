"""The byte-stream side of `SerialDevice`: port, reconnects, handshake, host session.

`SerialLink` is a mixin holding what happens below the request pipeline:
opening the port (and re-opening it with backoff after it vanished), reading
CRC-checked payloads, and the INFO handshake with backoff (no fixed sleep
after opening; READY frames are ignored while booting). The host session of
PROTOCOL.md amendment 1 lives here: a random non-zero u32 picked once per
`SerialDevice` and sent in every INFO, including those after a reconnect,
so a resend after a reconnect still reaches the device's stored answers
while another host process never does. A device that answers ERROR 4 to it
gets the empty INFO instead (see `_no_sessions`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from hwloop.device import DeviceDisconnected, DeviceError, DeviceInfo, DeviceTimeout
from hwloop.drivers import protocol as p
from hwloop.drivers.errors import DeviceFault, ProtocolError

log = logging.getLogger(__name__)

_READ_SLICE_S = 0.02  # the port's read timeout: how often deadlines are checked


def new_session() -> int:
    """A random non-zero u32: one host session's name on the wire."""
    return secrets.randbelow(0xFFFFFFFF) + 1


@dataclass
class LinkStats:
    """What the link had to repair; all zero on a clean line."""

    requests: int = 0
    resends: int = 0
    timeouts: int = 0
    bad_frames: int = 0
    rejected: int = 0
    stale: int = 0
    reboots: int = 0
    reconnects: int = 0


class SerialLink:
    """Port, reconnect and handshake for `SerialDevice` (which sets these attributes)."""

    url: str
    baud: int
    window: int
    window_cap: int
    reconnect_s: float
    link: LinkStats
    info: DeviceInfo
    session: int
    sessions: bool  # False once the device refused an INFO with a session
    _opener: Callable[[], serial.SerialBase]
    _port: serial.SerialBase | None
    _splitter: p.FrameSplitter
    _seq: int
    _generation: int

    def _rebooted(self, outstanding: Any) -> None:  # pragma: no cover - SerialDevice implements it
        raise NotImplementedError

    # ------------------------------------------------------------ transport
    def _open_port(self) -> serial.SerialBase:
        kwargs: dict[str, Any] = {"baudrate": self.baud, "timeout": _READ_SLICE_S, "write_timeout": 5.0}
        if self.url.startswith("rfc2217://"):  # pyserial's RFC 2217 client refuses a write timeout
            del kwargs["write_timeout"]
        if "://" not in self.url:
            kwargs["exclusive"] = True
        return serial.serial_for_url(self.url, **kwargs)

    def _connect_with_retry(self, *, first: bool) -> serial.SerialBase:
        """Open the port; after a disconnect, keep trying with backoff."""
        limit = 0.0 if first else self.reconnect_s
        deadline = time.monotonic() + limit
        delay = 0.05
        while True:
            try:
                port = self._opener()
                self._splitter.clear()
                return port
            except (serial.SerialException, OSError, ValueError) as exc:
                if time.monotonic() + delay > deadline:
                    what = "cannot open" if first else f"lost and could not re-open within {limit:g} s"
                    raise DeviceDisconnected(f"{self.url}: {what}: {exc}") from None
                log.debug("re-open of %s failed (%s); retrying in %.2f s", self.url, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _drop_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception as exc:  # closing a vanished port may fail; nothing to save
                log.debug("closing %s: %s", self.url, exc)

    def _reconnect(self, exc: Exception) -> None:
        """The port vanished: re-open, re-handshake, check it is the same device."""
        log.warning("%s: link lost (%s); reconnecting for up to %g s", self.url, exc, self.reconnect_s)
        self._drop_port()
        if self.reconnect_s <= 0:
            raise DeviceDisconnected(f"{self.url}: link lost: {exc}") from None
        deadline = time.monotonic() + self.reconnect_s
        while True:
            self._port = self._connect_with_retry(first=False)
            try:
                hello = self._handshake(max(0.5, deadline - time.monotonic()), reconnecting=True)
                break
            except (DeviceTimeout, DeviceDisconnected):
                self._drop_port()
                if time.monotonic() >= deadline:
                    raise DeviceDisconnected(
                        f"{self.url}: link lost and the device did not answer again within "
                        f"{self.reconnect_s:g} s"
                    ) from None
        new = self._info_from(hello)
        if (new.in_dim, new.out_dim, new.low, new.high, new.stateful) != (
            self.info.in_dim,
            self.info.out_dim,
            self.info.low,
            self.info.high,
            self.info.stateful,
        ):
            self._drop_port()
            raise DeviceError(f"{self.url}: a different device answered after reconnecting ({new.name})")
        self._set_window(hello)
        self.link.reconnects += 1
        self._generation += 1
        log.info("%s: reconnected", self.url)

    def _write(self, frame: bytes) -> None:
        if self._port is None:
            raise DeviceDisconnected(f"{self.url}: port is not open")
        try:
            self._port.write(frame)
        except (serial.SerialException, OSError) as exc:
            self._reconnect(exc)

    def _read_payloads(self, until: float) -> list[bytes]:
        """CRC-valid payloads that arrive before ``until`` (at least one if any)."""
        while True:
            if self._port is None:
                raise DeviceDisconnected(f"{self.url}: port is not open")
            try:
                data = self._port.read(1)
                if data:
                    waiting = self._port.in_waiting
                    if waiting:
                        data += self._port.read(waiting)
            except (serial.SerialException, OSError) as exc:
                self._reconnect(exc)
                return []
            out = []
            for block in self._splitter.feed(data):
                try:
                    out.append(p.decode_frame(block))
                except ProtocolError as e:
                    self.link.bad_frames += 1
                    log.debug("%s: dropped a frame: %s", self.url, e)
            if out or time.monotonic() >= until:
                return out

    # ------------------------------------------------------------ handshake
    def _no_sessions(self) -> None:
        """The device answered ERROR 4 to an INFO with a session: fall back to the empty INFO."""
        self.sessions = False
        # Its stored answers are keyed by seq and bytes only: leave the seq range an
        # earlier host session used, so its stored RESET or QUERY cannot answer ours.
        self._seq = secrets.randbelow(p.SEQ_MAX)
        log.warning(
            "%s: the device does not know host sessions (PROTOCOL.md amendment 1); cross-session "
            "safety cannot be relied on: a stored answer of an earlier host process could answer "
            "this one (a stateful device is reset before its first query)",
            self.url,
        )

    def _next_seq(self) -> int:
        self._seq = p.next_seq(self._seq)
        return self._seq

    def _handshake(self, limit: float, *, reconnecting: bool = False) -> p.InfoOk:
        """Send INFO with backoff until INFO_OK: no fixed sleep after opening."""
        deadline = time.monotonic() + limit
        wait = 0.1
        seq = self._next_seq()
        readies = 0
        while True:
            if self._port is None:
                raise DeviceDisconnected(f"{self.url}: port is not open")
            try:
                self._port.write(p.encode_message(p.Info(seq, self.session if self.sessions else None)))
            except (serial.SerialException, OSError) as exc:
                raise DeviceDisconnected(f"{self.url}: write failed during handshake: {exc}") from None
            attempt_end = min(deadline, time.monotonic() + wait)
            sessions = self.sessions
            while time.monotonic() < attempt_end and sessions == self.sessions:
                try:
                    payloads = self._read_handshake(attempt_end)
                except (serial.SerialException, OSError) as exc:
                    raise DeviceDisconnected(f"{self.url}: read failed during handshake: {exc}") from None
                for payload in payloads:
                    try:
                        msg = p.decode_message(payload)
                    except ProtocolError:
                        self.link.rejected += 1
                        continue
                    if isinstance(msg, p.Ready):
                        readies += 1
                        continue
                    if msg.seq != seq:
                        self.link.stale += 1
                        continue
                    if isinstance(msg, p.InfoOk):
                        if reconnecting and readies:
                            self._rebooted(None)
                        return msg
                    if isinstance(msg, p.Error) and msg.code == p.ERR_LENGTH and self.sessions:
                        self._no_sessions()
                        seq = self._next_seq()
                        break  # send the empty INFO at once
                    if isinstance(msg, p.Error):
                        name = p.ERROR_NAMES.get(msg.code, "?")
                        raise DeviceFault(
                            msg.code,
                            msg.message,
                            f"{self.url}: device refused INFO: error {msg.code} ({name}): {msg.message}",
                        )
                    # a stored answer of another type under this seq: move on to a fresh one
                    self.link.rejected += 1
                    seq = self._next_seq()
            if sessions != self.sessions:
                continue  # fell back to the empty INFO: send it now
            if time.monotonic() >= deadline:
                raise DeviceTimeout(
                    f"{self.url}: no INFO_OK within {limit:g} s - is a hwloop device on this port?"
                )
            wait = min(wait * 2, 1.0)

    def _read_handshake(self, until: float) -> list[bytes]:
        assert self._port is not None
        out: list[bytes] = []
        while not out and time.monotonic() < until:
            data = self._port.read(1)
            if data and self._port.in_waiting:
                data += self._port.read(self._port.in_waiting)
            for block in self._splitter.feed(data):
                try:
                    out.append(p.decode_frame(block))
                except ProtocolError:
                    self.link.bad_frames += 1
        return out

    def _info_from(self, m: p.InfoOk) -> DeviceInfo:
        fit = min(p.max_rows(m.in_dim or 1), p.max_rows(m.out_dim or 1))
        try:
            return DeviceInfo(
                name=m.name,
                in_dim=m.in_dim,
                out_dim=m.out_dim,
                max_batch=min(m.max_batch, fit),
                low=m.low,
                high=m.high,
                stateful=m.stateful,
                firmware=m.firmware,
            )
        except Exception as exc:
            raise ProtocolError(f"{self.url}: device sent an unusable INFO_OK: {exc}") from None

    def _set_window(self, m: p.InfoOk) -> None:
        w = max(1, m.window)
        self.window = min(w, self.window_cap) if self.window_cap else w
