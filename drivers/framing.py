"""hwloop wire protocol v1 framing (see PROTOCOL.md): COBS, CRC-16/XMODEM, no I/O.

A frame on the wire is ``COBS(payload || crc16_xmodem LE) + 0x00``; this
module turns payloads into frames and a byte stream back into checked
payloads. `protocol` re-exports everything here, so both ends of the wire
import one module.
"""

from __future__ import annotations

import binascii
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from hwloop.drivers.errors import ProtocolError

log = logging.getLogger(__name__)

MAX_BLOCK = 1024  # decoded payload + crc
MIN_BLOCK = 6  # 4-byte header + 2-byte crc
MAX_PAYLOAD = MAX_BLOCK - 2
# COBS adds one byte per 254 data bytes, plus one
MAX_ENCODED = MAX_BLOCK + MAX_BLOCK // 254 + 1
ERR_BAD_FRAME = 1  # the PROTOCOL.md error code for a bad frame


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
