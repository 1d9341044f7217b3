"""Python types for Erlang terms that have no natural Python equivalent.

Every type here is immutable, hashable and compared by value, and never equal to a value of
another type (an ``Atom`` is not equal to the ``str`` with the same text, a ``Pid`` is not equal to
a tuple). The codec (``decoder.py`` / ``encoder.py``) maps the rest of the Erlang term space onto
plain Python values; ``docs/etf.md`` has the full table.

Nothing in this file reads or writes bytes, except ``Fun``, which keeps its wire encoding because
Erlang funs are opaque to a Python node and must go back byte-identical.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any, Final, NoReturn

__all__ = [
    "ATOM_STRONG_CACHE_SIZE",
    "MAX_ATOM_CHARACTERS",
    "Atom",
    "BitString",
    "Charlist",
    "Export",
    "FrozenList",
    "Fun",
    "ImproperList",
    "Map",
    "Pid",
    "Port",
    "Reference",
    "freeze",
]

#: Erlang refuses atoms longer than this many characters (``erl_ext_dist``: "at most 255").
MAX_ATOM_CHARACTERS: Final = 255

#: The first names interned are kept alive forever; later ones only while something uses them.
ATOM_STRONG_CACHE_SIZE: Final = 16384

_strong_atoms: dict[str, Atom] = {}
_weak_atoms: weakref.WeakValueDictionary[str, Atom] = weakref.WeakValueDictionary()


def _immutable(self: object, name: str, value: object = None) -> NoReturn:
    raise AttributeError(f"{type(self).__name__} is immutable")


class Atom(str):
    """An Erlang atom. ``Atom("ok")`` is interned: equal names give the same object.

    Equal only to another ``Atom`` with the same name (never to a plain ``str``); hashes like the
    name. Interning keeps the first ``ATOM_STRONG_CACHE_SIZE`` names alive for the life of the
    process and the rest only as long as they are referenced, so hostile input that makes up
    atom names cannot grow memory without bound (unlike the BEAM atom table).
    """

    __slots__ = ("__weakref__",)

    def __new__(cls, name: str = "") -> Atom:
        if type(name) is not str:
            if type(name) is Atom:
                return name
            if not isinstance(name, str):
                raise TypeError(f"atom name must be a str, not {type(name).__name__}")
            name = str.__str__(name)
        atom = _strong_atoms.get(name)
        if atom is not None:
            return atom
        atom = _weak_atoms.get(name)
        if atom is not None:
            return atom
        if len(name) > MAX_ATOM_CHARACTERS:
            raise ValueError(f"atom name has {len(name)} characters; Erlang allows at most 255")
        atom = str.__new__(cls, name)
        if len(_strong_atoms) < ATOM_STRONG_CACHE_SIZE:
            _strong_atoms[name] = atom
        else:
            _weak_atoms[name] = atom
        return atom

    def __eq__(self, other: object) -> bool:
        return self is other or (type(other) is Atom and str.__eq__(self, other))

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"

    def __reduce__(self) -> tuple[type[Atom], tuple[str]]:
        return (Atom, (str(self),))


class Charlist(str):
    """An Erlang string: a list of character codes, such as ``"abc"`` in Erlang source.

    Decoded from ``STRING_EXT`` (lists of bytes) and encoded back as a list, never as a binary.
    Equal only to another ``Charlist`` with the same characters. ``codes`` gives the integers.
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is Charlist and str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__

    @property
    def codes(self) -> list[int]:
        """The character codes, as Erlang sees them."""
        return [ord(c) for c in self]

    def __repr__(self) -> str:
        return f"Charlist({str.__repr__(self)})"

    def __reduce__(self) -> tuple[type[Charlist], tuple[str]]:
        return (Charlist, (str(self),))


class _Value:
    """Base for immutable value objects: equality and hash over ``_key()``, slots only."""

    __slots__ = ()
    __setattr__ = _immutable
    __delattr__ = _immutable

    def _key(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._key()))

    def __reduce__(self) -> tuple[type[_Value], tuple[Any, ...]]:
        return (type(self), self._key())

    def __repr__(self) -> str:
        args = ", ".join(repr(v) for v in self._key())
        return f"{type(self).__name__}({args})"


