"""The compiled codec (``_speedups.c``) against the pure one. Decoding: on valid encodings it
decodes without falling back and builds exactly the same objects; on garbage, truncated and
mutated input, depth bombs and huge lengths it either falls back or gives exactly the pure
decoder's result, and nothing else ever escapes (no crash, no other exception). Encoding: the
same bytes as the pure encoder, and for odd or unencodable values (subclasses, out-of-range
fields, aliasing map keys, cycles, deep nesting) the same bytes or the same exception."""

from __future__ import annotations

import collections
import enum
import importlib
import os
import struct
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamlink.etf import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_SIZE,
    Atom,
    BitString,
    Charlist,
    DecodeError,
    ImproperList,
    Map,
    Pid,
    Reference,
    decoder,
    encode,
)
from beamlink.etf.encoder import encode as pure_encode
from tests.etf.conftest import implementation
from tests.etf.strategies import terms
from tests.support.require import missing

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def codec() -> str:
    """Overrides the two-implementation fixture of conftest: these tests compare both themselves,
    and need the accelerator (skipped, or failed under BEAMLINK_REQUIRE_ALL=1, if not built)."""
    implementation("accelerated")
    return "accelerated"


def identical(a: Any, b: Any) -> bool:
    """Same types all the way down, equal values, same order of map entries, same float bits."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return struct.pack(">d", a) == struct.pack(">d", b)
    if type(a) in (tuple, list):
        return len(a) == len(b) and all(map(identical, a, b))
    if type(a) is dict:
        return identical(list(a.items()), list(b.items()))
    if type(a) is Map:
        return identical(list(a.pairs), list(b.pairs))
    if type(a) is ImproperList:
        return identical(a.items, b.items) and identical(a.tail, b.tail)
    return bool(a == b)


def c_decode(data: bytes) -> tuple[bool, Any]:
    """(True, term) if the C decoder accepts ``data``, (False, None) if it falls back."""
    from beamlink.etf import _speedups

    try:
        return True, _speedups.decode(data, DEFAULT_MAX_DEPTH, DEFAULT_MAX_SIZE)
    except _speedups.Fallback:
        return False, None


def agrees_with_pure(data: bytes) -> None:
    """If C accepts ``data`` the pure decoder must give the identical term."""
    accepted, term = c_decode(data)
    try:
        expected = decoder.decode(data)
    except DecodeError:
        assert not accepted, f"C accepted what the pure decoder rejects: {data!r}"
        return
    if accepted:
        assert identical(term, expected), (term, expected)


@FAST
@given(terms)
def test_valid_terms_decode_in_c_exactly_like_pure(term: Any) -> None:
    data = encode(term)
    accepted, got = c_decode(data)
    assert accepted
    assert identical(got, decoder.decode(data))


@FAST
@given(terms, st.binary(max_size=4))
def test_decode_body_in_c_at_an_offset(term: Any, before: bytes) -> None:
    from beamlink.etf import _speedups

    body = encode(term)[1:]
    got, end = _speedups.decode_body(before + body + b"tail", len(before), DEFAULT_MAX_DEPTH)
    assert end == len(before) + len(body)
    assert identical(got, decoder.decode_body_from(body)[0])


def test_atoms_are_the_interned_objects() -> None:
    for name in ("ok", "error", "ñ" * 255, "x" * 300):
        atom = Atom(name[:255])
        assert c_decode(encode(atom)) == (True, atom)
        assert c_decode(encode(atom))[1] is atom
    assert c_decode(encode(Atom("true"))) == (True, True)
    latin1 = b"\x83d\x00\x02\xe9t"  # ATOM_EXT, Latin-1
    assert c_decode(latin1)[1] is Atom("ét")


@FAST
@given(st.binary(max_size=300))
def test_garbage_is_never_accepted_differently(data: bytes) -> None:
    agrees_with_pure(data)
    agrees_with_pure(b"\x83" + data)


@FAST
@given(terms, st.data())
def test_mutated_and_truncated_encodings(term: Any, data: st.DataObject) -> None:
    raw = bytearray(encode(term))
    agrees_with_pure(bytes(raw[: data.draw(st.integers(0, len(raw)))]))
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    agrees_with_pure(bytes(raw))
    agrees_with_pure(bytes(raw) + data.draw(st.binary(max_size=3)))


@FAST
@given(
    st.lists(
        st.sampled_from(
            [
                b"h\x01",
                b"l\x00\x00\x00\x01",
                b"t\x00\x00\x00\x01a\x01",
                b"l\x00\x00\x00\x00",
                b"h\x00",
                b"j",
                b"a\x01",
                b"m\x00\x00\x00\x00",
                b"w\x01a",
                b"k\x00\x01a",
                b"p",
            ]
        ),
        max_size=40,
    )
)
def test_spliced_fragments(parts: list[bytes]) -> None:
    agrees_with_pure(b"\x83" + b"".join(parts))


@pytest.mark.parametrize("opener", [b"h\x01", b"l\x00\x00\x00\x01", b"t\x00\x00\x00\x01a\x01"])
def test_depth_bombs_fall_back(opener: bytes) -> None:
    assert c_decode(b"\x83" + opener * 200_000 + b"j") == (False, None)


def test_nesting_at_the_limit_is_decoded_in_c() -> None:
    nested: Any = Atom("leaf")
    for _ in range(DEFAULT_MAX_DEPTH):
        nested = (nested,)
    assert c_decode(encode(nested))[0]
    assert c_decode(encode((nested,))) == (False, None)


def test_c_nesting_is_capped_even_with_a_huge_recursion_limit() -> None:
    from beamlink.etf import _speedups

    data = b"\x83" + b"h\x01" * 50_000 + b"j"
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)
    try:
        with pytest.raises(_speedups.Fallback):
            _speedups.decode(data, 10**9, DEFAULT_MAX_SIZE)
    finally:
        sys.setrecursionlimit(old)


@pytest.mark.parametrize(
    "body",
    [
        b"m\xff\xff\xff\xff",
        b"l\xff\xff\xff\xff",
        b"i\xff\xff\xff\xff",
        b"t\xff\xff\xff\xff",
        b"t\x7f\xff\xff\xff",
        b"o\xff\xff\xff\xff\x00",
        b"k\xff\xff",
        b"v\xff\xff",
        b"d\xff\xff",
        b"w\xff",
        b"n\xff\x00",
    ],
)
def test_huge_declared_lengths_fall_back(body: bytes) -> None:
    assert c_decode(b"\x83" + body + b"\x00" * 16) == (False, None)


@pytest.mark.parametrize(
    "args",
    [
        (b"\x83h\x01a\x01", 0, 10),
        (b"\x83a\x01", 10**30, 10),
        (b"\x83a\x01", 1.5, 10),
        (bytearray(b"\x83a\x01"), 512, 10),
        (b"\x83", 512, 10),
        (b"\x83a\x01", 512, 2),
    ],
)
def test_odd_arguments_fall_back(args: tuple[Any, ...]) -> None:
    from beamlink.etf import _speedups

    with pytest.raises(_speedups.Fallback):
        _speedups.decode(*args)


@pytest.mark.parametrize(
    ("env", "expected"), [({"BEAMLINK_PURE_PYTHON": "1"}, "False"), ({}, "True")]
)
def test_accelerated_flag_and_the_pure_python_switch(env: dict[str, str], expected: str) -> None:
    base = {k: v for k, v in os.environ.items() if k != "BEAMLINK_PURE_PYTHON"}
    code = "import beamlink.etf as e; print(e.ACCELERATED, e.decode.__module__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    if expected == "True" and out[0] != "True":
        missing("the C accelerator is not built")
    assert out == [
        expected,
        "beamlink.etf._accelerated" if expected == "True" else "beamlink.etf.decoder",
    ]


def c_encode(term: Any) -> bytes | None:
    """The C encoder's bytes for ``term``, or None if it falls back."""
    from beamlink.etf import _speedups

    try:
        return _speedups.encode(term)
    except _speedups.Fallback:
        return None


