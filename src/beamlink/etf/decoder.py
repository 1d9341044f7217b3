"""Decoder: External Term Format bytes -> Python terms (sans-I/O, never evaluates anything).

Theory of operation
-------------------
One function per tag, found through ``_DISPATCH`` (a 256-entry list indexed by the tag byte).
Each takes ``(data, pos, depth)`` with ``data[pos]`` being its tag and returns
``(term, end_pos)``. ``depth`` is the nesting budget left: containers refuse to open when it is
spent, so nesting is bounded by ``max_depth`` and every level costs exactly one Python frame.

Rules every function keeps:
1. A length read from the input is checked against the bytes that remain *before* anything
   of that size is allocated, so a 4 GiB declared length costs nothing.
2. Every failure is a ``DecodeError`` naming the tag and byte offset. Fixed-size reads past the
   end raise ``IndexError``/``struct.error``, which the reading function converts.
3. Nothing is built by repeated concatenation; bytes are sliced once.

Memory: a decode may be given a budget (``max_memory``, bytes). The objects that can cost more than
10 bytes of memory per byte of input are charged against it where they are created: each tuple,
list and map (its header and one pointer per element), each ``[]`` and each ``Charlist``; the
rest (numbers, binaries, atoms, pids...) costs at most 10 bytes per input byte and is not
charged. The budget lives in ``_budget`` (thread-local; the accelerator reads and writes the
same one around its calls into this module) and ``_budgeted`` counts the decodes using one (the
accelerator is told each new count through ``_budget_watchers``), so that an unbudgeted decode
pays one global read per container. Spending past the budget is a
``MemoryBudgetError``.

Speed: ``_sequence`` decodes tuples, lists and maps with the commonest leaf tags (small
integers, integers, UTF-8 atoms, binaries) inlined. Atoms are cached by their raw encoding and pids
by theirs (a pid is looked up by its bytes before anything is parsed); `decode_body_exact`
memoizes a small immutable term that comes twice in a row. All caches are bounded (cleared when
full) and keyed by exact bytes.
"""

from __future__ import annotations

import gc
import re
import struct
import threading
import zlib
from collections.abc import Callable
from functools import partial
from typing import Any, Final, ParamSpec

from beamlink.errors import RemoteProtocolError

from . import tags as T
from .tags import (
    BINARY_EXT,
    COMPRESSED,
    INTEGER_EXT,
    LARGE_TUPLE_EXT,
    MAP_EXT,
    NIL_EXT,
    SMALL_ATOM_UTF8_EXT,
    SMALL_INTEGER_EXT,
    SMALL_TUPLE_EXT,
    VERSION,
)
from .terms import (
    MAX_ATOM_CHARACTERS,
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
    freeze,
)

__all__ = [
    "ALLOC_CONSTANT",
    "ALLOC_PER_BYTE",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "MEMO_MAX_BYTES",
    "UNCHARGED_PER_BYTE",
    "DecodeError",
    "MemoryBudgetError",
    "binary_span",
    "decode",
    "decode_body_exact",
    "decode_body_from",
    "decode_from",
    "with_memory_budget",
]

#: Default nesting limit. Each level uses one Python frame, so keep it well below
#: ``sys.getrecursionlimit()`` minus the caller's own depth.
DEFAULT_MAX_DEPTH: Final = 512

#: Default cap on the input and on the inflated size of a compressed term, in bytes.
DEFAULT_MAX_SIZE: Final = 64 * 1024 * 1024

_CACHE_LIMIT: Final = 8192

Decoder = Callable[[bytes, int, int], "tuple[Any, int]"]
_P = ParamSpec("_P")


class DecodeError(RemoteProtocolError, ValueError):
    """The input is not a valid External Term Format encoding (message says where and why)."""


class MemoryBudgetError(DecodeError):
    """Decoding the input would allocate more memory than the caller's ``max_memory`` allows."""


#: Decoding n bytes without a budget (and without compression) allocates at most
#: ``ALLOC_PER_BYTE * n + ALLOC_CONSTANT`` bytes (64-bit CPython; measured worst case: a tuple
#: of empty lists, 72 bytes per input byte); with a budget, at most
#: ``max_memory + UNCHARGED_PER_BYTE * n + ALLOC_CONSTANT``. tests/etf/test_memory.py checks both.
ALLOC_PER_BYTE: Final = 80
UNCHARGED_PER_BYTE: Final = 16
ALLOC_CONSTANT: Final = 256 * 1024