class ImproperList(_Value):
    """A list whose last tail is not ``[]``: ``[1, 2 | tail]`` is ``ImproperList((1, 2), tail)``.

    ``items`` is non-empty and ``tail`` is any term except a list (a list tail would make the whole
    a proper list; the decoder folds such tails in).
    """

    __slots__ = ("items", "tail")
    items: tuple[Any, ...]
    tail: Any

    def __init__(self, items: tuple[Any, ...] | list[Any], tail: Any) -> None:
        items = tuple(items)
        if not items:
            raise ValueError("ImproperList needs at least one element before the tail")
        if isinstance(tail, (list, ImproperList, FrozenList, Charlist)):
            raise ValueError("the tail of an ImproperList cannot be a list")
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "tail", tail)

    def _key(self) -> tuple[Any, ...]:
        return (self.items, self.tail)


class BitString(_Value):
    """A bitstring whose length is not a whole number of bytes, e.g. ``<<1:3>>``.

    ``data`` holds the bits most significant first; only the top ``bits`` bits (1..7) of the last
    byte count, and the rest are stored as zero. ``BitString(b"\\x20", 3)`` is ``<<1:3>>``.
    Whole-byte binaries are ``bytes``, never ``BitString``.
    """

    __slots__ = ("bits", "data")
    data: bytes
    bits: int

    def __init__(self, data: bytes, bits: int) -> None:
        if not 1 <= bits <= 7:
            raise ValueError("BitString.bits is the number of bits used in the last byte (1..7)")
        if not data:
            raise ValueError("BitString needs at least one byte")
        data = bytes(data)
        mask = (0xFF << (8 - bits)) & 0xFF
        if data[-1] & ~mask:
            data = data[:-1] + bytes((data[-1] & mask,))
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "bits", bits)

    @property
    def bit_size(self) -> int:
        """Total number of bits, as ``bit_size/1`` in Erlang."""
        return (len(self.data) - 1) * 8 + self.bits

    def _key(self) -> tuple[Any, ...]:
        return (self.data, self.bits)


class Pid(_Value):
    """An Erlang process identifier ``<node.id.serial>`` with its node's ``creation``."""

    __slots__ = ("_hash", "creation", "id", "node", "serial")
    node: Atom
    id: int
    serial: int
    creation: int
    _hash: int

    def __init__(self, node: Atom, id: int, serial: int, creation: int) -> None:
        set_ = object.__setattr__
        set_(self, "node", Atom(node))
        set_(self, "id", id)
        set_(self, "serial", serial)
        set_(self, "creation", creation)
        # Pids are dict keys on every message (process table, links): hash once.
        set_(self, "_hash", hash(("Pid", self.node, id, serial, creation)))

    def _key(self) -> tuple[Any, ...]:
        return (self.node, self.id, self.serial, self.creation)

    def __eq__(self, other: object) -> bool:
        return self is other or (
            type(other) is Pid
            and self._hash == other._hash
            and self.id == other.id
            and self.serial == other.serial
            and self.creation == other.creation
            and self.node == other.node
        )

    def __hash__(self) -> int:
        return self._hash


class Reference(_Value):
    """An Erlang reference: node, creation and 1..5 32-bit id words (wire order)."""

    __slots__ = ("_hash", "creation", "ids", "node")
    node: Atom
    creation: int
    ids: tuple[int, ...]
    _hash: int

    def __init__(self, node: Atom, creation: int, ids: tuple[int, ...] | list[int]) -> None:
        set_ = object.__setattr__
        set_(self, "node", Atom(node))
        set_(self, "creation", creation)
        set_(self, "ids", tuple(ids))
        # References key the monitor, alias and call tables: hash once.
        set_(self, "_hash", hash(("Reference", self.node, creation, self.ids)))

    def _key(self) -> tuple[Any, ...]:
        return (self.node, self.creation, self.ids)

    def __eq__(self, other: object) -> bool:
        return self is other or (
            type(other) is Reference
            and self._hash == other._hash
            and self.ids == other.ids
            and self.creation == other.creation
            and self.node == other.node
        )

    def __hash__(self) -> int:
        return self._hash


class Port(_Value):
    """An Erlang port identifier ``#Port<node.id>`` with its node's ``creation``."""

    __slots__ = ("creation", "id", "node")
    node: Atom
    id: int
    creation: int

    def __init__(self, node: Atom, id: int, creation: int) -> None:
        object.__setattr__(self, "node", Atom(node))
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "creation", creation)

    def _key(self) -> tuple[Any, ...]:
        return (self.node, self.id, self.creation)


class Export(_Value):
    """An external fun ``fun Module:Function/Arity``."""

    __slots__ = ("arity", "function", "module")
    module: Atom
    function: Atom
    arity: int

    def __init__(self, module: Atom, function: Atom, arity: int) -> None:
        object.__setattr__(self, "module", Atom(module))
        object.__setattr__(self, "function", Atom(function))
        object.__setattr__(self, "arity", arity)

    def _key(self) -> tuple[Any, ...]:
        return (self.module, self.function, self.arity)


