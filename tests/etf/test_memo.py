"""`decode_body_exact` and its memo of small immutable terms, and the cached hashes of Pid and
Reference: memoized results must be indistinguishable from fresh decodes, never shared when
mutable, and never stretch a term over bytes that are not its own."""

from __future__ import annotations

import contextlib
import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamlink.etf import (
    MEMO_MAX_BYTES,
    Atom,
    DecodeError,
    Pid,
    Reference,
    decode_body_exact,
    decode_body_from,
    encode,
)
from tests.etf.strategies import nodes, terms, u32

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def body(term: Any) -> bytes:
    return encode(term)[1:]


@FAST
@given(terms, st.binary(max_size=3), st.binary(max_size=3))
def test_exact_decode_equals_a_fresh_decode_every_time(term: Any, before: bytes, after: bytes) -> None:
    raw = body(term)
    data = before + raw + after
    fresh, end = decode_body_from(raw)
    assert end == len(raw)
    for _ in range(3):  # first sighting, memoized on the second, served from the memo on the third
        got = decode_body_exact(data, len(before), len(before) + len(raw))
        assert type(got) is type(fresh)
        assert encode(got) == encode(fresh)


def test_repeated_immutable_term_is_served_from_the_memo() -> None:
    raw = body((Atom("hello"), b"world", 42, Pid(Atom("n@h"), 1, 2, 3), (1.5, Atom("x"))))
    first = decode_body_exact(raw, 0, len(raw))
    second = decode_body_exact(raw, 0, len(raw))
    assert decode_body_exact(raw, 0, len(raw)) is second
    assert first == second


@pytest.mark.parametrize(
    "term",
    [
        (Atom("a"), [Atom("x"), 300]),
        (Atom("a"), []),
        (Atom("a"), {Atom("k"): 1}),
        [1000, 2000, 3000],
        (Atom("deep"), (1, (2, [Atom("y")]))),
    ],
    ids=["list-inside", "nil-inside", "map-inside", "list", "nested-list"],
)
def test_mutable_terms_are_never_shared(term: Any) -> None:
    raw = body(term)
    results = [decode_body_exact(raw, 0, len(raw)) for _ in range(4)]
    for i, a in enumerate(results):
        for b in results[i + 1 :]:
            assert a is not b
    mutable = results[0] if type(results[0]) is list else results[0][-1]
    while type(mutable) is tuple:
        mutable = mutable[-1]
    if type(mutable) is list:
        mutable.append(99)
    else:
        mutable[Atom("new")] = 1
    assert decode_body_exact(raw, 0, len(raw)) == term


def test_a_term_must_fill_its_range_exactly() -> None:
    raw = body((Atom("hello"), 1))
    for _ in range(3):
        assert decode_body_exact(raw, 0, len(raw)) == (Atom("hello"), 1)
    with pytest.raises(DecodeError, match="ends at byte"):
        decode_body_exact(raw + b"a\x01", 0, len(raw) + 2)  # a memoized term plus more bytes
    with pytest.raises(DecodeError, match="ends at byte"):
        decode_body_exact(raw + raw, 0, len(raw) - 1)  # stops short of the term's own end
    big = body((Atom("big"), bytes(MEMO_MAX_BYTES * 2)))
    with pytest.raises(DecodeError, match="ends at byte"):
        decode_body_exact(big + b"j", 0, len(big) + 1)


def test_the_memo_respects_a_smaller_max_depth() -> None:
    raw = body((((1,),),))
    for _ in range(3):
        assert decode_body_exact(raw, 0, len(raw)) == (((1,),),)
    with pytest.raises(DecodeError, match="max_depth"):
        decode_body_exact(raw, 0, len(raw), max_depth=2)


@FAST
@given(st.binary(max_size=MEMO_MAX_BYTES + 20))
def test_garbage_raises_only_decode_error_even_when_repeated(data: bytes) -> None:
    for _ in range(3):
        with contextlib.suppress(DecodeError):
            decode_body_exact(data, 0, len(data))


@FAST
@given(st.builds(Pid, nodes, u32, u32, u32), st.builds(Pid, nodes, u32, u32, u32))
def test_pid_equality_and_hash_follow_the_fields(a: Pid, b: Pid) -> None:
    same = (a.node, a.id, a.serial, a.creation) == (b.node, b.id, b.serial, b.creation)
    assert (a == b) is same and (a != b) is not same
    copy = Pid(a.node, a.id, a.serial, a.creation)
    assert copy == a and hash(copy) == hash(a) and {copy: 1}[a] == 1
    assert pickle.loads(pickle.dumps(a)) == a and hash(pickle.loads(pickle.dumps(a))) == hash(a)


@FAST
@given(
    st.builds(Reference, nodes, u32, st.lists(u32, min_size=1, max_size=3).map(tuple)),
    st.builds(Reference, nodes, u32, st.lists(u32, min_size=1, max_size=3).map(tuple)),
)
def test_reference_equality_and_hash_follow_the_fields(a: Reference, b: Reference) -> None:
    same = (a.node, a.creation, a.ids) == (b.node, b.creation, b.ids)
    assert (a == b) is same and (a != b) is not same
    copy = Reference(a.node, a.creation, list(a.ids))
    assert copy == a and hash(copy) == hash(a)
    assert pickle.loads(pickle.dumps(a)) == a
    assert a != Pid(a.node, a.ids[0], 0, a.creation)
