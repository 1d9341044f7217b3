"""What decoding allocates (issue 12, decoder amplification): measured with tracemalloc on
inputs where one or a few input bytes make one Python object, with and without a memory budget,
against the bounds docs/etf.md states (``ALLOC_PER_BYTE``, ``UNCHARGED_PER_BYTE``,
``ALLOC_CONSTANT``). Honest terms of every kind decode within a budget of 64 bytes per byte."""

from __future__ import annotations

import gc
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from beamlink.etf import (
    ALLOC_CONSTANT,
    ALLOC_PER_BYTE,
    UNCHARGED_PER_BYTE,
    MemoryBudgetError,
    decode,
    decode_body_exact,
    decode_from,
    encode,
    with_memory_budget,
)
from beamlink.etf.decoder import _budget

from .strategies import terms

COUNT = 20_000


def _list(element: bytes, count: int = COUNT) -> bytes:
    return b"\x83l" + struct.pack(">I", count) + element * count + b"j"


def _tuple(element: bytes, count: int = COUNT) -> bytes:
    return b"\x83i" + struct.pack(">I", count) + element * count


def _tail(element: bytes, count: int = COUNT) -> bytes:
    """[0 | [element, element, ...]]: the elements sit in a list tail (decoded by _with_tail)."""
    return b"\x83l\x00\x00\x00\x01a\x00" + _list(element, count)[1:]


def _map(count: int = COUNT) -> bytes:
    return b"\x83t" + struct.pack(">I", count) + b"".join(
        b"b" + struct.pack(">i", i) + b"j" for i in range(count)
    )


#: Inputs where a few bytes make one object (the worst cases of each kind).
HOSTILE = {
    "empty lists": _list(b"j"),
    "empty lists in a tuple": _tuple(b"j"),
    "empty lists in a list tail": _tail(b"j"),
    "1-tuples of empty lists": _list(b"h\x01j"),
    "1-element lists": _list(b"l\x00\x00\x00\x01a\x01j"),
    "empty tuples": _list(b"h\x00"),
    "empty maps": _list(b"t\x00\x00\x00\x00"),
    "maps of empty lists": _map(),
    "empty binaries": _list(b"m\x00\x00\x00\x00"),
    "small ints": _list(b"a\x07"),
    "ints": _list(b"b\x00\x01\x00\x00"),
    "empty strings": _list(b"k\x00\x00"),
    "1-char strings": _list(b"k\x00\x01A"),
    "empty atoms": _list(b"w\x00"),
    "improper lists": _list(b"l\x00\x00\x00\x01a\x01a\x02"),
    "floats": _list(b"F" + struct.pack(">d", 1.5)),
    "bit binaries": _list(b"M\x00\x00\x00\x01\x03\x80"),
    "small bignums": _list(b"n\x01\x00\xff"),
    "exports": _list(b"qw\x00w\x00a\x01"),
    "references": _list(b"Z\x00\x01w\x00" + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x05"),
}


def _peak(fn: Callable[[], Any]) -> int:
    """Peak bytes traced while ``fn`` runs (its result is kept alive until the peak is read)."""
    gc.collect()
    tracemalloc.start()
    try:
        try:
            result = fn()
        except MemoryBudgetError:
            result = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del result
    return peak


@pytest.fixture(autouse=True)
def _no_budget_left_over() -> Iterator[None]:
    yield
    assert getattr(_budget, "left", None) is None


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_unbudgeted_decode_stays_within_the_stated_multiple(name: str) -> None:
    data = HOSTILE[name]
    peak = _peak(lambda: decode(data))
    assert peak <= ALLOC_PER_BYTE * len(data) + ALLOC_CONSTANT, (name, peak / len(data))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_budgeted_decode_stays_within_budget_plus_uncharged(name: str) -> None:
    data = HOSTILE[name]
    budget = 8 * len(data)
    peak = _peak(lambda: decode(data, max_memory=budget))
    assert peak <= budget + UNCHARGED_PER_BYTE * len(data) + ALLOC_CONSTANT, (
        name,
        peak / len(data),
    )


@pytest.mark.parametrize("name", ["empty lists", "empty lists in a list tail", "empty strings"])
def test_amplifying_input_is_refused_with_a_budget(name: str) -> None:
    data = HOSTILE[name]
    with pytest.raises(MemoryBudgetError, match="memory budget of 100000 bytes"):
        decode(data, max_memory=100_000)
    assert len(decode(data, max_memory=80 * len(data))) >= COUNT


def test_budget_spans_several_decodes() -> None:
    one = _list(b"j", 1000)
    both = one + one

    def two_terms() -> Any:
        first, end = decode_from(both, 0)
        return first, decode_from(both, end)[0]

    with_memory_budget(200_000, two_terms)
    with pytest.raises(MemoryBudgetError):
        with_memory_budget(100_000, two_terms)


def test_budget_applies_to_the_inflated_term() -> None:
    data = encode([[]] * 50_000, compressed=9)
    assert len(data) < 1000
    with pytest.raises(MemoryBudgetError):
        decode(data, max_memory=1_000_000)


def test_exact_decode_takes_a_budget() -> None:
    data = _list(b"j", 1000)
    with pytest.raises(MemoryBudgetError):
        decode_body_exact(data, 1, len(data), max_memory=10_000)
    assert decode_body_exact(data, 1, len(data), max_memory=100_000) == [[]] * 1000


def test_negative_budget_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="max_memory"):
        decode(b"\x83j", max_memory=-1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(terms)
def test_honest_terms_fit_a_budget_of_64_bytes_per_byte(term: Any) -> None:
    """Generated terms of every type (tuples, lists, maps, strings...) decode within
    64 bytes of budget per input byte plus a small constant."""
    data = encode(term)
    assert encode(decode(data, max_memory=64 * len(data) + 4096)) == data


def test_gc_pause_is_keyed_on_the_term_not_the_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pure decoder pauses the cyclic GC for a term that may span more than
    GC_PAUSE_BYTES, not for a small term at an offset inside a large input (a frame inside a
    large socket read)."""
    from beamlink.etf import decoder

    paused: list[int] = []
    real = decoder._without_gc
    monkeypatch.setattr(decoder, "_without_gc", lambda body: paused.append(1) or real(body))
    big = decoder.GC_PAUSE_BYTES + 10
    head = encode(b"x" * big)[1:]
    small = encode((1, 2))[1:]
    data = head + small
    assert decoder.decode_body_exact(data, len(head), len(data)) == (1, 2)
    assert decoder.decode_body_from(data, len(head)) == ((1, 2), len(data))
    assert paused == []
    assert decoder.decode_body_exact(data, 0, len(head)) == b"x" * big
    assert paused == [1]
    assert decoder.decode_body_from(data, 0)[1] == len(head)
    assert paused == [1, 1]
