"""asyncio distribution connections: the handshake over a socket, frames, ticks, one per peer.

The node layer uses `ConnectionManager` and implements `ConnectionHandler`; see
docs/distribution.md.
"""

from typing import TYPE_CHECKING

from beamlink._lazy import lazy_attributes
from beamlink.connection.events import (
    CLOSED,
    DISCONNECTED,
    PROTOCOL_ERROR,
    REPLACED,
    SHUTDOWN,
    TICK_TIMEOUT,
    AddressResolver,
    ConnectionHandler,
    DownReason,
    PeerInfo,
)
from beamlink.connection.manager import DEFAULT_HANDSHAKE_TIMEOUT, ConnectionManager
from beamlink.connection.protocol import DistConnection
from beamlink.connection.tls import TlsConfig, TlsError
from beamlink.connection.watchdog import LagStats, LoopWatchdog
from beamlink.settings import DEFAULT_NET_TICKTIME, DEFAULT_STALL_THRESHOLD

if TYPE_CHECKING:
    from beamlink.connection.optfile import OptfileError, load_optfile

# The ssl_dist_optfile reader and its Erlang term parser load on first use: a node started
# without an optfile never needs them.
_LAZY = {"OptfileError": "beamlink.connection.optfile", "load_optfile": "beamlink.connection.optfile"}
__getattr__ = lazy_attributes(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CLOSED",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_NET_TICKTIME",
    "DEFAULT_STALL_THRESHOLD",
    "DISCONNECTED",
    "PROTOCOL_ERROR",
    "REPLACED",
    "SHUTDOWN",
    "TICK_TIMEOUT",
    "AddressResolver",
    "ConnectionHandler",
    "ConnectionManager",
    "DistConnection",
    "DownReason",
    "LagStats",
    "LoopWatchdog",
    "OptfileError",
    "PeerInfo",
    "TlsConfig",
    "TlsError",
    "load_optfile",
]
