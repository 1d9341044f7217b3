"""Unit tests of the term types and of the codec's mapping, conventions and errors."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from beamlink.etf import (
    ATOM_STRONG_CACHE_SIZE,
    Atom,
    BitString,
    Charlist,
    DecodeError,
    Export,
    FrozenList,
    ImproperList,
    Map,
    Pid,
    Port,
    Reference,
    binary_span,
    decode,
    decode_body_from,
    decode_from,
    encode,
    freeze,
)


def test_atoms_are_interned_and_distinct_from_str() -> None:
    assert Atom("ok") is Atom("ok")
    assert Atom(Atom("ok")) is Atom("ok")
    assert Atom("ok") == Atom("ok")
    assert Atom("ok") != "ok"
    assert "ok" != Atom("ok")  # noqa: SIM300 (the reflected comparison is the point)
    assert hash(Atom("ok")) == hash(Atom("ok"))
    assert {Atom("ok"): 1, "ok": 2} == {Atom("ok"): 1, "ok": 2}
    assert repr(Atom("ok")) == "Atom('ok')"
    assert pickle.loads(pickle.dumps(Atom("ok"))) is Atom("ok")
    with pytest.raises(ValueError, match="255"):
        Atom("x" * 256)


def test_atoms_beyond_the_strong_cache_are_interned_while_alive() -> None:
    names = [f"hostile-{i}" for i in range(ATOM_STRONG_CACHE_SIZE + 10)]
    atoms = [Atom(n) for n in names]
    assert all(Atom(n) is a for n, a in zip(names, atoms, strict=True))
    assert Atom(names[-1]) == atoms[-1]


def test_charlist_is_only_equal_to_charlist() -> None:
    assert Charlist("ab") == Charlist("ab")
    assert Charlist("ab") != "ab" and Charlist("ab") != Atom("ab")
    assert Charlist("aĀ").codes == [97, 256]


def test_value_types_are_immutable_hashable_and_compared_by_value() -> None:
    values = [
        Pid(Atom("a@b"), 1, 2, 3),
        Port(Atom("a@b"), 1, 2),
        Reference(Atom("a@b"), 1, (1, 2, 3)),
        Export(Atom("m"), Atom("f"), 2),
        ImproperList((1, 2), Atom("t")),
        BitString(b"\xff", 3),
        FrozenList([1, 2]),
        Map(((1, 2),)),
    ]
    for value in values:
        copy = pickle.loads(pickle.dumps(value))
        assert copy == value and hash(copy) == hash(value)
        assert eval(repr(value)) == value  # the reprs are constructor calls
        with pytest.raises(AttributeError):
            value.x = 1  # type: ignore[attr-defined]
    assert Pid(Atom("a@b"), 1, 2, 3) != (Atom("a@b"), 1, 2, 3)
    assert BitString(b"\xff", 3) == BitString(b"\xe0", 3)
    with pytest.raises(ValueError):
        ImproperList((1,), [2])
    with pytest.raises(ValueError):
        BitString(b"\x00", 8)


@pytest.mark.parametrize(
    ("python", "encoded", "decoded"),
    [
        ("héllo", b"m\x00\x00\x00\x06h\xc3\xa9llo", b"h\xc3\xa9llo"),
        (True, b"w\x04true", True),
        (None, b"w\x09undefined", Atom("undefined")),
        (bytearray(b"ab"), b"m\x00\x00\x00\x02ab", b"ab"),
        (memoryview(b"ab"), b"m\x00\x00\x00\x02ab", b"ab"),
        (Atom("ok"), b"w\x02ok", Atom("ok")),
        (Atom("é" * 200), b"v\x01\x90" + "é".encode() * 200, Atom("é" * 200)),
        (5, b"a\x05", 5),
        (-1, b"b\xff\xff\xff\xff", -1),
        (2**31, b"n\x04\x00\x00\x00\x00\x80", 2**31),
        (-(2**64), b"n\x09\x01" + b"\x00" * 8 + b"\x01", -(2**64)),
        (1.5, b"F?\xf8\x00\x00\x00\x00\x00\x00", 1.5),
        ((), b"h\x00", ()),
        ([], b"j", []),
        ([1, 2], b"k\x00\x02\x01\x02", Charlist("\x01\x02")),
        (Charlist("Ā"), b"l\x00\x00\x00\x01b\x00\x00\x01\x00j", [256]),
        ([Atom("a")], b"l\x00\x00\x00\x01w\x01aj", [Atom("a")]),
        (ImproperList((1,), 2), b"l\x00\x00\x00\x01a\x01a\x02", ImproperList((1,), 2)),
        ({}, b"t\x00\x00\x00\x00", {}),
        (BitString(b"\xe0", 3), b"M\x00\x00\x00\x01\x03\xe0", BitString(b"\xe0", 3)),
        (Pid(Atom("a@b"), 1, 2, 3), b"Xw\x03a@b" + bytes.fromhex("000000010000000200000003"), None),
        (Reference(Atom("a@b"), 9, (1, 2)), b"Z\x00\x02w\x03a@b" + bytes.fromhex("00000009" "00000001" "00000002"), None),
        (Port(Atom("a@b"), 7, 1), b"xw\x03a@b" + bytes.fromhex("0000000000000007" "00000001"), None),
        (Export(Atom("m"), Atom("f"), 2), b"qw\x01mw\x01fa\x02", None),
    ],
)
def test_mapping_table(python: Any, encoded: bytes, decoded: Any) -> None:
    assert encode(python) == b"\x83" + encoded
    result = decode(b"\x83" + encoded)
    assert result == (python if decoded is None else decoded)
    assert type(result) is type(python if decoded is None else decoded)


def test_map_keys_that_python_cannot_hold_in_a_dict() -> None:
    # #{[a] => 1, #{} => 2}: unhashable keys become FrozenList / Map.
    data = encode(Map(((FrozenList([Atom("a")]), 1), (Map(()), 2))))
    assert decode(data) == {FrozenList([Atom("a")]): 1, Map(()): 2}
    assert encode(decode(data)) == data
    # #{1 => a, 1.0 => b, true => c}: equal in Python, distinct in Erlang -> Map keeps all.
    colliding = Map(((1, Atom("a")), (1.0, Atom("b")), (True, Atom("c"))))
    assert decode(encode(colliding)) == colliding
    assert decode(encode(Map(((0.0, 1), (-0.0, 2))))) == Map(((0.0, 1), (-0.0, 2)))
    assert freeze([[1], {2: [3]}]) == FrozenList([FrozenList([1]), Map(((2, FrozenList([3])),))])


def test_duplicate_map_keys_are_rejected() -> None:
    data = b"\x83t\x00\x00\x00\x02w\x01aa\x01w\x01aa\x02"
    with pytest.raises(DecodeError, match="same key"):
        decode(data)


def test_python_keys_that_alias_one_erlang_term_are_refused() -> None:
    with pytest.raises(TypeError, match="same Erlang term"):
        encode({"k": 1, b"k": 2})
    with pytest.raises(TypeError, match="same Erlang term"):
        encode({True: 1, Atom("true"): 2})
    with pytest.raises(TypeError, match="same Erlang term"):
        encode({(None,): 1, (Atom("undefined"),): 2})
    assert decode(encode({"k": 1, Atom("k"): 2})) == {b"k": 1, Atom("k"): 2}


def test_type_error_names_the_type_and_path() -> None:
    with pytest.raises(TypeError, match=r"cannot encode set .* at term\[1\]\[Atom\('k'\)\]\[0\]"):
        encode((1, {Atom("k"): [{1, 2}]}))
    with pytest.raises(TypeError, match=r"float .* at term\[0\]: Erlang floats are finite"):
        encode([float("inf")])
    with pytest.raises(TypeError, match=r"at term<key"):
        encode({object(): 1})


def test_old_and_non_canonical_encodings_decode() -> None:
    assert decode(b"\x83d\x00\x03abc") == Atom("abc")
    assert decode(b"\x83s\x03\xe9t\xe9") == Atom("été")
    assert decode(b"\x83d\x00\x05false") is False
    assert decode(b"\x83c" + b"1.50000000000000000000e+00".ljust(31, b"\x00")) == 1.5
    assert decode(b"\x83gd\x00\x01n\x00\x00\x00\x01\x00\x00\x00\x02\x03") == Pid(Atom("n"), 1, 2, 3)
    assert decode(b"\x83l\x00\x00\x00\x01a\x01k\x00\x02ab") == [1, 97, 98]
    assert decode(b"\x83M\x00\x00\x00\x01\x08\xff") == b"\xff"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x83y\x00", r"LOCAL_EXT \(tag 121\) at byte 1"),
        (b"\x83R\x00", r"ATOM_CACHE_REF \(tag 82\) at byte 1"),
        (b"\x83u\x00", r"FUN_EXT"),
        (b"\x83h\x01P", r"COMPRESSED \(tag 80\) at byte 3"),
        (b"\x83\x01", r"unknown tag 1"),
        (b"\x84a\x01", r"not the version byte"),
        (b"\x83a\x01a", r"1 trailing bytes"),
        (b"\x83F\x7f\xf0\x00\x00\x00\x00\x00\x00", r"finite"),
        (b"\x83n\x01\x02\x01", r"sign"),
        (b"\x83w\x02\xff\xfe", r"not valid UTF-8"),
        (b"\x83Xa\x01", r"not an atom"),
        (b"", r"truncated"),
    ],
)
def test_decode_errors_name_the_tag_and_offset(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode(data)


def test_decode_from_and_body_offsets() -> None:
    frame = b"\x00\x00p" + encode((1, 2)) + encode(Atom("x"))
    term, end = decode_from(frame, 3)
    assert term == (1, 2) and frame[end] == 131
    assert decode_from(frame, end) == (Atom("x"), len(frame))
    assert decode_body_from(frame, 4) == ((1, 2), end)


def test_funs_are_opaque_and_reencode_identically() -> None:
    # fun() -> ok end from etf_golden on OTP 25 (nonode@nohost): NEW_FUN_EXT, no free variables.
    raw = bytes.fromhex(
        "837000000044000102030405060708090a0b0c0d0e0f1000000000000000007703"
        "6d6f6461006200000001587703613462000000010000000000000002"
    )
    raw = raw[:2] + (len(raw) - 2).to_bytes(4, "big") + raw[6:]
    fun = decode(raw)
    assert encode(fun) == raw
    assert (fun.module, fun.arity, fun.free_vars) == (Atom("mod"), 0, ())
    assert pickle.loads(pickle.dumps(fun)) == fun


def test_binary_span_finds_a_binary_even_when_only_its_start_is_there() -> None:
    data = b"\x00" + encode(b"hello")[1:]
    assert binary_span(data, 1) == (6, 11)
    assert binary_span(data[:7], 1) == (6, 11)  # only the start of the binary: same span
    assert binary_span(data[:5], 1) is None  # its length is not complete
    assert binary_span(data, 0) is None  # not a BINARY_EXT
    assert binary_span(encode([1, 2])[1:], 0) is None
