"""EPMD: the wire protocol (``protocol``), an asyncio client (``client``), an embedded server
(``server``) and the re-registration loop that takes the embedded server over (``keeper``).

The names below are imported on first use, so ``beamlink.epmd.protocol`` alone (a tool speaking
it over a blocking socket) does not pull in asyncio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from beamlink._lazy import lazy_attributes

if TYPE_CHECKING:
    from beamlink.epmd.client import (
        DEFAULT_TIMEOUT,
        EpmdUnavailable,
        NameInUse,
        NodeNotFound,
        Registration,
        default_epmd_port,
        names,
        port_please,
        register,
    )
    from beamlink.epmd.keeper import KeptRegistration, keep_registered
    from beamlink.epmd.protocol import EpmdProtocolError, NodeAddress
    from beamlink.epmd.server import EmbeddedEpmd, RegisteredNode, ensure_epmd
    from beamlink.errors import EpmdError

_HOMES = {
    "beamlink.epmd.client": (
        "DEFAULT_TIMEOUT", "EpmdUnavailable", "NameInUse", "NodeNotFound", "Registration",
        "default_epmd_port", "names", "port_please", "register",
    ),
    "beamlink.epmd.keeper": ("KeptRegistration", "keep_registered"),
    "beamlink.epmd.protocol": ("EpmdProtocolError", "NodeAddress"),
    "beamlink.epmd.server": ("EmbeddedEpmd", "RegisteredNode", "ensure_epmd"),
    "beamlink.errors": ("EpmdError",),
}
_HOME_OF = {name: module for module, exported in _HOMES.items() for name in exported}

__all__ = [
    "DEFAULT_TIMEOUT",
    "EmbeddedEpmd",
    "EpmdError",
    "EpmdProtocolError",
    "EpmdUnavailable",
    "KeptRegistration",
    "NameInUse",
    "NodeAddress",
    "NodeNotFound",
    "RegisteredNode",
    "Registration",
    "default_epmd_port",
    "ensure_epmd",
    "keep_registered",
    "names",
    "port_please",
    "register",
]


__getattr__ = lazy_attributes(__name__, _HOME_OF, globals())