@FAST
@given(terms)
def test_c_encoder_writes_exactly_the_pure_bytes(term: Any) -> None:
    assert c_encode(term) == pure_encode(term)
    assert c_encode([term, {Atom("k"): term}, (term,)]) == pure_encode(
        [term, {Atom("k"): term}, (term,)]
    )


class Color(enum.IntEnum):
    RED = 1


Point = collections.namedtuple("Point", "x y")


def cyclic() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


ODD_VALUES = [
    {1, 2},
    float("inf"),
    float("nan"),
    [1.0, float("-inf")],
    "\ud800",
    Atom("\ud800"),
    {"k": 1, b"k": 2},
    {True: 1, Atom("x"): 2, None: 3},
    {(1,): 1, (2,): 2},
    {1: 1, 2.5: 2, b"x": 3, Atom("a"): 4},
    Pid(Atom("n@h"), 2**32, 0, 0),
    Pid(Atom("n@h"), 1, True, 0),
    Reference(Atom("n@h"), 1, ()),
    Reference(Atom("n@h"), 1, (1, 2, 3, 4, 5, 6)),
    Reference(Atom("n@h"), 2**32, (1,)),
    Color.RED,
    [Color.RED, 2],
    [True, 1],
    Point(1, [2]),
    collections.OrderedDict(a=1),
    bytearray(b"xy"),
    memoryview(b"abcdef")[::2],
    Charlist("ĀĂ"),
    Charlist("x" * 70000),
    [*range(256), 256],
    list(range(70000)),
    2**3000,
    -(2**64),
    [-1, 255, 256],
    cyclic(),
    (Atom("a"),) * 300,
    ImproperList([1], Atom("t")),
    Map([(1, 2), (1.0, 3)]),
    BitString(b"\xe0", 3),
    object(),
]


