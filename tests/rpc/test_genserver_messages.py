"""gen_server message shapes: calls with ref and alias tags, casts, and where replies go."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from beamlink.etf import Atom, ImproperList, Pid, Reference
from beamlink.node.genserver import GEN_CALL, GEN_CAST, parse_call, parse_cast

PID = Pid(Atom("erl@127.0.0.1"), 90, 0, 1700000000)
REF = Reference(Atom("erl@127.0.0.1"), 1700000000, (1, 2, 3))
ALIAS_TAG = ImproperList((Atom("alias"),), REF)


def test_calls_are_parsed_with_any_tag() -> None:
    assert parse_call((GEN_CALL, (PID, REF), Atom("ping"))) == ((PID, REF), Atom("ping"))
    assert parse_call((GEN_CALL, (PID, ALIAS_TAG), 1)) == ((PID, ALIAS_TAG), 1)


def test_cast_and_plain_messages() -> None:
    assert parse_cast((GEN_CAST, [1])) == (True, [1])
    assert parse_cast((GEN_CAST, 1, 2)) == (False, None)
    assert parse_cast([GEN_CAST, 1]) == (False, None)


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.tuples(st.just(GEN_CALL), st.integers(), st.integers()),
        st.tuples(st.just(GEN_CALL), st.tuples(st.integers(), st.integers()), st.integers()),
        st.tuples(st.just(Atom("$gen_call")), st.tuples(st.just(REF), st.just(REF)), st.none()),
        st.lists(st.integers()),
        st.text(),
    )
)
def test_non_calls_are_not_calls(msg: Any) -> None:
    assert parse_call(msg) is None