#: What the budget charges (bytes, 64-bit CPython): a container's header, each element slot,
#: an empty list, a Charlist (plus its characters).
COST_CONTAINER: Final = 64
COST_SLOT: Final = 8
COST_NIL: Final = 56
COST_CHARLIST: Final = 96
#: Terms that may span more than this many bytes (to their known end, else to the end of the
#: input) are decoded with the cyclic GC paused: it would scan the growing result again and again
#: (the C decoder does the same). Keyed on the term, not the input: the frame reader decodes
#: small terms at offsets inside one large socket read.
GC_PAUSE_BYTES: Final = 1 << 20
_NIL_BATCH: Final = 256  # empty lists in one container charged together

_budget = threading.local()  # .left: bytes still allowed, .limit: the budget (absent: none)
_budgeted = 0  # decodes with a budget running now, in any thread
_budgeted_lock = threading.Lock()
_budget_watchers: list[Callable[[int], None]] = []  # told each new _budgeted (the accelerator)


def _over_budget() -> MemoryBudgetError:
    return MemoryBudgetError(
        f"decoding needs more than the memory budget of {_budget.limit} bytes "
        "(max_memory; see docs/etf.md, Safety)"
    )


def _spend(cost: int) -> None:
    """Charge ``cost`` bytes to this thread's budget, if a budgeted decode is running in it."""
    left = getattr(_budget, "left", None)
    if left is not None:
        left -= cost
        _budget.left = left
        if left < 0:
            raise _over_budget()


def with_memory_budget(
    max_memory: int, body: Callable[_P, Any], *args: _P.args, **kwargs: _P.kwargs
) -> Any:
    """Run ``body(*args, **kwargs)`` with ``max_memory`` bytes of budget for every decode it
    makes in this thread (together), e.g. the control term and the message of one frame. Each
    decode function given ``max_memory`` runs itself again through this, without it."""
    global _budgeted
    if max_memory < 0:
        raise ValueError(f"max_memory must be >= 0, got {max_memory}")
    outer = getattr(_budget, "left", None), getattr(_budget, "limit", None)
    _budget.left = _budget.limit = max_memory
    with _budgeted_lock:
        _budgeted += 1
        for watch in _budget_watchers:
            watch(_budgeted)
    try:
        return body(*args, **kwargs)
    finally:
        with _budgeted_lock:
            _budgeted -= 1
            for watch in _budget_watchers:
                watch(_budgeted)
        _budget.left, _budget.limit = outer


def _fail(tag: int, pos: int, why: str) -> DecodeError:
    name = T.NAMES.get(tag, f"unknown tag {tag}")
    return DecodeError(f"{name} (tag {tag}) at byte {pos}: {why}")


def _truncated(tag: int, pos: int) -> DecodeError:
    return _fail(tag, pos, "input ends inside this term (truncated)")


def _too_deep(tag: int, pos: int) -> DecodeError:
    return _fail(tag, pos, "nesting exceeds max_depth")


_u16 = struct.Struct(">H").unpack_from
_u32 = struct.Struct(">I").unpack_from
_i32 = struct.Struct(">i").unpack_from
_f64 = struct.Struct(">d").unpack_from
_pid_tail = struct.Struct(">III").unpack_from
_old_pid_tail = struct.Struct(">IIB").unpack_from
_u32_u32 = struct.Struct(">II").unpack_from
_u64_u32 = struct.Struct(">QI").unpack_from
_u32_u8 = struct.Struct(">IB").unpack_from
_fun_head = struct.Struct(">IB16sII").unpack_from
_STRUCT_ERRORS = (IndexError, struct.error)

#: Largest term (in bytes) that `decode_body_exact` memoizes.
MEMO_MAX_BYTES: Final = 96

_atom_cache: dict[bytes, Any] = {}
_pid_cache: dict[bytes, Pid] = {}
_SEEN_ONCE: Final = object()  # these bytes were decoded once, not memoized
# The bytes of the last small term `decode_body_exact` decoded, and its value once it came twice
# in a row (else _SEEN_ONCE); one tuple, replaced whole, so threads never see a torn pair.
_last_exact: tuple[bytes, Any] = (b"", _SEEN_ONCE)
# Decoded types whose values are immutable all the way down (tuples are checked element-wise;
# ImproperList, Map and Fun are left out because they can hold lists).
_IMMUTABLE_TYPES: Final = frozenset(
    {Atom, int, bytes, float, bool, Pid, Reference, Port, Charlist, BitString, Export}
)


def _is_immutable(term: Any) -> bool:
    if type(term) is not tuple:
        return type(term) in _IMMUTABLE_TYPES
    return _IMMUTABLE_TYPES.issuperset(map(type, term)) or all(map(_is_immutable, term))
_BOOLS: Final = {"true": True, "false": False}
_FLOAT_TEXT = re.compile(rb"[-+]?[0-9]+\.[0-9]+e[-+]?[0-9]+\0*")