class Fun(_Value):
    """A local Erlang fun, kept opaque: ``data`` is its complete ``NEW_FUN_EXT`` encoding.

    A Python node cannot run it; it can only pass it on, and it goes back byte-identical.
    Equality and hashing use ``data`` only. The other attributes are read from ``data`` by the
    decoder for inspection: ``module``, ``arity``, ``index``, ``uniq`` (16 bytes), ``old_index``,
    ``old_uniq``, ``pid`` (the creator) and ``free_vars`` (the captured environment).
    """

    __slots__ = (
        "arity",
        "data",
        "free_vars",
        "index",
        "module",
        "old_index",
        "old_uniq",
        "pid",
        "uniq",
    )
    data: bytes
    module: Atom
    arity: int
    index: int
    uniq: bytes
    old_index: int
    old_uniq: int
    pid: Pid
    free_vars: tuple[Any, ...]

    def __init__(
        self,
        data: bytes,
        *,
        module: Atom,
        arity: int,
        index: int,
        uniq: bytes,
        old_index: int,
        old_uniq: int,
        pid: Pid,
        free_vars: tuple[Any, ...],
    ) -> None:
        set_ = object.__setattr__
        set_(self, "data", bytes(data))
        set_(self, "module", module)
        set_(self, "arity", arity)
        set_(self, "index", index)
        set_(self, "uniq", uniq)
        set_(self, "old_index", old_index)
        set_(self, "old_uniq", old_uniq)
        set_(self, "pid", pid)
        set_(self, "free_vars", free_vars)

    def _key(self) -> tuple[Any, ...]:
        return (self.data,)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_fun_from_data, (self.data,))

    def __repr__(self) -> str:
        return f"Fun(<fun {self.module}/{self.arity} #{self.index}, {len(self.free_vars)} free>)"


def _fun_from_data(data: bytes) -> Fun:
    from .decoder import decode_body_from

    fun, _ = decode_body_from(data, 0)
    if not isinstance(fun, Fun):
        raise ValueError("data is not a NEW_FUN_EXT encoding")
    return fun


class FrozenList(_Value):
    """A hashable proper Erlang list, used where Python needs a hashable value (map keys).

    Encodes exactly like a Python ``list`` with the same items.
    """

    __slots__ = ("items",)
    items: tuple[Any, ...]

    def __init__(self, items: tuple[Any, ...] | list[Any] = ()) -> None:
        object.__setattr__(self, "items", tuple(items))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.items[index]

    def _key(self) -> tuple[Any, ...]:
        return (self.items,)

    def __repr__(self) -> str:
        return f"FrozenList({list(self.items)!r})"


class Map(_Value):
    """An Erlang map as an ordered tuple of ``(key, value)`` pairs.

    The decoder returns a ``dict`` for maps, except in two cases where a ``dict`` cannot hold the
    map: when the map is a key of another map (a ``Map`` is hashable) and when two distinct Erlang
    keys are equal in Python (``1``/``1.0``/``true``, ``0.0``/``-0.0``), which a ``dict`` would
    merge. Equality compares the pairs in order; encoding writes them in that order.
    """

    __slots__ = ("pairs",)
    pairs: tuple[tuple[Any, Any], ...]

    def __init__(self, pairs: tuple[tuple[Any, Any], ...] | list[tuple[Any, Any]] = ()) -> None:
        object.__setattr__(self, "pairs", tuple((k, v) for k, v in pairs))

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def _key(self) -> tuple[Any, ...]:
        return (self.pairs,)

    def __repr__(self) -> str:
        return f"Map({list(self.pairs)!r})"


def freeze(term: Any) -> Any:
    """Return a hashable form of ``term`` with the same Erlang meaning.

    ``list`` becomes ``FrozenList``, ``dict`` becomes ``Map``, and tuples and improper lists are
    rebuilt from frozen elements; everything else is returned unchanged. The decoder applies this
    to map keys that Python cannot hash.
    """
    kind = type(term)
    if kind is list:
        return FrozenList(tuple(map(freeze, term)))
    if kind is dict:
        return Map(tuple((freeze(k), freeze(v)) for k, v in term.items()))
    if kind is tuple:
        return tuple(map(freeze, term))
    if kind is ImproperList:
        return ImproperList(tuple(map(freeze, term.items)), freeze(term.tail))
    if kind is Map:
        return Map(tuple((freeze(k), freeze(v)) for k, v in term.pairs))
    return term
