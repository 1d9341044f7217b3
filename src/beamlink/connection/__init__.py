"""asyncio distribution connections: the handshake over a socket, frames, ticks, one per peer.

The node layer uses `ConnectionManager` and implements `ConnectionHandler`; see
docs/distribution.md.
"""

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
from beamlink.connection.optfile import OptfileError, load_optfile
from beamlink.connection.protocol import DistConnection
from beamlink.connection.tls import TlsConfig, TlsError
from beamlink.connection.watchdog import LagStats, LoopWatchdog
from beamlink.settings import DEFAULT_NET_TICKTIME, DEFAULT_STALL_THRESHOLD

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