# --- atoms -----------------------------------------------------------------------------------

_ATOM_LAYOUT: Final = {
    # tag: (length field size, text encoding)
    T.SMALL_ATOM_UTF8_EXT: (1, "utf-8"),
    T.ATOM_UTF8_EXT: (2, "utf-8"),
    T.SMALL_ATOM_EXT: (1, "latin-1"),
    T.ATOM_EXT: (2, "latin-1"),
}


def _new_atom(data: bytes, pos: int) -> tuple[Any, int]:
    """Decode an atom that is not in the cache yet, then cache it by its raw bytes."""
    tag = data[pos]
    width, encoding = _ATOM_LAYOUT[tag]
    start = pos + 1 + width
    if start > len(data):
        raise _truncated(tag, pos)
    end = start + int.from_bytes(data[pos + 1 : start], "big")
    if end > len(data):
        raise _truncated(tag, pos)
    try:
        name = data[start:end].decode(encoding)
    except UnicodeDecodeError:
        raise _fail(tag, pos, "atom text is not valid UTF-8") from None
    if len(name) > MAX_ATOM_CHARACTERS:
        raise _fail(tag, pos, f"atom has {len(name)} characters, more than 255")
    value: Any = _BOOLS.get(name)
    if value is None:
        value = Atom(name)
    if len(_atom_cache) >= _CACHE_LIMIT:
        _atom_cache.clear()
    _atom_cache[data[pos:end]] = value
    return value, end


