"""Byte-exact checks of the wire codec against PROTOCOL.md, plus properties."""

from __future__ import annotations

import contextlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwloop.drivers import protocol as p
from hwloop.drivers.errors import ProtocolError


def h(text: str) -> bytes:
    return bytes.fromhex(text)


INFO_1 = h("04 01 01 01 03 b5 72 00")
INFO_1_SESSION = h("04 01 01 01 07 78 56 34 12 e8 6a 00")  # session 0x12345678
INFO_OK_1 = h(
    "04 01 81 01 02 01 02 01 02 20 01 02 01 01 03 80 bf 01 0e 80 3f 04 72 61 70 70 03 31 2e 30 3c 5f 00"
)
QUERY_2 = h("04 01 02 02 02 02 01 01 01 02 3f 01 05 80 be 5d 1d 00")
QUERY_OK_2 = h("04 01 82 02 02 02 01 01 01 01 01 01 05 80 3f 43 40 00")
READY = h("03 01 7e 01 03 bd b5 00")
ERROR_7 = h("04 01 7f 07 13 06 0e 78 20 6f 75 74 20 6f 66 20 72 61 6e 67 65 e8 15 00")


def test_crc_check_value() -> None:
    assert p.crc16_xmodem(b"123456789") == 0x31C3


# ------------------------------------------------------------ test vectors: encode


def test_encode_info() -> None:
    assert p.encode_message(p.Info(1)) == INFO_1


def test_encode_info_with_session() -> None:
    assert p.encode_message(p.Info(1, 0x12345678)) == INFO_1_SESSION


def test_encode_info_ok() -> None:
    msg = p.InfoOk(1, 1, 1, 32, 0, 1, (-1.0,), (1.0,), "rapp", "1.0")
    assert p.encode_message(msg) == INFO_OK_1


def test_encode_query() -> None:
    x = np.array([[0.5], [-0.25]], dtype=np.float32)
    assert p.encode_message(p.Query(2, 2, x)) == QUERY_2


def test_encode_query_ok() -> None:
    y = np.array([[0.0], [1.0]], dtype=np.float32)
    assert p.encode_message(p.QueryOk(2, 2, y)) == QUERY_OK_2


def test_encode_ready() -> None:
    assert p.encode_message(p.Ready()) == READY


def test_encode_error() -> None:
    assert p.encode_message(p.Error(7, p.ERR_RANGE, "x out of range")) == ERROR_7


# ------------------------------------------------------------ test vectors: decode


def decode(frame: bytes, dim: int | None = None) -> p.Message:
    blocks = list(p.FrameSplitter().feed(frame))
    assert len(blocks) == 1
    return p.decode_message(p.decode_frame(blocks[0]), dim=dim)


def test_decode_info() -> None:
    assert decode(INFO_1) == p.Info(1)


def test_decode_info_with_session() -> None:
    msg = decode(INFO_1_SESSION)
    assert msg == p.Info(1, 0x12345678) and msg.session == 0x12345678
    assert decode(INFO_1).session is None  # an empty body: a host from before sessions


def test_decode_info_ok() -> None:
    msg = decode(INFO_OK_1)
    assert isinstance(msg, p.InfoOk)
    assert (msg.seq, msg.in_dim, msg.out_dim, msg.max_batch, msg.flags, msg.window) == (1, 1, 1, 32, 0, 1)
    assert msg.low == (-1.0,) and msg.high == (1.0,)
    assert msg.name == "rapp" and msg.firmware == "1.0"
    assert not msg.stateful


def test_decode_query() -> None:
    msg = decode(QUERY_2, dim=1)
    assert isinstance(msg, p.Query)
    assert msg.seq == 2 and msg.n == 2
    np.testing.assert_array_equal(msg.rows(1), np.array([[0.5], [-0.25]], dtype=np.float32))


def test_decode_query_ok() -> None:
    msg = decode(QUERY_OK_2, dim=1)
    assert isinstance(msg, p.QueryOk)
    assert msg.seq == 2 and msg.n == 2
    np.testing.assert_array_equal(msg.rows(1), np.array([[0.0], [1.0]], dtype=np.float32))


def test_decode_query_infers_width() -> None:
    msg = decode(QUERY_2)
    assert isinstance(msg, p.Query) and msg.values.shape == (2,)


def test_decode_ready() -> None:
    msg = decode(READY)
    assert msg == p.Ready() and msg.seq == 0


def test_decode_error() -> None:
    assert decode(ERROR_7) == p.Error(7, 6, "x out of range")


def test_decode_frame_accepts_with_or_without_delimiter() -> None:
    assert p.decode_frame(INFO_1) == p.decode_frame(INFO_1[:-1]) == h("01 01 01 00")


# ------------------------------------------------------------ rejections


def test_bad_crc_rejected() -> None:
    bad = bytearray(INFO_1)
    bad[5] ^= 0x01
    with pytest.raises(ProtocolError) as ei:
        p.decode_frame(bytes(bad))
    assert ei.value.code == p.ERR_BAD_FRAME


def test_bad_cobs_rejected() -> None:
    with pytest.raises(ProtocolError):
        p.decode_frame(h("09 01 02 03"))  # run runs past the end


def test_short_block_rejected() -> None:
    with pytest.raises(ProtocolError, match="short"):
        p.decode_frame(p.cobs_encode(b"\x01\x01\x01") + b"\x00")  # 3 bytes


def test_long_block_rejected() -> None:
    payload = b"\x01" * 1023  # 1025 with crc
    block = payload + struct.pack("<H", p.crc16_xmodem(payload))
    with pytest.raises(ProtocolError, match="long"):
        p.decode_frame(p.cobs_encode(block))
    with pytest.raises(ProtocolError):
        p.encode_frame(payload)


