"""The External Term Format codec (OTP ``erl_ext_dist``) and the Python types for Erlang terms.

Sans-I/O: bytes in, terms out and back. ``docs/etf.md`` documents the type mapping, the OTP
conventions the encoder follows and the safety limits.

The encode and decode functions come from the compiled accelerator (``_speedups.c`` through
``_accelerated.py``) when it was built and ``BEAMLINK_PURE_PYTHON=1`` is not set, else from
the pure-Python ``decoder.py`` / ``encoder.py``; both give identical results. ``ACCELERATED``
tells which is active.
"""

import os
from collections.abc import Callable

from .decoder import (
    ALLOC_CONSTANT,
    ALLOC_PER_BYTE,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_SIZE,
    MEMO_MAX_BYTES,
    UNCHARGED_PER_BYTE,
    DecodeError,
    MemoryBudgetError,
    binary_span,
    decode,
    decode_body_exact,
    decode_body_from,
    decode_from,
    with_memory_budget,
)
from .encoder import encode
from .terms import (
    ATOM_STRONG_CACHE_SIZE,
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

#: True when the compiled codec is in use (see the module docstring).
ACCELERATED = False
#: The distribution frame reader's loop in C when the compiled codec is in use, else None
#: (``_speedups.c``, "read_frames"; used by ``distribution.frames.FrameReader``).
read_frames: Callable[..., int] | None = None
if os.environ.get("BEAMLINK_PURE_PYTHON") != "1":
    try:
        from ._accelerated import (
            decode,
            decode_body_exact,
            decode_body_from,
            decode_from,
            encode,
            read_frames,
        )
    except ImportError:
        pass
    else:
        ACCELERATED = True

__all__ = [
    "ACCELERATED",
    "ALLOC_CONSTANT",
    "ALLOC_PER_BYTE",
    "ATOM_STRONG_CACHE_SIZE",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "MAX_ATOM_CHARACTERS",
    "MEMO_MAX_BYTES",
    "UNCHARGED_PER_BYTE",
    "Atom",
    "BitString",
    "Charlist",
    "DecodeError",
    "Export",
    "FrozenList",
    "Fun",
    "ImproperList",
    "Map",
    "MemoryBudgetError",
    "Pid",
    "Port",
    "Reference",
    "binary_span",
    "decode",
    "decode_body_exact",
    "decode_body_from",
    "decode_from",
    "encode",
    "freeze",
    "read_frames",
    "with_memory_budget",
]
