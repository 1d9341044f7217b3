"""Encoder: Python terms -> External Term Format bytes (sans-I/O).

Follows the conventions of OTP 26+ ``term_to_binary/1`` so that ``encode(decode(b)) == b`` for
what those releases produce: atoms as SMALL_ATOM_UTF8_EXT / ATOM_UTF8_EXT, pids as NEW_PID_EXT,
references as NEWER_REFERENCE_EXT, ports as NEW_PORT_EXT (V4_PORT_EXT above 32-bit ids), floats as
NEW_FLOAT_EXT, lists of bytes as STRING_EXT, integers in the smallest of SMALL_INTEGER_EXT,
INTEGER_EXT, SMALL_BIG_EXT, LARGE_BIG_EXT, map pairs in the order given.

Theory of operation: the encoded term is built as a list of ``bytes`` pieces joined once at the
end (large binaries are copied exactly once). ``_ENCODERS`` maps a Python type to the function
that writes it; ``_items`` writes the elements of tuples and lists with the common leaf types
inlined. Unencodable values raise ``TypeError`` naming the type and where it sits in the term.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any, Final

from . import tags as T
from .tags import BINARY_EXT, INTEGER_EXT
from .terms import (
    Atom,
    BitString,
    Charlist,
    Export,
    FrozenList,
    Fun,
    ImproperList,
    Map,
    Pid,
    Port,
    Reference,
)

__all__ = ["encode"]

Encoder = Callable[[Any, "list[Any]"], None]

_CACHE_LIMIT: Final = 8192
_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1

_tag_u32 = struct.Struct(">BI").pack
_tag_i32 = struct.Struct(">Bi").pack
_tag_u16 = struct.Struct(">BH").pack
_tag_f64 = struct.Struct(">Bd").pack
_tag_u32_u8 = struct.Struct(">BIB").pack
_u32 = struct.Struct(">I").pack
_u32x3 = struct.Struct(">III").pack
_u32x2 = struct.Struct(">II").pack
_u64_u32 = struct.Struct(">QI").pack

_VERSION: Final = bytes((T.VERSION,))
_SMALL_INTS: Final = tuple(bytes((T.SMALL_INTEGER_EXT, i)) for i in range(256))
_SMALL_TUPLES: Final = tuple(bytes((T.SMALL_TUPLE_EXT, i)) for i in range(256))
_atom_cache: dict[Any, bytes] = {}


class _Unencodable(Exception):
    """Raised deep in the encoder; ``path`` grows as it travels up, ``encode`` makes a TypeError."""

    def __init__(self, value: Any, why: str) -> None:
        super().__init__(why)
        self.value = value
        self.why = why
        self.path: list[str] = []


def _atom_bytes(name: str) -> bytes:
    raw = name.encode("utf-8")
    if len(raw) < 256:
        return bytes((T.SMALL_ATOM_UTF8_EXT, len(raw))) + raw
    return _tag_u16(T.ATOM_UTF8_EXT, len(raw)) + raw


def _atom(term: Any, out: list[Any]) -> None:
    raw = _atom_cache.get(term)
    if raw is None:
        raw = _atom_bytes(term)
        if len(_atom_cache) >= _CACHE_LIMIT:
            _atom_cache.clear()
        _atom_cache[term] = raw
    out.append(raw)


_TRUE: Final = _atom_bytes("true")
_FALSE: Final = _atom_bytes("false")
_UNDEFINED: Final = _atom_bytes("undefined")
_NIL: Final = bytes((T.NIL_EXT,))


def _bool(term: Any, out: list[Any]) -> None:
    out.append(_TRUE if term else _FALSE)


def _none(term: Any, out: list[Any]) -> None:
    out.append(_UNDEFINED)


def _int(term: int, out: list[Any]) -> None:
    if 0 <= term <= 255:
        out.append(_SMALL_INTS[term])
    elif _INT32_MIN <= term <= _INT32_MAX:
        out.append(_tag_i32(T.INTEGER_EXT, term))
    else:
        magnitude = -term if term < 0 else term
        digits = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little")
        if len(digits) < 256:
            out.append(bytes((T.SMALL_BIG_EXT, len(digits), term < 0)))
        elif len(digits) < 2**32:
            out.append(_tag_u32_u8(T.LARGE_BIG_EXT, len(digits), term < 0))
        else:
            raise _Unencodable(term, "integer is too large for LARGE_BIG_EXT")
        out.append(digits)


def _float(term: float, out: list[Any]) -> None:
    if term - term != 0.0:
        raise _Unencodable(term, "Erlang floats are finite (no inf or nan)")
    out.append(_tag_f64(T.NEW_FLOAT_EXT, term))


def _binary(term: Any, out: list[Any]) -> None:
    if type(term) is memoryview:
        term = term.cast("B") if term.contiguous else term.tobytes()
    out.append(_tag_u32(T.BINARY_EXT, len(term)))
    out.append(term)


def _str(term: str, out: list[Any]) -> None:
    try:
        _binary(term.encode("utf-8"), out)
    except UnicodeEncodeError:
        raise _Unencodable(term, "str is not valid Unicode (lone surrogate)") from None


def _bit_string(term: BitString, out: list[Any]) -> None:
    out.append(_tag_u32_u8(T.BIT_BINARY_EXT, len(term.data), term.bits))
    out.append(term.data)


def _items(items: list[Any] | tuple[Any, ...], out: list[Any]) -> None:
    """Write each element of ``items``; common leaf types are inlined for speed."""
    item = None
    try:
        for item in items:
            kind = type(item)
            if kind is int:
                if 0 <= item <= 255:
                    out.append(_SMALL_INTS[item])
                elif _INT32_MIN <= item <= _INT32_MAX:
                    out.append(_tag_i32(INTEGER_EXT, item))
                else:
                    _int(item, out)
            elif kind is Atom:
                raw = _atom_cache.get(item)
                if raw is None:
                    _atom(item, out)
                else:
                    out.append(raw)
            elif kind is bytes:
                out.append(_tag_u32(BINARY_EXT, len(item)))
                out.append(item)
            elif kind is tuple:  # inline so that each nesting level costs one Python frame
                out.append(_SMALL_TUPLES[len(item)] if len(item) < 256 else _tuple_header(item))
                _items(item, out)
            else:
                encoder = _ENCODERS.get(kind)
                if encoder is None:
                    encoder = _resolve(item)
                encoder(item, out)
    except _Unencodable as exc:
        # The first element that is this object is the one that failed (elements go in order).
        index = next(i for i, x in enumerate(items) if x is item)
        exc.path.append(f"[{index}]")
        raise


def _tuple_header(term: tuple[Any, ...]) -> bytes:
    if len(term) < 256:
        return _SMALL_TUPLES[len(term)]
    return _tag_u32(T.LARGE_TUPLE_EXT, len(term))


def _tuple(term: tuple[Any, ...], out: list[Any]) -> None:
    out.append(_tuple_header(term))
    _items(term, out)


def _as_string(term: list[Any]) -> bytes | None:
    """The bytes of ``term`` if Erlang would write it as STRING_EXT (ints 0..255, < 64 Ki)."""
    if type(term[0]) is not int or len(term) > 65535:
        return None
    try:
        raw = bytes(term)
    except (TypeError, ValueError):
        return None
    return raw if set(map(type, term)) == {int} else None


def _list(term: list[Any], out: list[Any]) -> None:
    if not term:
        out.append(_NIL)
        return
    raw = _as_string(term)
    if raw is not None:
        out.append(_tag_u16(T.STRING_EXT, len(raw)))
        out.append(raw)
    else:
        out.append(_tag_u32(T.LIST_EXT, len(term)))
        _items(term, out)
        out.append(_NIL)


def _frozen_list(term: FrozenList, out: list[Any]) -> None:
    _list(list(term.items), out)


def _charlist(term: Charlist, out: list[Any]) -> None:
    if not term:
        out.append(_NIL)
        return
    try:
        raw = term.encode("latin-1")
    except UnicodeEncodeError:
        raw = b""
    if raw and len(raw) < 65536:
        out.append(_tag_u16(T.STRING_EXT, len(raw)))
        out.append(raw)
    else:
        _list(term.codes, out)


def _improper_list(term: ImproperList, out: list[Any]) -> None:
    out.append(_tag_u32(T.LIST_EXT, len(term.items)))
    _items(term.items, out)
    try:
        _any(term.tail, out)
    except _Unencodable as exc:
        exc.path.append(".tail")
        raise


def _pairs(pairs: Iterable[tuple[Any, Any]], count: int, out: list[Any]) -> None:
    out.append(_tag_u32(T.MAP_EXT, count))
    flat = list(chain.from_iterable(pairs))
    try:
        _items(flat, out)
    except _Unencodable as exc:
        index = int(exc.path.pop()[1:-1])
        key = flat[index - index % 2]
        exc.path.append(f"[{key!r}]" if index % 2 else f"<key {key!r}>")
        raise


#: Python types whose values can encode to the same Erlang term as values of another type in
#: the same group (``"a"``/``b"a"``, ``True``/``Atom("true")``, ``Charlist("a")``/``FrozenList([97])``).
_ALIAS_GROUPS: Final = (
    frozenset({str, bytes, bytearray, memoryview}),
    frozenset({bool, type(None), Atom}),
    frozenset({Charlist, FrozenList}),
)
_COMPOUND_KEYS: Final = frozenset({tuple, FrozenList, ImproperList, Map})
_unambiguous_key_types: dict[frozenset[type], bool] = {}


def _check_distinct_keys(keys: list[Any]) -> None:
    """Refuse a map whose distinct Python keys encode to the same Erlang term: Erlang's
    ``binary_to_term`` rejects such a map (and a distribution connection would fail)."""
    kinds = frozenset(map(type, keys))
    safe = _unambiguous_key_types.get(kinds)
    if safe is None:
        safe = kinds.isdisjoint(_COMPOUND_KEYS) and all(len(kinds & g) < 2 for g in _ALIAS_GROUPS)
        if len(_unambiguous_key_types) < _CACHE_LIMIT:
            _unambiguous_key_types[kinds] = safe
    if safe:
        return
    seen: dict[bytes, Any] = {}
    for key in keys:
        pieces: list[Any] = []
        _any(key, pieces)
        raw = b"".join(pieces)
        if raw in seen:
            raise _Unencodable(key, f"map keys {seen[raw]!r} and {key!r} are the same Erlang term")
        seen[raw] = key


def _dict(term: dict[Any, Any], out: list[Any]) -> None:
    if len(term) > 1:
        _check_distinct_keys(list(term))
    _pairs(term.items(), len(term), out)


def _map(term: Map, out: list[Any]) -> None:
    _check_distinct_keys([k for k, _ in term.pairs])
    _pairs(term.pairs, len(term.pairs), out)


def _pid(term: Pid, out: list[Any]) -> None:
    out.append(bytes((T.NEW_PID_EXT,)))
    _atom(term.node, out)
    out.append(_u32x3(term.id, term.serial, term.creation))


def _port(term: Port, out: list[Any]) -> None:
    if term.id < 0:
        out.append(bytes((T.NEW_PORT_EXT,)))
        _atom(term.node, out)
        out.append(_u32x2(term.id, term.creation))
    else:
        out.append(bytes((T.V4_PORT_EXT,)))
        _atom(term.node, out)
        out.append(_u64_u32(term.id, term.creation))


def _reference(term: Reference, out: list[Any]) -> None:
    out.append(_tag_u16(T.NEWER_REFERENCE_EXT, len(term.ids)))
    _atom(term.node, out)
    out.append(struct.pack(f">I{len(term.ids)}I", term.creation, *term.ids))


def _export(term: Export, out: list[Any]) -> None:
    out.append(bytes((T.EXPORT_EXT,)))
    _atom(term.module, out)
    _atom(term.function, out)
    out.append(_SMALL_INTS[term.arity])


def _fun(term: Fun, out: list[Any]) -> None:
    out.append(term.data)


_ENCODERS: dict[type, Encoder] = {
    Atom: _atom,
    bool: _bool,
    type(None): _none,
    int: _int,
    float: _float,
    str: _str,
    bytes: _binary,
    bytearray: _binary,
    memoryview: _binary,
    BitString: _bit_string,
    tuple: _tuple,
    list: _list,
    FrozenList: _frozen_list,
    Charlist: _charlist,
    ImproperList: _improper_list,
    dict: _dict,
    Map: _map,
    Pid: _pid,
    Port: _port,
    Reference: _reference,
    Export: _export,
    Fun: _fun,
}

#: For subclasses of built-in types (IntEnum, namedtuple, OrderedDict...): first match wins.
_BASES: Final[tuple[tuple[type, Encoder], ...]] = (
    (bool, _bool),
    (int, _int),
    (float, _float),
    (str, _str),
    (bytes, _binary),
    (bytearray, _binary),
    (tuple, _tuple),
    (list, _list),
    (dict, _dict),
)


def _resolve(term: Any) -> Encoder:
    for base, encoder in _BASES:
        if isinstance(term, base):
            return encoder
    raise _Unencodable(term, "no Erlang term corresponds to this type")


def _any(term: Any, out: list[Any]) -> None:
    encoder = _ENCODERS.get(type(term))
    if encoder is None:
        encoder = _resolve(term)
    encoder(term, out)


def _compress(body: bytes, level: int) -> bytes | None:
    """``COMPRESSED`` form of ``body`` like ``term_to_binary(T, [{compressed, Level}])``."""
    packed = zlib.compress(body, level)
    if len(packed) + 5 >= len(body):
        return None
    return bytes((T.VERSION,)) + _tag_u32(T.COMPRESSED, len(body)) + packed


def encode(term: Any, *, compressed: bool | int = False) -> bytes:
    """Encode ``term`` as External Term Format bytes, starting with the version byte 131.

    ``compressed`` is ``False`` (default), ``True`` (zlib level 6, like Erlang's ``compressed``)
    or a level 0..9; as in Erlang, the compressed form is used only when it is smaller.
    Raises ``TypeError`` for a value with no Erlang equivalent, naming its type and its place in
    ``term`` (e.g. ``term[2]['key']``), and ``ValueError`` for terms nested too deeply
    (or containing themselves).
    """
    try:
        if type(term) is tuple and len(term) < 256:  # the shape of most messages
            pieces: list[Any] = [_VERSION, _SMALL_TUPLES[len(term)]]
            _items(term, pieces)
        else:
            pieces = [_VERSION]
            encoder = _ENCODERS.get(type(term))
            if encoder is None:
                encoder = _resolve(term)
            encoder(term, pieces)
    except _Unencodable as exc:
        where = "term" + "".join(reversed(exc.path))
        raise TypeError(
            f"cannot encode {type(exc.value).__name__} {exc.value!r:.80} at {where}: {exc.why}"
        ) from None
    except RecursionError:
        raise ValueError("term is nested too deeply for the encoder (or contains itself)") from None
    if compressed is False:  # the common case, without a call
        return b"".join(pieces)
    return with_compression(b"".join(pieces), compressed)


def with_compression(data: bytes, compressed: bool | int) -> bytes:
    """Apply ``encode``'s ``compressed`` option to the uncompressed encoding ``data``."""
    if compressed is False:
        return data
    level = 6 if compressed is True else int(compressed)
    if not 0 <= level <= 9:
        raise ValueError(f"compression level must be 0..9, not {level}")
    return _compress(data[1:], level) or data