def _atom(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    # The raw slice is only a cache key: a truncated slice never equals a cached (complete) one,
    # and on a miss ``_new_atom`` checks every length.
    if data[pos] == T.SMALL_ATOM_UTF8_EXT or data[pos] == T.SMALL_ATOM_EXT:
        end = pos + 2 + (data[pos + 1] if pos + 1 < len(data) else 0)
    else:
        end = pos + 3 + int.from_bytes(data[pos + 1 : pos + 3], "big")
    value = _atom_cache.get(data[pos:end])
    if value is None:
        return _new_atom(data, pos)
    return value, end


def _node(data: bytes, pos: int, owner: int, owner_pos: int) -> tuple[Atom, int]:
    """Decode the node-name atom inside a pid, port or reference."""
    if pos >= len(data):
        raise _truncated(owner, owner_pos)
    if data[pos] not in _ATOM_LAYOUT:
        raise _fail(owner, owner_pos, f"node name at byte {pos} is not an atom")
    node, end = _atom(data, pos, 0)
    if type(node) is not Atom:
        raise _fail(owner, owner_pos, "node name is not a valid node atom")
    return node, end


def _atom_cache_ref(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    raise _fail(
        data[pos],
        pos,
        "atom cache references are only valid with a distribution header atom cache, "
        "which beamlink does not negotiate",
    )


# --- numbers ---------------------------------------------------------------------------------


def _small_integer(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    try:
        return data[pos + 1], pos + 2
    except IndexError:
        raise _truncated(data[pos], pos) from None


def _integer(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    try:
        return _i32(data, pos + 1)[0], pos + 5
    except struct.error:
        raise _truncated(data[pos], pos) from None


def _big(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    tag = data[pos]
    try:
        if tag == T.SMALL_BIG_EXT:
            n = data[pos + 1]
            sign = data[pos + 2]
            start = pos + 3
        else:
            n, sign = _u32_u8(data, pos + 1)
            start = pos + 6
    except _STRUCT_ERRORS:
        raise _truncated(tag, pos) from None
    end = start + n
    if end > len(data):
        raise _truncated(tag, pos)
    if sign > 1:
        raise _fail(tag, pos, f"sign byte is {sign}, not 0 or 1")
    value = int.from_bytes(data[start:end], "little")
    return (-value if sign else value), end


def _new_float(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    try:
        value: float = _f64(data, pos + 1)[0]
    except struct.error:
        raise _truncated(data[pos], pos) from None
    if value - value != 0.0:
        raise _fail(data[pos], pos, "Erlang floats are finite (got inf or nan)")
    return value, pos + 9


def _float_text(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    end = pos + 32
    if end > len(data):
        raise _truncated(data[pos], pos)
    text = data[pos + 1 : end]
    if _FLOAT_TEXT.fullmatch(text) is None:
        raise _fail(data[pos], pos, "float text is not in %.20e format")
    value = float(text.rstrip(b"\0"))
    if value - value != 0.0:
        raise _fail(data[pos], pos, "Erlang floats are finite")
    return value, end


# --- binaries and strings --------------------------------------------------------------------


def _binary(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    try:
        end = pos + 5 + _u32(data, pos + 1)[0]
    except struct.error:
        raise _truncated(data[pos], pos) from None
    if end > len(data):
        raise _truncated(data[pos], pos)
    return data[pos + 5 : end], end


def binary_span(data: bytes, offset: int) -> tuple[int, int] | None:
    """Where the bytes of the BINARY_EXT at ``data[offset]`` start and end, or None when no
    BINARY_EXT with a complete length starts there. The end is not checked against
    ``len(data)``: ``data`` may hold only the start of the term (a message's first fragment)."""
    if len(data) - offset < 5 or offset < 0 or data[offset] != BINARY_EXT:
        return None
    return offset + 5, offset + 5 + _u32(data, offset + 1)[0]


def _bit_binary(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    try:
        n, bits = _u32_u8(data, pos + 1)
    except struct.error:
        raise _truncated(data[pos], pos) from None
    end = pos + 6 + n
    if end > len(data):
        raise _truncated(data[pos], pos)
    if n == 0 and bits == 0:
        return b"", end
    if n == 0 or not 1 <= bits <= 8:
        raise _fail(data[pos], pos, f"invalid bit count {bits} for {n} bytes")
    if bits == 8:
        return data[pos + 6 : end], end
    try:
        return BitString(data[pos + 6 : end], bits), end
    except ValueError as exc:
        raise _fail(data[pos], pos, str(exc)) from None


def _string(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    try:
        end = pos + 3 + (data[pos + 1] << 8 | data[pos + 2])
    except IndexError:
        raise _truncated(data[pos], pos) from None
    if end > len(data):
        raise _truncated(data[pos], pos)
    if _budgeted:
        _spend(COST_CHARLIST + end - pos)
    return Charlist(data[pos + 3 : end], "latin-1"), end


# --- containers ------------------------------------------------------------------------------


def _sequence(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    """Decode a tuple, list or map: the header, the elements (common leaves inlined), the end."""
    start = pos
    tag = data[pos]
    try:
        if tag == SMALL_TUPLE_EXT:
            count = data[pos + 1]
            pos += 2
        else:
            count = _u32(data, pos + 1)[0] << (tag == MAP_EXT)  # a map has 2 terms per entry
            pos += 5
    except _STRUCT_ERRORS:
        raise _truncated(tag, start) from None
    if count > len(data) - pos or depth <= 0:
        if count > len(data) - pos:
            raise _fail(tag, start, f"declares {count} terms but only {len(data) - pos} bytes remain")
        if count:
            raise _too_deep(tag, start)
    depth -= 1
    if _budgeted:
        _spend(COST_CONTAINER + COST_SLOT * count)
    out: list[Any] = []
    nils = 0  # empty-list elements not charged yet (charged in batches: few thread-local reads)
    try:
        for _ in range(count):
            item_tag = data[pos]
            if item_tag == SMALL_INTEGER_EXT:
                out.append(data[pos + 1])
                pos += 2
            elif item_tag == SMALL_ATOM_UTF8_EXT:
                end = pos + 2 + data[pos + 1]
                value = _atom_cache.get(data[pos:end])
                if value is None:
                    value, end = _new_atom(data, pos)
                out.append(value)
                pos = end
            elif item_tag == BINARY_EXT:
                end = pos + 5 + _u32(data, pos + 1)[0]
                if end > len(data):
                    raise _truncated(item_tag, pos)
                out.append(data[pos + 5 : end])
                pos = end
            elif item_tag == INTEGER_EXT:
                out.append(_i32(data, pos + 1)[0])
                pos += 5
            elif item_tag == NIL_EXT:
                out.append([])
                pos += 1
                nils += 1
                if nils == _NIL_BATCH and _budgeted:
                    _spend(COST_NIL * nils)
                    nils = 0
            else:
                value, pos = _DISPATCH[item_tag](data, pos, depth)
                out.append(value)
    except _STRUCT_ERRORS:
        raise _fail(tag, start, f"input ends inside the element at byte {pos} (truncated)") from None
    if nils and _budgeted:
        _spend(COST_NIL * nils)
    if tag in (SMALL_TUPLE_EXT, LARGE_TUPLE_EXT):
        return tuple(out), pos
    if tag == MAP_EXT:
        return _to_map(out, start), pos
    return _with_tail(out, data, pos, depth, start)


def _nil(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if _budgeted:
        _spend(COST_NIL)
    return [], pos + 1


def _with_tail(items: list[Any], data: bytes, pos: int, depth: int, start: int) -> tuple[Any, int]:
    """Finish a LIST_EXT: read its tail, folding list tails into the items (non-canonical).

    Chained LIST_EXT tails are read in a loop and appended to ``items`` in place, so a chain
    costs time linear in its bytes and no stack (issue 12: joining them was quadratic).
    """
    size = len(data)
    while True:
        if pos >= size:
            raise _truncated(T.LIST_EXT, start)
        tag = data[pos]
        if tag == T.NIL_EXT:
            return items, pos + 1
        if tag != T.LIST_EXT:
            break
        try:
            count = _u32(data, pos + 1)[0]
        except _STRUCT_ERRORS:
            raise _truncated(tag, pos) from None
        if count > size - pos - 5:
            raise _fail(tag, pos, f"declares {count} terms but only {size - pos - 5} bytes remain")
        if _budgeted:
            _spend(COST_SLOT * count)
        pos += 5
        try:
            for _ in range(count):
                value, pos = _DISPATCH[data[pos]](data, pos, depth)
                items.append(value)
        except _STRUCT_ERRORS:
            raise _fail(tag, start, f"input ends inside the element at byte {pos} (truncated)") from None
    tail, end = _DISPATCH[data[pos]](data, pos, depth)
    if type(tail) is Charlist:
        items.extend(tail.codes)
        return items, end
    if not items:
        return tail, end
    return ImproperList(items, tail), end


def _items(data: bytes, pos: int, count: int, depth: int, owner: int, owner_pos: int) -> tuple[list[Any], int]:
    """Decode ``count`` consecutive terms at ``pos`` (a fun's free variables)."""
    if count > len(data) - pos:
        raise _fail(owner, owner_pos, f"declares {count} elements but only {len(data) - pos} bytes remain")
    if _budgeted:
        _spend(COST_SLOT * count)
    out = []
    for _ in range(count):
        if pos >= len(data):
            raise _truncated(owner, owner_pos)
        value, pos = _DISPATCH[data[pos]](data, pos, depth)
        out.append(value)
    return out, pos


def _exact_key(term: Any) -> Any:
    """A form of a (frozen) map key that is equal for two keys only if Erlang's ``=:=`` says so."""
    kind = type(term)
    if kind is float:
        return (float, struct.pack(">d", term))
    if kind is tuple:
        return (tuple, tuple(map(_exact_key, term)))
    if kind is Map:
        return (Map, tuple((_exact_key(k), _exact_key(v)) for k, v in term.pairs))
    if kind is ImproperList:
        return (ImproperList, tuple(map(_exact_key, term.items)), _exact_key(term.tail))
    if kind is Fun:
        return (Fun, term.data)
    if kind is Charlist:
        return (list, tuple(term.codes))
    if kind is FrozenList:
        return (list, tuple(map(_exact_key, term)))
    return (kind, term)


def _to_map(items: list[Any], start: int) -> Any:
    """Build the value of a MAP_EXT from its flat key/value list (see ``Map`` for the rules)."""
    keys = items[0::2]
    values = items[1::2]
    try:
        result = dict(zip(keys, values, strict=True))
    except TypeError:
        keys = [freeze(k) for k in keys]
        result = dict(zip(keys, values, strict=True))
    if len(result) == len(keys):
        return result
    if len(set(map(_exact_key, keys))) != len(keys):
        raise _fail(T.MAP_EXT, start, "the same key appears twice")
    return Map(tuple(zip(keys, values, strict=True)))


# --- identifiers -----------------------------------------------------------------------------


def _pid(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    # Where the pid ends if its node is an atom; the slice is only a cache key (see ``_atom``):
    # bytes equal to a cached, complete encoding are that pid, and a miss checks everything.
    tag = data[pos]
    tail = 12 if tag == T.NEW_PID_EXT else 9
    if pos + 2 < len(data) and (data[pos + 1] == SMALL_ATOM_UTF8_EXT or data[pos + 1] == T.SMALL_ATOM_EXT):
        pid = _pid_cache.get(data[pos : pos + 3 + data[pos + 2] + tail])
        if pid is not None:
            return pid, pos + 3 + data[pos + 2] + tail
    node, start = _node(data, pos + 1, tag, pos)
    end = start + tail
    if end > len(data):
        raise _truncated(tag, pos)
    raw = data[pos:end]
    pid = _pid_cache.get(raw)
    if pid is None:
        unpack = _pid_tail if tag == T.NEW_PID_EXT else _old_pid_tail
        pid = Pid(node, *unpack(data, start))
        if len(_pid_cache) >= _CACHE_LIMIT:
            _pid_cache.clear()
        _pid_cache[raw] = pid
    return pid, end


_PORT_LAYOUT: Final = {
    # tag: (unpacker of ID and Creation, their size)
    T.V4_PORT_EXT: (_u64_u32, 12),
    T.NEW_PORT_EXT: (_u32_u32, 8),
    T.PORT_EXT: (_u32_u8, 5),
}


def _port(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    tag = data[pos]
    node, start = _node(data, pos + 1, tag, pos)
    unpack, size = _PORT_LAYOUT[tag]
    if start + size > len(data):
        raise _truncated(tag, pos)
    port_id, creation = unpack(data, start)
    return Port(node, port_id, creation), start + size


def _reference(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    tag = data[pos]
    if tag == T.REFERENCE_EXT:
        node, start = _node(data, pos + 1, tag, pos)
        if start + 5 > len(data):
            raise _truncated(tag, pos)
        ref_id, creation = _u32_u8(data, start)
        return Reference(node, creation, (ref_id,)), start + 5
    if pos + 3 > len(data):
        raise _truncated(tag, pos)
    count = _u16(data, pos + 1)[0]
    if not 1 <= count <= 5:
        raise _fail(tag, pos, f"reference has {count} id words (1..5 allowed)")
    node, start = _node(data, pos + 3, tag, pos)
    width = 4 if tag == T.NEWER_REFERENCE_EXT else 1
    end = start + width + 4 * count
    if end > len(data):
        raise _truncated(tag, pos)
    creation = int.from_bytes(data[start : start + width], "big")
    ids = struct.unpack_from(f">{count}I", data, start + width)
    return Reference(node, creation, ids), end


def _export(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    parts = []
    at = pos + 1
    for _ in range(2):
        if at >= len(data):
            raise _truncated(T.EXPORT_EXT, pos)
        if data[at] not in _ATOM_LAYOUT:
            raise _fail(T.EXPORT_EXT, pos, f"module/function at byte {at} is not an atom")
        name, at = _atom(data, at, 0)
        parts.append(Atom(str(name).lower() if type(name) is bool else name))
    if at + 2 > len(data):
        raise _truncated(T.EXPORT_EXT, pos)
    if data[at] != T.SMALL_INTEGER_EXT:
        raise _fail(T.EXPORT_EXT, pos, "arity is not a SMALL_INTEGER_EXT")
    return Export(parts[0], parts[1], data[at + 1]), at + 2


def _fun(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    tag = T.NEW_FUN_EXT
    try:
        size, arity, uniq, index, num_free = _fun_head(data, pos + 1)
    except struct.error:
        raise _truncated(tag, pos) from None
    end = pos + 1 + size
    if end > len(data):
        raise _truncated(tag, pos)
    if depth <= 0:
        raise _too_deep(tag, pos)
    try:
        module, at = _DISPATCH[data[pos + 30]](data, pos + 30, depth - 1)
        old_index, at = _DISPATCH[data[at]](data, at, depth - 1)
        old_uniq, at = _DISPATCH[data[at]](data, at, depth - 1)
        pid, at = _DISPATCH[data[at]](data, at, depth - 1)
    except IndexError:
        raise _truncated(tag, pos) from None
    if type(module) is not Atom or type(pid) is not Pid:
        raise _fail(tag, pos, "module is not an atom or creator is not a pid")
    if type(old_index) is not int or type(old_uniq) is not int:
        raise _fail(tag, pos, "OldIndex/OldUniq are not integers")
    free_vars, at = _items(data, at, num_free, depth - 1, tag, pos)
    if at != end:
        raise _fail(tag, pos, f"declared size {size} does not match its fields")
    fun = Fun(
        data[pos:end],
        module=module,
        arity=arity,
        index=index,
        uniq=uniq,
        old_index=old_index,
        old_uniq=old_uniq,
        pid=pid,
        free_vars=tuple(free_vars),
    )
    return fun, end


# --- rejected tags ---------------------------------------------------------------------------


def _unsupported(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    tag = data[pos]
    why = {
        T.LOCAL_EXT: "LOCAL_EXT terms can only be decoded by the node that encoded them",
        T.FUN_EXT: "the old FUN_EXT format was removed in OTP 23",
        COMPRESSED: "a compressed term is only allowed directly after the version byte",
        T.DIST_HEADER: "a distribution header belongs to the frame layer, not inside a term",
    }.get(tag, "not an External Term Format tag")
    raise _fail(tag, pos, why)


_DISPATCH: list[Decoder] = [_unsupported] * 256
for _tags, _decoder in (
    ((T.SMALL_ATOM_UTF8_EXT, T.ATOM_UTF8_EXT, T.SMALL_ATOM_EXT, T.ATOM_EXT), _atom),
    ((T.ATOM_CACHE_REF,), _atom_cache_ref),
    ((T.SMALL_INTEGER_EXT,), _small_integer),
    ((T.INTEGER_EXT,), _integer),
    ((T.SMALL_BIG_EXT, T.LARGE_BIG_EXT), _big),
    ((T.NEW_FLOAT_EXT,), _new_float),
    ((T.FLOAT_EXT,), _float_text),
    ((T.BINARY_EXT,), _binary),
    ((T.BIT_BINARY_EXT,), _bit_binary),
    ((T.STRING_EXT,), _string),
    ((T.SMALL_TUPLE_EXT, T.LARGE_TUPLE_EXT, T.LIST_EXT, T.MAP_EXT), _sequence),
    ((T.NIL_EXT,), _nil),
    ((T.NEW_PID_EXT, T.PID_EXT), _pid),
    ((T.V4_PORT_EXT, T.NEW_PORT_EXT, T.PORT_EXT), _port),
    ((T.NEWER_REFERENCE_EXT, T.NEW_REFERENCE_EXT, T.REFERENCE_EXT), _reference),
    ((T.EXPORT_EXT,), _export),
    ((T.NEW_FUN_EXT,), _fun),
):
    for _tag in _tags:
        _DISPATCH[_tag] = _decoder


# --- entry points ----------------------------------------------------------------------------


def _inflate(data: bytes, pos: int, max_size: int) -> tuple[bytes, int]:
    """Inflate the COMPRESSED term at ``pos``; return the inner body and the end of the stream."""
    tag = COMPRESSED
    try:
        declared = _u32(data, pos + 1)[0]
    except struct.error:
        raise _truncated(tag, pos) from None
    if declared == 0:
        raise _fail(tag, pos, "declares an uncompressed size of 0")
    if declared > max_size:
        raise _fail(tag, pos, f"declares {declared} bytes uncompressed, above max_size {max_size}")
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(memoryview(data)[pos + 5 :], declared)
        # Output is capped at the declared size; what input is left may only end the stream.
        if (
            not inflater.eof
            and len(body) == declared
            and inflater.decompress(inflater.unconsumed_tail, 1)
        ):
            raise _fail(tag, pos, f"inflates to more than the declared {declared} bytes")
    except zlib.error as exc:
        raise _fail(tag, pos, f"invalid zlib data ({exc})") from None
    if not inflater.eof:
        raise _truncated(tag, pos)
    if len(body) != declared:
        raise _fail(tag, pos, f"inflates to {len(body)} bytes, not the declared {declared}")
    return body, len(data) - len(inflater.unused_data)


def decode_body_from(
    data: bytes,
    offset: int = 0,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_memory: int | None = None,
) -> tuple[Any, int]:
    """Decode one term whose tag is at ``data[offset]`` (no version byte, no compression).

    Returns ``(term, end)`` where ``end`` is the offset just past the term. This is the entry
    point for callers that have already consumed the version byte themselves. ``max_memory``
    (bytes) bounds what decoding may allocate (see the module docstring); over it, the
    decode stops with `MemoryBudgetError`.
    """
    if max_memory is not None:
        return with_memory_budget(  # type: ignore[no-any-return]
            max_memory, decode_body_from, data, offset, max_depth=max_depth
        )
    if type(data) is not bytes:
        data = bytes(data)
    if offset >= len(data):
        raise DecodeError(f"no term at byte {offset}: input has {len(data)} bytes")
    if len(data) - offset > GC_PAUSE_BYTES and gc.isenabled():
        return _without_gc(partial(decode_body_from, data, offset, max_depth=max_depth))  # type: ignore[no-any-return]
    try:
        return _DISPATCH[data[offset]](data, offset, max_depth)
    except RecursionError:
        raise _stack_exhausted(offset) from None


def _without_gc(body: Callable[[], Any]) -> Any:
    """``body()`` with the cyclic GC paused (see ``GC_PAUSE_BYTES``)."""
    gc.disable()
    try:
        return body()
    finally:
        gc.enable()


def decode_body_exact(
    data: bytes,
    start: int,
    end: int,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_memory: int | None = None,
) -> Any:
    """Decode the one term that fills ``data[start:end]`` exactly (tag at ``start``, no version
    byte); a term ending elsewhere is a ``DecodeError``.

    This is the message decoder of the frame layer, where a term's end is known in advance.
    A term of up to ``MEMO_MAX_BYTES`` bytes that comes twice in a row is memoized by its bytes
    if its value is immutable (tuples of atoms, numbers, binaries, pids...; no list or map
    anywhere): a stream of the same message is not decoded again. Only the last term is kept
    (one comparison of bytes), so a stream of distinct messages pays almost nothing for it; a
    dictionary of every term seen cost a lookup and an insertion per message (~18% of a small
    tuple's decode). ``max_memory`` as in `decode_body_from`.
    """
    if max_memory is not None:
        return with_memory_budget(max_memory, memoized_exact, _exact_body_from, data, start, end, max_depth)
    return memoized_exact(_exact_body_from, data, start, end, max_depth)


def _exact_body_from(data: bytes, offset: int, *, max_depth: int) -> tuple[Any, int]:
    """`decode_body_from` as `memoized_exact` calls it (``data`` is ``bytes``, no budget
    argument, the GC already paused for a big term): its checks without the argument
    handling."""
    if offset >= len(data):
        return decode_body_from(data, offset, max_depth=max_depth)
    try:
        return _DISPATCH[data[offset]](data, offset, max_depth)
    except RecursionError:
        raise _stack_exhausted(offset) from None


def memoized_exact(
    body_from: Callable[..., tuple[Any, int]], data: bytes, start: int, end: int, max_depth: int
) -> Any:
    """`decode_body_exact` with ``body_from`` as the term decoder (pure or accelerated); a
    budget, if any, is already set in this thread."""
    if type(data) is not bytes:
        data = bytes(data)
    if end - start <= MEMO_MAX_BYTES <= max_depth:  # n bytes nest at most n levels deep
        global _last_exact
        raw = data[start:end]
        last, known = _last_exact
        if known is not _SEEN_ONCE and raw == last:
            return known
        term, stop = body_from(data, start, max_depth=max_depth)
        if stop == end:
            _last_exact = (raw, term if raw == last and _is_immutable(term) else _SEEN_ONCE)
    elif end - start > GC_PAUSE_BYTES and gc.isenabled():
        term, stop = _without_gc(partial(body_from, data, start, max_depth=max_depth))
    else:
        term, stop = body_from(data, start, max_depth=max_depth)
    if stop != end:
        raise DecodeError(f"term at byte {start} ends at byte {stop}, not at {end}")
    return term


def _stack_exhausted(offset: int) -> DecodeError:
    return DecodeError(
        f"term at byte {offset} is nested deeper than the Python stack allows; "
        "lower max_depth or raise sys.setrecursionlimit"
    )


def decode_from(
    data: bytes,
    offset: int = 0,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_size: int = DEFAULT_MAX_SIZE,
    max_memory: int | None = None,
) -> tuple[Any, int]:
    """Decode the term starting with the version byte 131 at ``data[offset]``.

    Returns ``(term, end)``, ``end`` being the offset just past it, so several terms encoded
    back to back (a distribution control message and its payload) decode one after the other.
    Compressed terms are inflated (at most ``max_size`` bytes, checked before inflating).
    ``max_memory`` as in `decode_body_from`.
    """
    if max_memory is not None:
        return with_memory_budget(  # type: ignore[no-any-return]
            max_memory, decode_from, data, offset, max_depth=max_depth, max_size=max_size
        )
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) - offset > max_size:
        raise DecodeError(f"input of {len(data) - offset} bytes exceeds max_size {max_size}")
    if offset + 1 >= len(data):
        raise DecodeError(f"truncated input: no term at byte {offset}")
    if data[offset] != VERSION:
        raise DecodeError(f"byte {offset} is {data[offset]}, not the version byte 131")
    if data[offset + 1] != COMPRESSED:
        return decode_body_from(data, offset + 1, max_depth=max_depth)
    body, end = _inflate(data, offset + 1, max_size)
    term, used = decode_body_from(body, 0, max_depth=max_depth)
    if used != len(body):
        raise _fail(COMPRESSED, offset + 1, f"inflated term ends at {used} of {len(body)} bytes")
    return term, end


def decode(
    data: bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_size: int = DEFAULT_MAX_SIZE,
    max_memory: int | None = None,
) -> Any:
    """Decode one complete term (version byte 131 first); trailing bytes are an error.
    ``max_memory`` as in `decode_body_from`."""
    if max_memory is not None:
        return with_memory_budget(max_memory, decode, data, max_depth=max_depth, max_size=max_size)
    if type(data) is not bytes:
        data = bytes(data)
    size = len(data)
    if 1 < size <= max_size and size <= GC_PAUSE_BYTES and data[0] == VERSION and data[1] != COMPRESSED:
        try:
            term, end = _DISPATCH[data[1]](data, 1, max_depth)
        except RecursionError:
            raise _stack_exhausted(1) from None
    else:
        term, end = decode_from(data, 0, max_depth=max_depth, max_size=max_size)
    if end != len(data):
        raise DecodeError(f"{len(data) - end} trailing bytes after the term (it ends at byte {end})")
    return term