def outcome(encode_fn: Any, term: Any) -> tuple[str, Any]:
    try:
        return "ok", encode_fn(term)
    except Exception as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("term", ODD_VALUES, ids=range(len(ODD_VALUES)))
def test_odd_values_encode_or_fail_exactly_like_pure(term: Any) -> None:
    from beamlink.etf import _accelerated

    got = c_encode(term)
    assert got is None or got == pure_encode(term)
    assert outcome(_accelerated.encode, term) == outcome(pure_encode, term)
    wrapped = [term, (term,), {Atom("k"): term}]
    assert outcome(_accelerated.encode, wrapped) == outcome(pure_encode, wrapped)


def test_deep_values_fall_back_in_the_c_encoder() -> None:
    deep: Any = Atom("leaf")
    for _ in range(100_000):
        deep = [deep]
    assert c_encode(deep) is None
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)
    try:
        assert c_encode(deep) is None
    finally:
        sys.setrecursionlimit(old)


@FAST
@given(terms, st.sampled_from([False, True, 0, 1, 9]))
def test_compressed_encoding_is_the_pure_one(term: Any, compressed: bool | int) -> None:
    from beamlink.etf import _accelerated

    assert _accelerated.encode(term, compressed=compressed) == pure_encode(
        term, compressed=compressed
    )


def test_errors_of_the_fallback_do_not_chain_the_internal_exception() -> None:
    from beamlink.etf import _accelerated

    with pytest.raises(DecodeError) as decode_error:
        _accelerated.decode(b"\x83h\x01")
    with pytest.raises(TypeError) as encode_error:
        _accelerated.encode({1, 2})
    assert not isinstance(decode_error.value.__context__, _accelerated._Fallback)
    assert not isinstance(encode_error.value.__context__, _accelerated._Fallback)


def test_a_stale_build_is_refused_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    from beamlink.etf import _accelerated, _speedups

    monkeypatch.setattr(_speedups, "API_VERSION", 0)
    with pytest.raises(ImportError, match="stale build"):
        importlib.reload(_accelerated)
    monkeypatch.undo()
    importlib.reload(_accelerated)
