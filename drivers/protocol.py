"""hwloop wire protocol v1 (see PROTOCOL.md): framing and message codecs, no I/O.

Both ends of the wire use this module - the host driver (`serial_device`) and
`serve` - so a frame that one side writes is byte for byte what the other
reads, and the byte-exact test vectors pin it down once.

Layers:
- `cobs_encode`/`cobs_decode`: zero-free byte stuffing (a 0x00 ends a frame).
- `encode_frame`/`decode_frame`: ``COBS(payload || crc16_xmodem LE) + 0x00``.
- `FrameSplitter`: cuts a byte stream into blocks at 0x00, resynchronising
  after garbage and dropping over-long blocks.
- Message dataclasses with ``pack()`` and `decode_message` for the payload.
"""

from __future__ import annotations

import binascii
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from hwloop.drivers.errors import ProtocolError

log = logging.getLogger(__name__)

VERSION = 1
MAX_BLOCK = 1024  # decoded payload + crc
MIN_BLOCK = 6  # 4-byte header + 2-byte crc
MAX_PAYLOAD = MAX_BLOCK - 2
# COBS adds one byte per 254 data bytes, plus one
MAX_ENCODED = MAX_BLOCK + MAX_BLOCK // 254 + 1

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

# error codes
ERR_BAD_FRAME = 1
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


# ---------------------------------------------------------------- framing


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data``: the result has no zero byte."""
    out = bytearray()
    code_pos = 0
    out.append(0)  # placeholder for the first code byte
    code = 1
    for b in data:
        if b == 0:
            out[code_pos] = code
            code_pos = len(out)
            out.append(0)
            code = 1
        else:
            out.append(b)
            code += 1
            if code == 0xFF:
                out[code_pos] = code
                code_pos = len(out)
                out.append(0)
                code = 1
    out[code_pos] = code
    return bytes(out)


def cobs_decode(block: bytes) -> bytes:
    """Undo `cobs_encode`; raise `ProtocolError` (code 1) on a malformed block."""
    out = bytearray()
    i = 0
    n = len(block)
    while i < n:
        code = block[i]
        if code == 0:
            raise ProtocolError("COBS: zero byte inside a block", ERR_BAD_FRAME)
        end = i + code
        if end > n:
            raise ProtocolError("COBS: block ends inside a run", ERR_BAD_FRAME)
        chunk = block[i + 1 : end]
        if 0 in chunk:
            raise ProtocolError("COBS: zero byte inside a block", ERR_BAD_FRAME)
        out += chunk
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


def crc16_xmodem(data: bytes) -> int:
    """CRC-16/XMODEM (poly 0x1021, init 0): avr-libc's ``_crc_xmodem_update``."""
    return binascii.crc_hqx(data, 0)


def encode_frame(payload: bytes) -> bytes:
    """``COBS(payload || crc LE) + 0x00``, ready to write."""
    if len(payload) + 2 > MAX_BLOCK:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    block = bytes(payload) + struct.pack("<H", crc16_xmodem(payload))
    return cobs_encode(block) + b"\x00"


def decode_frame(block: bytes) -> bytes:
    """The payload of one received block (with or without its 0x00 delimiter).

    Raises `ProtocolError` (code 1) for bad COBS, a bad CRC or a decoded
    length outside [6, 1024]: such a frame is never used.
    """
    if block.endswith(b"\x00"):
        block = block[:-1]
    if len(block) > MAX_ENCODED:
        raise ProtocolError(f"frame too long ({len(block)} encoded bytes)", ERR_BAD_FRAME)
    raw = cobs_decode(block)
    if len(raw) < MIN_BLOCK:
        raise ProtocolError(f"frame too short ({len(raw)} bytes)", ERR_BAD_FRAME)
    if len(raw) > MAX_BLOCK:
        raise ProtocolError(f"frame too long ({len(raw)} bytes)", ERR_BAD_FRAME)
    payload, (crc,) = raw[:-2], struct.unpack("<H", raw[-2:])
    if crc16_xmodem(payload) != crc:
        raise ProtocolError("frame CRC mismatch", ERR_BAD_FRAME)
    return payload


@dataclass
class FrameSplitter:
    """Accumulates stream bytes and yields complete blocks split at 0x00.

    Garbage before a delimiter becomes a block that `decode_frame` rejects,
    so the stream resynchronises at the next 0x00. A block longer than any
    legal frame is discarded up to its delimiter without growing the buffer.
    """

    max_len: int = MAX_ENCODED
    dropped: int = 0
    _buf: bytearray = field(default_factory=bytearray, repr=False)
    _discarding: bool = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Yield every block completed by ``data`` (without the delimiter)."""
        start = 0
        while True:
            idx = data.find(b"\x00", start)
            if idx < 0:
                self._append(data[start:])
                return
            self._append(data[start:idx])
            if self._discarding:
                self._discarding = False
            elif self._buf:
                block = bytes(self._buf)
                self._buf.clear()
                yield block
            start = idx + 1

    def _append(self, chunk: bytes) -> None:
        if self._discarding or not chunk:
            return
        if len(self._buf) + len(chunk) > self.max_len:
            self._buf.clear()
            self._discarding = True
            self.dropped += 1
            log.debug("dropping an over-long block")
            return
        self._buf += chunk

    def clear(self) -> None:
        """Forget any partial block (e.g. after re-opening a port)."""
        self._buf.clear()
        self._discarding = False


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class Info:
    """Host asks for the device description."""

    seq: int
    type = INFO

    def pack(self) -> bytes:
        return _HEADER.pack(VERSION, INFO, self.seq)


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
    if mtype in (INFO, RESET, RESET_OK, READY):
        if body:
            raise ProtocolError(f"type 0x{mtype:02x} has a {len(body)}-byte body, expected none", ERR_LENGTH)
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
