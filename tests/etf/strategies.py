"""Hypothesis strategies producing every kind of Python term beamlink encodes."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from beamlink.etf import (
    Atom,
    BitString,
    Charlist,
    Export,
    FrozenList,
    ImproperList,
    Map,
    Pid,
    Port,
    Reference,
)

EDGES = [0, 255, 256, 2**27, 2**31, 2**32, 2**63, 2**64, 2**2040, 2**2048]
u32 = st.integers(0, 2**32 - 1)
atoms = st.text(max_size=20).map(Atom)
nodes = st.sampled_from(["a@b", "py@127.0.0.1", "nonode@nohost", "ñode@hôst"]).map(Atom)

integers = st.one_of(
    st.integers(),
    st.integers(-(2**3000), 2**3000),
    st.sampled_from(EDGES).flatmap(lambda e: st.sampled_from([e - 1, e, e + 1, -e - 1, -e, 1 - e])),
)
floats = st.floats(allow_nan=False, allow_infinity=False)
bit_strings = st.builds(BitString, st.binary(min_size=1, max_size=8), st.integers(1, 7))
identifiers = st.one_of(
    st.builds(Pid, nodes, u32, u32, u32),
    st.builds(Port, nodes, st.integers(0, 2**64 - 1), u32),
    st.builds(Reference, nodes, u32, st.lists(u32, min_size=1, max_size=5).map(tuple)),
    st.builds(Export, atoms, atoms, st.integers(0, 255)),
)
leaves: st.SearchStrategy[Any] = st.one_of(
    integers,
    floats,
    atoms,
    st.binary(max_size=40),
    st.text(max_size=20),
    st.text(max_size=20).map(Charlist),
    st.lists(st.integers(0, 255), max_size=20),
    bit_strings,
    st.sampled_from([True, False, None, (), [], {}]),
    identifiers,
)
#: Map keys that never encode to the same Erlang term as another key of a different type.
keys = st.one_of(integers, floats, atoms, st.binary(max_size=10), identifiers, bit_strings)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    tails = st.one_of(integers, atoms, st.binary(max_size=5), floats)
    return st.one_of(
        st.lists(children, max_size=6),
        st.lists(children, max_size=6).map(tuple),
        st.dictionaries(st.one_of(keys, st.tuples(keys, keys)), children, max_size=5),
        st.builds(ImproperList, st.lists(children, min_size=1, max_size=4), tails),
        st.lists(children, max_size=4).map(FrozenList),
        st.lists(st.tuples(keys, children), max_size=4).map(
            lambda pairs: Map(tuple({repr(k): (k, v) for k, v in pairs}.values()))
        ),
    )


terms: st.SearchStrategy[Any] = st.recursive(leaves, _containers, max_leaves=30)
