"""Distribution capability flags (DFLAG_*) exchanged in the handshake.

Values from OTP's `erts/emulator/beam/dist.h` and `erl_dist_protocol` ("Distribution Flags").
Every flag appears here once. `ADVERTISED` is what this stack sends: only what it fully
implements end to end. `MANDATORY` is what a peer must offer (OTP 26 makes these mandatory).
"""

from __future__ import annotations

PUBLISHED = 0x1
ATOM_CACHE = 0x2
EXTENDED_REFERENCES = 0x4
DIST_MONITOR = 0x8
FUN_TAGS = 0x10
DIST_MONITOR_NAME = 0x20
HIDDEN_ATOM_CACHE = 0x40
NEW_FUN_TAGS = 0x80
EXTENDED_PIDS_PORTS = 0x100
EXPORT_PTR_TAG = 0x200
BIT_BINARIES = 0x400
NEW_FLOATS = 0x800
UNICODE_IO = 0x1000
DIST_HDR_ATOM_CACHE = 0x2000
SMALL_ATOM_TAGS = 0x4000
ETS_COMPRESSED = 0x8000
UTF8_ATOMS = 0x10000
MAP_TAG = 0x20000
BIG_CREATION = 0x40000
SEND_SENDER = 0x80000
BIG_SEQTRACE_LABELS = 0x100000
PENDING_CONNECT = 0x200000
EXIT_PAYLOAD = 0x400000
FRAGMENTS = 0x800000
HANDSHAKE_23 = 0x1000000
UNLINK_ID = 0x2000000
# The docs place MANDATORY_25_DIGEST at bit 36; OTP's code (the wire truth) uses bit 26.
MANDATORY_25_DIGEST = 0x4000000
SPAWN = 1 << 32
NAME_ME = 1 << 33
V4_NC = 1 << 34
ALIAS = 1 << 35
LOCAL_EXT = 1 << 36
ALTACT_SIG = 1 << 37

# The flags that MANDATORY_25_DIGEST stands for (OTP 25 `?MANDATORY_DFLAGS_25`).
MANDATORY_25 = (
    EXTENDED_REFERENCES
    | FUN_TAGS
    | NEW_FUN_TAGS
    | EXTENDED_PIDS_PORTS
    | EXPORT_PTR_TAG
    | BIT_BINARIES
    | NEW_FLOATS
    | UTF8_ATOMS
    | MAP_TAG
    | BIG_CREATION
    | HANDSHAKE_23
)
# OTP 26 adds UNLINK_ID and V4_NC; OTP 27 adds none.
MANDATORY_26 = MANDATORY_25 | UNLINK_ID | V4_NC
MANDATORY = MANDATORY_26

# What we send (PUBLISHED is added for visible nodes by `advertised_flags`).
ADVERTISED = (
    MANDATORY_26
    | MANDATORY_25_DIGEST
    | DIST_MONITOR
    | DIST_MONITOR_NAME
    | SEND_SENDER
    | EXIT_PAYLOAD
    | FRAGMENTS
    | SPAWN
    | ALIAS
)

_NAMES = {
    value: name
    for name, value in globals().items()
    if name.isupper() and isinstance(value, int) and value > 0 and value & (value - 1) == 0
}


def advertised_flags(*, hidden: bool) -> int:
    """The flags this node sends in its handshake messages."""
    return ADVERTISED if hidden else ADVERTISED | PUBLISHED


def expand(flags: int) -> int:
    """Flags a peer offers, with MANDATORY_25_DIGEST standing for all of `MANDATORY_25`."""
    return flags | MANDATORY_25 if flags & MANDATORY_25_DIGEST else flags


def missing_mandatory(flags: int, required: int = MANDATORY) -> int:
    """The required flags that `flags` (already expanded) lacks."""
    return required & ~flags


def flag_names(flags: int) -> list[str]:
    """Names of the set bits, lowest first; unknown bits as ``BIT<n>``."""
    names = []
    bit = 0
    while flags >> bit:
        if (flags >> bit) & 1:
            names.append(_NAMES.get(1 << bit, f"BIT{bit}"))
        bit += 1
    return names
