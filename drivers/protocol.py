"""hwloop wire protocol v1 (see PROTOCOL.md): framing and message codecs, no I/O.

Both ends of the wire use this module - the host driver (`serial_device`) and
`serve` - so a frame that one side writes is byte for byte what the other
reads, and the byte-exact test vectors pin it down once.

Layers:
- framing (`hwloop.drivers.framing`, re-exported here): `cobs_encode`/
  `cobs_decode`, `encode_frame`/`decode_frame` for
  ``COBS(payload || crc16_xmodem LE) + 0x00``, and `FrameSplitter`, which
  cuts a byte stream into blocks at 0x00 and resynchronises after garbage.
- Message dataclasses with ``pack()`` and `decode_message` for the payload.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

import numpy as np

from hwloop.drivers.errors import ProtocolError
from hwloop.drivers.framing import (
    ERR_BAD_FRAME,
    MAX_BLOCK,
    MAX_ENCODED,
    MAX_PAYLOAD,
    MIN_BLOCK,
    FrameSplitter,
    cobs_decode,
    cobs_encode,
    crc16_xmodem,
    decode_frame,
    encode_frame,
)

__all__ = [
    "ERR_BAD_FRAME",
    "MAX_BLOCK",
    "MAX_ENCODED",
    "MAX_PAYLOAD",
    "MIN_BLOCK",
    "FrameSplitter",
    "cobs_decode",
    "cobs_encode",
    "crc16_xmodem",
    "decode_frame",
    "encode_frame",
]

log = logging.getLogger(__name__)

VERSION = 1

SEQ_READY = 0x0000
SEQ_UNKNOWN = 0xFFFF
SEQ_MAX = 0xFFFE

# message types
INFO = 0x01
INFO_OK = 0x81
QUERY = 0x02
QUERY_OK = 0x82
RESET = 0x03
RESET_OK = 0x83
READY = 0x7E
ERROR = 0x7F

# error codes (ERR_BAD_FRAME = 1 comes from framing)
ERR_VERSION = 2
ERR_TYPE = 3
ERR_LENGTH = 4
ERR_BATCH = 5
ERR_RANGE = 6
ERR_FAULT = 7

ERROR_NAMES = {
    ERR_BAD_FRAME: "bad frame",
    ERR_VERSION: "unsupported version",
    ERR_TYPE: "unknown type",
    ERR_LENGTH: "body length does not match the header",
    ERR_BATCH: "n > max_batch",
    ERR_RANGE: "input outside [low, high]",
    ERR_FAULT: "device fault",
}

FLAG_STATEFUL = 0x01

_HEADER = struct.Struct("<BBH")


def next_seq(seq: int) -> int:
    """The sequence number after ``seq``: 1..0xFFFE, wrapping to 1."""
    return 1 if seq >= SEQ_MAX or seq < 1 else seq + 1


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class Info:
    """Host asks for the device description; ``session`` (u32, amendment 1) names
    the host session, None for an empty body (a host from before sessions)."""

    seq: int
    session: int | None = None
    type = INFO

    def pack(self) -> bytes:
        head = _HEADER.pack(VERSION, INFO, self.seq)
        return head if self.session is None else head + struct.pack("<I", self.session)


@dataclass(frozen=True)
class InfoOk:
    """Device description; ``flags`` bit 0 = stateful."""

    seq: int
    in_dim: int
    out_dim: int
    max_batch: int
    flags: int
    window: int
    low: tuple[float, ...]
    high: tuple[float, ...]
    name: str
    firmware: str
    type = INFO_OK

    @property
    def stateful(self) -> bool:
        return bool(self.flags & FLAG_STATEFUL)

    def pack(self) -> bytes:
        name = _short_utf8(self.name)
        fw = _short_utf8(self.firmware)
        return (
            _HEADER.pack(VERSION, INFO_OK, self.seq)
            + struct.pack("<HHHBB", self.in_dim, self.out_dim, self.max_batch, self.flags, self.window)
            + np.asarray(self.low, dtype="<f4").tobytes()
            + np.asarray(self.high, dtype="<f4").tobytes()
            + bytes([len(name)])
            + name
            + bytes([len(fw)])
            + fw
        )


@dataclass(frozen=True, eq=False)
class Query:
    """Host sends n rows; ``values`` is the flat float32 row-major array."""

    seq: int
    n: int
    values: np.ndarray
    type = QUERY

    def pack(self) -> bytes:
        return _pack_rows(QUERY, self.seq, self.n, self.values)

    def rows(self, dim: int) -> np.ndarray:
        return self.values.reshape(self.n, dim)


@dataclass(frozen=True, eq=False)
class QueryOk:
    """Device answers n rows, same order; ``values`` is flat float32."""

    seq: int
    n: int
    values: np.ndarray
    type = QUERY_OK

    def pack(self) -> bytes:
        return _pack_rows(QUERY_OK, self.seq, self.n, self.values)

    def rows(self, dim: int) -> np.ndarray:
        return self.values.reshape(self.n, dim)


@dataclass(frozen=True)
class Reset:
    """Host asks the device to clear its state."""

    seq: int
    type = RESET

    def pack(self) -> bytes:
        return _HEADER.pack(VERSION, RESET, self.seq)


@dataclass(frozen=True)
class ResetOk:
    """Device confirms a RESET."""

    seq: int
    type = RESET_OK

    def pack(self) -> bytes:
        return _HEADER.pack(VERSION, RESET_OK, self.seq)


@dataclass(frozen=True)
class Ready:
    """Device booted (unsolicited, seq 0): its state and stored answers are gone."""

    seq: int = SEQ_READY
    type = READY

    def pack(self) -> bytes:
        return _HEADER.pack(VERSION, READY, self.seq)


@dataclass(frozen=True)
class Error:
    """Device could not serve request ``seq`` (0xFFFF if unreadable)."""

    seq: int
    code: int
    message: str
    type = ERROR

    def pack(self) -> bytes:
        msg = _short_utf8(self.message)
        return _HEADER.pack(VERSION, ERROR, self.seq) + bytes([self.code, len(msg)]) + msg


Message = Info | InfoOk | Query | QueryOk | Reset | ResetOk | Ready | Error


def _short_utf8(text: str) -> bytes:
    """UTF-8 of ``text`` cut to 255 bytes on a character boundary (u8 length)."""
    raw = text.encode("utf-8")
    if len(raw) <= 255:
        return raw
    return raw[:255].decode("utf-8", errors="ignore").encode("utf-8")


def _pack_rows(mtype: int, seq: int, n: int, values: np.ndarray) -> bytes:
    flat = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
    return _HEADER.pack(VERSION, mtype, seq) + struct.pack("<H", n) + flat.tobytes()


def peek_header(payload: bytes) -> tuple[int, int, int]:
    """``(version, type, seq)`` of a payload of at least 4 bytes."""
    if len(payload) < _HEADER.size:
        raise ProtocolError("payload shorter than its header", ERR_LENGTH)
    return _HEADER.unpack_from(payload)


def decode_message(payload: bytes, *, dim: int | None = None) -> Message:
    """Parse one payload into its message.

    ``dim`` is the row width for QUERY/QUERY_OK (in_dim or out_dim); without
    it the width is inferred from the body length. Raises `ProtocolError`
    whose ``code`` is what a device answers: 2 version, 3 type, 4 length.
    """
    version, mtype, seq = peek_header(payload)
    if version != VERSION:
        raise ProtocolError(f"unsupported protocol version {version}", ERR_VERSION)
    body = payload[_HEADER.size :]
    if mtype == INFO and len(body) == 4:
        return Info(seq, struct.unpack("<I", body)[0])
    if mtype in (INFO, RESET, RESET_OK, READY):
        if body:
            expected = "none or a u32 session" if mtype == INFO else "none"
            raise ProtocolError(
                f"type 0x{mtype:02x} has a {len(body)}-byte body, expected {expected}", ERR_LENGTH
            )
        return {INFO: Info, RESET: Reset, RESET_OK: ResetOk, READY: Ready}[mtype](seq)
    if mtype in (QUERY, QUERY_OK):
        if len(body) < 2:
            raise ProtocolError("QUERY body shorter than its count", ERR_LENGTH)
        (n,) = struct.unpack_from("<H", body)
        nbytes = len(body) - 2
        if dim is None:
            ok = (n > 0 and nbytes > 0 and nbytes % (4 * n) == 0) or (n == 0 and nbytes == 0)
        else:
            ok = nbytes == 4 * n * dim
        if not ok:
            raise ProtocolError(f"body of {nbytes} bytes does not hold n={n} rows", ERR_LENGTH)
        values = np.frombuffer(body, dtype="<f4", offset=2).astype(np.float32)
        cls = Query if mtype == QUERY else QueryOk
        return cls(seq, n, values)
    if mtype == INFO_OK:
        return _decode_info_ok(seq, body)
    if mtype == ERROR:
        if len(body) < 2 or len(body) != 2 + body[1]:
            raise ProtocolError("ERROR body length does not match its message length", ERR_LENGTH)
        return Error(seq, body[0], body[2:].decode("utf-8", errors="replace"))
    raise ProtocolError(f"unknown message type 0x{mtype:02x}", ERR_TYPE)


def _decode_info_ok(seq: int, body: bytes) -> InfoOk:
    try:
        in_dim, out_dim, max_batch, flags, window = struct.unpack_from("<HHHBB", body)
        pos = 8
        low = tuple(float(v) for v in np.frombuffer(body, "<f4", in_dim, pos))
        pos += 4 * in_dim
        high = tuple(float(v) for v in np.frombuffer(body, "<f4", in_dim, pos))
        pos += 4 * in_dim
        nlen = body[pos]
        name = body[pos + 1 : pos + 1 + nlen]
        pos += 1 + nlen
        flen = body[pos]
        fw = body[pos + 1 : pos + 1 + flen]
        pos += 1 + flen
        if len(name) != nlen or len(fw) != flen or pos != len(body):
            raise ValueError("length mismatch")
    except (struct.error, ValueError, IndexError) as exc:
        raise ProtocolError(f"INFO_OK body malformed: {exc}", ERR_LENGTH) from None
    return InfoOk(
        seq,
        in_dim,
        out_dim,
        max_batch,
        flags,
        window,
        low,
        high,
        name.decode("utf-8", errors="replace"),
        fw.decode("utf-8", errors="replace"),
    )


def encode_message(msg: Message) -> bytes:
    """A message as a complete wire frame."""
    return encode_frame(msg.pack())


def max_rows(dim: int) -> int:
    """The most rows of width ``dim`` one QUERY/QUERY_OK block can carry."""
    return (MAX_PAYLOAD - _HEADER.size - 2) // (4 * dim)
