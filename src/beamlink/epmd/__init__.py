"""EPMD: the wire protocol (``protocol``), an asyncio client (``client``), an embedded server
(``server``) and the re-registration loop that takes the embedded server over (``keeper``)."""

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