def test_max_block_accepted() -> None:
    payload = bytes(range(256)) * 3 + b"\x07" * (1022 - 768)
    assert len(payload) + 2 == 1024
    assert p.decode_frame(p.encode_frame(payload)) == payload


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\x02\x01\x01\x00", p.ERR_VERSION),
        (b"\x01\x55\x01\x00", p.ERR_TYPE),
        (b"\x01\x01\x01\x00\x00", p.ERR_LENGTH),  # INFO with a 1-byte body
        (b"\x01\x01\x01\x00\x01\x02\x03\x04\x05", p.ERR_LENGTH),  # INFO with 5 bytes: not a session
        (b"\x01\x02\x01\x00\x02\x00" + b"\x00" * 4, p.ERR_LENGTH),  # n=2, one float
        (b"\x01\x7f\x01\x00\x06\x05ab", p.ERR_LENGTH),  # ERROR message shorter than len
        (b"\x01\x81\x01\x00\x01\x00", p.ERR_LENGTH),  # truncated INFO_OK
    ],
)
def test_message_errors_carry_device_codes(payload: bytes, code: int) -> None:
    with pytest.raises(ProtocolError) as ei:
        p.decode_message(payload, dim=1)
    assert ei.value.code == code


def test_query_width_checked_against_dim() -> None:
    payload = p.Query(3, 1, np.zeros(2, np.float32)).pack()
    assert p.decode_message(payload, dim=2).n == 1
    with pytest.raises(ProtocolError):
        p.decode_message(payload, dim=1)


def test_seq_wraps_to_one() -> None:
    assert p.next_seq(1) == 2
    assert p.next_seq(0xFFFD) == 0xFFFE
    assert p.next_seq(0xFFFE) == 1
    assert p.next_seq(0) == 1


def test_error_message_truncated_to_u8_length() -> None:
    msg = p.Error(1, 7, "é" * 200)  # 400 bytes of UTF-8
    back = p.decode_message(p.decode_frame(p.encode_message(msg)))
    assert isinstance(back, p.Error)
    assert back.message == "é" * 127


# ------------------------------------------------------------ splitter


def test_splitter_across_chunks_and_resync() -> None:
    s = p.FrameSplitter()
    stream = b"\x13\x37garbage" + b"\x00" + QUERY_2 + READY
    blocks: list[bytes] = []
    for i in range(len(stream)):
        blocks += s.feed(stream[i : i + 1])
    good = []
    for b in blocks:
        with contextlib.suppress(ProtocolError):
            good.append(p.decode_frame(b))
    assert good == [p.decode_frame(QUERY_2), p.decode_frame(READY)]


def test_splitter_drops_over_long_block() -> None:
    s = p.FrameSplitter()
    blocks = list(s.feed(b"\x01" * 5000 + b"\x00" + INFO_1))
    assert blocks == [INFO_1[:-1]]
    assert s.dropped == 1


# ------------------------------------------------------------ properties


@given(st.binary(max_size=3000))
def test_cobs_round_trip(data: bytes) -> None:
    enc = p.cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert p.cobs_decode(enc) == data


@given(st.binary(min_size=4, max_size=p.MAX_PAYLOAD))
def test_frame_round_trip(payload: bytes) -> None:
    frame = p.encode_frame(payload)
    assert frame.endswith(b"\x00") and frame.count(0) == 1
    blocks = list(p.FrameSplitter().feed(frame))
    assert len(blocks) == 1
    assert p.decode_frame(blocks[0]) == payload


@settings(max_examples=300)
@given(st.binary(max_size=4000))
def test_garbage_never_crashes_or_yields_bad_crc(data: bytes) -> None:
    s = p.FrameSplitter()
    for block in s.feed(data):
        try:
            payload = p.decode_frame(block)
        except ProtocolError:
            continue
        raw = p.cobs_decode(block)
        assert 6 <= len(raw) <= 1024
        assert p.crc16_xmodem(payload) == struct.unpack("<H", raw[-2:])[0]
        with contextlib.suppress(ProtocolError):
            p.decode_message(payload)


@given(
    st.binary(max_size=2000),
    st.lists(st.binary(min_size=4, max_size=200), min_size=1, max_size=5),
    st.integers(1, 64),
)
def test_resync_after_garbage(garbage: bytes, payloads: list[bytes], chunk: int) -> None:
    """Whatever precedes it, a 0x00 followed by good frames yields those frames."""
    stream = garbage + b"\x00" + b"".join(p.encode_frame(pl) for pl in payloads)
    s = p.FrameSplitter()
    got: list[bytes] = []
    for i in range(0, len(stream), chunk):
        for block in s.feed(stream[i : i + chunk]):
            with contextlib.suppress(ProtocolError):
                got.append(p.decode_frame(block))
    assert got[-len(payloads) :] == payloads


@given(st.integers(0, 0xFFFF), st.integers(1, 4), st.data())
def test_query_round_trip(seq: int, dim: int, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, p.max_rows(dim)))
    vals = data.draw(st.lists(st.floats(width=32, allow_nan=False), min_size=n * dim, max_size=n * dim))
    x = np.array(vals, dtype=np.float32).reshape(n, dim)
    msg = p.decode_message(p.decode_frame(p.encode_message(p.QueryOk(seq, n, x))), dim=dim)
    assert isinstance(msg, p.QueryOk) and msg.seq == seq and msg.n == n
    np.testing.assert_array_equal(msg.rows(dim), x)
