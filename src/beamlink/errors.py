"""The root and branches of beamlink's error tree; every public beamlink exception derives from one.

``except BeamlinkError`` catches anything beamlink raises on purpose. The branches:

- `RemoteProtocolError`: a peer broke a protocol (term decoding, distribution frames, the
  handshake, EPMD messages, gossip heartbeats).
- `ConfigurationError`: a setting, environment variable, config or topology file is missing or
  out of range; fix the value the message names.
- `NodeError`: the node runtime (processes, names, node start-up, calls and RPC).
- `EpmdError`: an EPMD operation failed (no EPMD, name taken, node not found).

Leaf classes live next to the code that raises them and keep their built-in bases as second
parents (``DecodeError`` is also a ``ValueError``, ``ReceiveTimeout`` also a ``TimeoutError``).
`NameInUse` lives here because it belongs to two branches. This module imports nothing from
beamlink, so every layer can use it.
"""

from __future__ import annotations

__all__ = [
    "BeamlinkError",
    "ConfigurationError",
    "EpmdError",
    "NameInUse",
    "NodeError",
    "RemoteProtocolError",
]


class BeamlinkError(Exception):
    """Root of every exception beamlink raises on purpose."""


class RemoteProtocolError(BeamlinkError):
    """A peer sent something its protocol does not allow (bad term, frame, handshake, EPMD reply)."""


class ConfigurationError(BeamlinkError):
    """A setting, environment variable or config file is invalid; the message names it."""


class NodeError(BeamlinkError):
    """The node runtime failed: processes, names, node start-up, calls and RPC."""


class EpmdError(BeamlinkError):
    """An EPMD operation failed (see the subclasses in ``beamlink.epmd``)."""


class NameInUse(NodeError, EpmdError):
    """A name is taken: ``register`` was given a name another process holds (or the process
    already has one), or EPMD refused to register a node name that a live node holds."""
