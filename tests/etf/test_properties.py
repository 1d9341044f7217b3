"""Property and fuzz tests of the codec: round trips, truncation, garbage, bombs, huge lengths."""

from __future__ import annotations

import struct
import time
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamlink.etf import DEFAULT_MAX_DEPTH, Atom, DecodeError, decode, decode_from, encode
from tests.etf.strategies import terms

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_or_error(data: bytes) -> Any:
    """Decode, letting only DecodeError escape (anything else fails the test)."""
    try:
        return decode(data)
    except DecodeError:
        return None


@FAST
@given(terms)
def test_round_trip_is_a_fixpoint(term: Any) -> None:
    data = encode(term)
    decoded = decode(data)
    assert encode(decoded) == data
    assert encode(decode(encode(decoded))) == data


@FAST
@given(terms, st.integers(0, 9))
def test_compressed_round_trip(term: Any, level: int) -> None:
    data = encode(term)
    packed = encode(term, compressed=level)
    assert packed == data or (packed[1] == 80 and len(packed) < len(data))
    assert encode(decode(packed)) == data


@FAST
@given(terms, terms)
def test_decode_from_back_to_back(first: Any, second: Any) -> None:
    a, b = encode(first), encode(second, compressed=True)
    frame = b"\x00\x70" + a + b
    term1, end1 = decode_from(frame, 2)
    term2, end2 = decode_from(frame, end1)
    assert (end1, end2) == (2 + len(a), len(frame))
    assert encode(term1) == a
    assert encode(term2) == encode(second)


@FAST
@given(terms)
def test_every_strict_prefix_is_rejected(term: Any) -> None:
    data = encode(term)
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            decode(data[:cut])


@FAST
@given(terms)
def test_truncated_compressed_terms_are_rejected(term: Any) -> None:
    data = encode(term, compressed=True)
    for cut in range(0, len(data), max(1, len(data) // 40)):
        with pytest.raises(DecodeError):
            decode(data[:cut])


@FAST
@given(st.binary(max_size=200))
def test_garbage_raises_only_decode_error(data: bytes) -> None:
    decode_or_error(data)
    decode_or_error(b"\x83" + data)


@FAST
@given(terms, st.data())
def test_mutated_encodings_raise_only_decode_error(term: Any, data: st.DataObject) -> None:
    raw = bytearray(encode(term))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    result = decode_or_error(bytes(raw))
    if result is not None:
        decode(encode(result))


@pytest.mark.parametrize("opener", [b"h\x01", b"l\x00\x00\x00\x01", b"t\x00\x00\x00\x01a\x01"])
def test_depth_bomb_is_rejected(opener: bytes) -> None:
    bomb = b"\x83" + opener * 200_000 + b"j"
    with pytest.raises(DecodeError, match="max_depth"):
        decode(bomb)


def test_nesting_up_to_the_limit_works() -> None:
    nested: Any = Atom("leaf")
    for _ in range(DEFAULT_MAX_DEPTH):
        nested = (nested,)
    data = encode(nested)
    assert encode(decode(data)) == data
    with pytest.raises(DecodeError, match="max_depth"):
        decode(encode((nested,)))
    assert encode(decode(encode((nested,)), max_depth=DEFAULT_MAX_DEPTH + 1)) == b"\x83h\x01" + data[1:]


def test_deep_or_cyclic_python_values_raise_value_error() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="nested too deeply"):
        encode(cyclic)


def test_compression_bomb_is_rejected_before_inflating() -> None:
    huge = struct.pack(">BI", 80, 2**32 - 1) + zlib.compress(b"\x00" * 1000)
    with pytest.raises(DecodeError, match="above max_size"):
        decode(b"\x83" + huge)
    started = time.monotonic()
    liar = b"\x83" + struct.pack(">BI", 80, 100) + zlib.compress(b"\x00" * 50_000_000)
    with pytest.raises(DecodeError, match="more than the declared"):
        decode(liar)
    assert time.monotonic() - started < 5
    with pytest.raises(DecodeError, match="above max_size"):
        decode(encode([b"x" * 5000], compressed=True), max_size=1000)


@pytest.mark.parametrize(
    "body",
    [
        b"m\xff\xff\xff\xff",  # BINARY_EXT
        b"l\xff\xff\xff\xff",  # LIST_EXT
        b"i\xff\xff\xff\xff",  # LARGE_TUPLE_EXT
        b"t\xff\xff\xff\xff",  # MAP_EXT
        b"o\xff\xff\xff\xff\x00",  # LARGE_BIG_EXT
        b"M\xff\xff\xff\xff\x03",  # BIT_BINARY_EXT
        b"k\xff\xff",  # STRING_EXT
        b"v\xff\xff",  # ATOM_UTF8_EXT
        b"d\xff\xff",  # ATOM_EXT
        b"p\xff\xff\xff\xff",  # NEW_FUN_EXT
        b"Z\x00\x05w\x01a",  # NEWER_REFERENCE_EXT
    ],
)
def test_huge_declared_lengths_are_rejected_without_allocating(body: bytes) -> None:
    with pytest.raises(DecodeError, match=r"truncated|remain"):
        decode(b"\x83" + body + b"\x00" * 16)


def test_input_above_max_size_is_rejected() -> None:
    with pytest.raises(DecodeError, match="max_size"):
        decode(encode(b"x" * 100), max_size=50)
