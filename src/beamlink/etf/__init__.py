"""The External Term Format codec (OTP ``erl_ext_dist``) and the Python types for Erlang terms.

Sans-I/O: bytes in, terms out and back. ``docs/etf.md`` documents the type mapping, the OTP
conventions the encoder follows and the safety limits.
"""

from .decoder import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_SIZE,
    MEMO_MAX_BYTES,
    DecodeError,
    decode,
    decode_body_exact,
    decode_body_from,
    decode_from,
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

__all__ = [
    "ATOM_STRONG_CACHE_SIZE",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "MAX_ATOM_CHARACTERS",
    "MEMO_MAX_BYTES",
    "Atom",
    "BitString",
    "Charlist",
    "DecodeError",
    "Export",
    "FrozenList",
    "Fun",
    "ImproperList",
    "Map",
    "Pid",
    "Port",
    "Reference",
    "decode",
    "decode_body_exact",
    "decode_body_from",
    "decode_from",
    "encode",
    "freeze",
]
