"""The codec's public functions on top of the compiled ``_speedups`` hot path.

Importing this module fails with ``ImportError`` when the extension was not built; ``__init__``
then uses the pure-Python functions. Each function here has the signature and behaviour of its
namesake in ``decoder.py`` / ``encoder.py``: the C code does what it can and raises ``Fallback``
for anything else (a case it leaves to Python, malformed input, an unencodable value), and the
whole input is then handled again by the pure implementation, which returns the result or raises
its ``DecodeError`` / ``TypeError`` / ``ValueError``.
"""

from __future__ import annotations

from typing import Any

from . import _speedups, decoder, encoder
from .decoder import DEFAULT_MAX_DEPTH, DEFAULT_MAX_SIZE, memoized_exact, with_memory_budget
from .tags import COMPRESSED, VERSION
from .terms import Atom, Charlist, ImproperList, Pid, Port, Reference

__all__ = [
    "decode", "decode_body_exact", "decode_body_from", "decode_from", "encode", "read_frames"
]

#: The interface version of ``_speedups.c`` this file was written for.
API_VERSION = 4
if getattr(_speedups, "API_VERSION", None) != API_VERSION:
    raise ImportError("beamlink.etf._speedups is a stale build; reinstall beamlink to rebuild it")

_Fallback = _speedups.Fallback
_c_decode = _speedups.decode
_c_body = _speedups.decode_body
_c_encode = _speedups.encode
#: The frame reader's loop in C (see ``_speedups.c``); the pure codec has none.
read_frames = _speedups.read_frames

_speedups.setup(
    decoder._DISPATCH,
    decoder._atom,
    decoder._with_tail,
    decoder._to_map,
    Charlist,
    decoder._budget,
    decoder._over_budget,
    decoder.MemoryBudgetError,
)
decoder._budget_watchers.append(_speedups.set_budgeted)
_speedups.setup_encoder(
    encoder._any, encoder._check_distinct_keys, Atom, Pid, Reference, Port, ImproperList
)


def decode(
    data: bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_size: int = DEFAULT_MAX_SIZE,
    max_memory: int | None = None,
) -> Any:
    """Decode one complete term (version byte 131 first); trailing bytes are an error."""
    if max_memory is not None:
        return with_memory_budget(max_memory, decode, data, max_depth=max_depth, max_size=max_size)
    if type(data) is not bytes:
        data = bytes(data)
    try:
        return _c_decode(data, max_depth, max_size)
    except _Fallback:
        pass  # outside this handler, so errors of the pure decoder carry no Fallback context
    return decoder.decode(data, max_depth=max_depth, max_size=max_size)


def decode_body_from(
    data: bytes,
    offset: int = 0,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_memory: int | None = None,
) -> tuple[Any, int]:
    """Decode one term whose tag is at ``data[offset]`` (no version byte, no compression)."""
    if max_memory is not None:
        return with_memory_budget(  # type: ignore[no-any-return]
            max_memory, decode_body_from, data, offset, max_depth=max_depth
        )
    if type(data) is not bytes:
        data = bytes(data)
    try:
        return _c_body(data, offset, max_depth)
    except _Fallback:
        pass
    return decoder.decode_body_from(data, offset, max_depth=max_depth)


def decode_body_exact(
    data: bytes,
    start: int,
    end: int,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_memory: int | None = None,
) -> Any:
    """Decode the one term that fills ``data[start:end]`` exactly (see ``decoder``)."""
    if max_memory is not None:
        return with_memory_budget(
            max_memory, memoized_exact, decode_body_from, data, start, end, max_depth
        )
    return memoized_exact(decode_body_from, data, start, end, max_depth)


def decode_from(
    data: bytes,
    offset: int = 0,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_size: int = DEFAULT_MAX_SIZE,
    max_memory: int | None = None,
) -> tuple[Any, int]:
    """Decode the term starting with the version byte 131 at ``data[offset]``."""
    if max_memory is not None:
        return with_memory_budget(  # type: ignore[no-any-return]
            max_memory, decode_from, data, offset, max_depth=max_depth, max_size=max_size
        )
    if type(data) is not bytes:
        data = bytes(data)
    if (
        offset >= 0
        and len(data) - offset <= max_size
        and offset + 1 < len(data)
        and data[offset] == VERSION
        and data[offset + 1] != COMPRESSED
    ):
        try:
            return _c_body(data, offset + 1, max_depth)
        except _Fallback:
            pass
    return decoder.decode_from(data, offset, max_depth=max_depth, max_size=max_size)


def encode(term: Any, *, compressed: bool | int = False) -> bytes:
    """Encode ``term`` as External Term Format bytes, starting with the version byte 131."""
    try:
        data = _c_encode(term)
    except _Fallback:
        pass
    else:
        return data if compressed is False else encoder.with_compression(data, compressed)
    return encoder.encode(term, compressed=compressed)
