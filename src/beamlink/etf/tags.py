"""Tag bytes of the External Term Format (OTP ``erl_ext_dist``), each named once.

Values and names follow the "External Term Format" chapter of the ERTS User's Guide.
"""

from typing import Final

VERSION: Final = 131  #: every encoded term starts with this byte

COMPRESSED: Final = 80  #: zlib-compressed term, only directly after VERSION
DIST_HEADER: Final = 68  #: distribution header (frame layer, never inside a term)
ATOM_CACHE_REF: Final = 82  #: index into a distribution header's atom cache

NEW_FLOAT_EXT: Final = 70  #: 8-byte IEEE 754 big-endian float
BIT_BINARY_EXT: Final = 77  #: bitstring: Len:32, Bits:8 (used bits of last byte), Data
NEW_PID_EXT: Final = 88  #: Node, ID:32, Serial:32, Creation:32
NEW_PORT_EXT: Final = 89  #: Node, ID:32, Creation:32
NEWER_REFERENCE_EXT: Final = 90  #: Len:16, Node, Creation:32, ID:32 * Len
SMALL_INTEGER_EXT: Final = 97  #: unsigned 8-bit integer
INTEGER_EXT: Final = 98  #: signed 32-bit big-endian integer
FLOAT_EXT: Final = 99  #: float as 31 bytes of "%.20e" text (minor_version 0)
ATOM_EXT: Final = 100  #: Latin-1 atom, Len:16 (deprecated)
REFERENCE_EXT: Final = 101  #: Node, ID:32, Creation:8 (deprecated)
PORT_EXT: Final = 102  #: Node, ID:32, Creation:8 (deprecated)
PID_EXT: Final = 103  #: Node, ID:32, Serial:32, Creation:8 (deprecated)
SMALL_TUPLE_EXT: Final = 104  #: Arity:8, Elements
LARGE_TUPLE_EXT: Final = 105  #: Arity:32, Elements
NIL_EXT: Final = 106  #: the empty list
STRING_EXT: Final = 107  #: list of bytes, Len:16, Bytes
LIST_EXT: Final = 108  #: Len:32, Elements, Tail
BINARY_EXT: Final = 109  #: Len:32, Data
SMALL_BIG_EXT: Final = 110  #: n:8, Sign:8, n little-endian digit bytes
LARGE_BIG_EXT: Final = 111  #: n:32, Sign:8, n little-endian digit bytes
NEW_FUN_EXT: Final = 112  #: local fun: Size:32 (counting itself), then its fields
EXPORT_EXT: Final = 113  #: fun M:F/A: Module, Function (atoms), Arity (SMALL_INTEGER_EXT)
NEW_REFERENCE_EXT: Final = 114  #: Len:16, Node, Creation:8, ID:32 * Len (deprecated)
SMALL_ATOM_EXT: Final = 115  #: Latin-1 atom, Len:8 (deprecated)
MAP_EXT: Final = 116  #: Arity:32, Key, Value pairs
FUN_EXT: Final = 117  #: old fun format, removed in OTP 23
ATOM_UTF8_EXT: Final = 118  #: UTF-8 atom, Len:16
SMALL_ATOM_UTF8_EXT: Final = 119  #: UTF-8 atom, Len:8
V4_PORT_EXT: Final = 120  #: Node, ID:64, Creation:32
LOCAL_EXT: Final = 121  #: node-local encoding, only decodable by the node that made it

NAMES: Final[dict[int, str]] = {
    value: name
    for name, value in list(globals().items())
    if name.isupper() and isinstance(value, int) and name != "VERSION"
}
