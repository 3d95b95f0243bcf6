"""The device side of the wire protocol: request blocks in, response frames out.

`Responder` is what `serve` runs for every received block: it answers a
Python `Device` exactly as the firmware answers its function, keeps the last
``window`` answers for exactly-once replays, honours host sessions
(PROTOCOL.md amendment 1) and injects the faults of a `FaultConfig`, so the
host driver's repairs can be tested against real bytes. No I/O here.

Behaviour where PROTOCOL.md is silent (the firmware does the same, see
drivers/firmware/README.md):
- A stored answer is replayed when a QUERY or RESET repeats both its seq and
  its exact bytes (CRC of the payload); the same seq with different bytes is a
  new request.
- INFO is always answered afresh and never stored, so it cannot push an
  outstanding request's answer out of the window during a reconnect.
- An INFO whose session differs from the last INFO's (an empty INFO counts as
  different every time) forgets all stored answers before INFO_OK.
- Answers to QUERY and RESET are stored, ERRORs with a known seq included, so
  a retried RESET is not applied twice either.
"""

from __future__ import annotations

import logging
import random
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from hwloop.device import Device, UsageError
from hwloop.drivers import protocol as p
from hwloop.drivers.errors import ProtocolError

log = logging.getLogger(__name__)

BAD_ANSWERS = ("n", "nan")


@dataclass
class FaultConfig:
    """Faults injected into the server's responses, for testing the host.

    Probabilities apply to each response frame independently. ``baud`` (if
    set) paces both directions at 10 bits per byte, like a real 8N1 line.
    ``reboot_after=k`` reboots once on receiving the k-th request (that
    request is lost, stored answers are forgotten, the device is reset and
    READY is sent). ``hangup_after=k`` closes the connection once on the k-th
    request, like an unplugged USB cable (TCP: the next connection is a fresh
    boot; pty: the pty disappears, its name kept from any other pty until
    `serve` is stopped). ``mute_after=k`` stops
    answering after k requests (to provoke timeouts). ``delay`` is added
    before every response. ``bad_answer_after=k`` makes the first QUERY
    answer from the k-th request on CRC-valid but unusable, once (the device
    did apply the input): ``bad_answer="n"`` a row count off by one, ``"nan"``
    a NaN in the first row. It is stored like any answer, so a resend under
    the same seq replays it. ``legacy_info`` behaves like a device from before
    sessions: an INFO with a session body gets ERROR 4, an empty one is
    answered without forgetting stored answers.
    """

    drop: float = 0.0
    garble: float = 0.0
    duplicate: float = 0.0
    reboot_after: int | None = None
    hangup_after: int | None = None
    mute_after: int | None = None
    bad_answer_after: int | None = None
    bad_answer: str = "n"
    legacy_info: bool = False
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
        if self.bad_answer not in BAD_ANSWERS:
            raise UsageError(f"fault bad_answer={self.bad_answer!r} must be one of {', '.join(BAD_ANSWERS)}")


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
    bad_answers: int = 0
    sessions: int = 0
    bad_frames: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


class HangUp(Exception):
    """Raised by `Responder.handle` to drop the connection (fault injection)."""


class Responder:
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
        self.session: int | None = None  # the last INFO's session; None: none yet, or an empty INFO
        self.rebooted = False
        self.hung_up = False
        self.spoiled = False
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
        """Forget stored answers and the session, reset the device: what a power cycle does."""
        self.stored.clear()
        self.session = None
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
        version, mtype, seq = p.peek_header(payload)
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
            raise HangUp
        if f.mute_after is not None and self.stats.requests > f.mute_after:
            return []
        if version == p.VERSION and mtype == p.INFO and not f.legacy_info:
            return [self._info(payload, seq)]  # always afresh, never stored
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

    def _info(self, payload: bytes, seq: int) -> bytes:
        """INFO_OK, after forgetting stored answers if this INFO starts a new host session."""
        try:
            msg = p.decode_message(payload)
        except ProtocolError as exc:
            return self.error(seq, exc.code, str(exc))
        assert isinstance(msg, p.Info)
        if msg.session is None or msg.session != self.session:
            if self.stored:
                log.info("new host session: forgetting %d stored answer(s)", len(self.stored))
            self.stored.clear()
            self.stats.sessions += 1
        self.session = msg.session
        return self.info_ok(seq)

    def _answer(self, payload: bytes, mtype: int, seq: int) -> bytes:
        if payload[0] == p.VERSION and mtype not in (p.INFO, p.QUERY, p.RESET):
            return self.error(seq, p.ERR_TYPE, f"unknown request type 0x{mtype:02x}")
        try:
            msg = p.decode_message(payload, dim=self.info.in_dim)
        except ProtocolError as exc:
            return self.error(seq, exc.code, str(exc))
        if isinstance(msg, p.Info):
            if msg.session is not None:  # legacy_info: a device that only knows the empty INFO
                return self.error(seq, p.ERR_LENGTH, "INFO has a body")
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
        return p.encode_message(self._maybe_spoil(msg, y))

    def _maybe_spoil(self, msg: p.Query, y: np.ndarray) -> p.QueryOk:
        """The answer, or once (``bad_answer_after``) a CRC-valid but unusable one."""
        f = self.faults
        if f.bad_answer_after is None or self.spoiled or self.stats.requests < f.bad_answer_after:
            return p.QueryOk(msg.seq, msg.n, y)
        self.spoiled = True
        self.stats.bad_answers += 1
        log.info("fault injection: unusable answer (%s) to seq %d", f.bad_answer, msg.seq)
        if f.bad_answer == "nan":
            y = y.copy()
            y[0, 0] = np.nan
            return p.QueryOk(msg.seq, msg.n, y)
        if msg.n > 1:
            return p.QueryOk(msg.seq, msg.n - 1, y[:-1])
        return p.QueryOk(msg.seq, 2, np.concatenate([y, y]))

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
