"""Typed errors of the node runtime (processes, mailboxes, names, node start-up).

All derive from `beamlink.errors.NodeError`; `NameInUse` (shared with the EPMD client) is
defined in ``beamlink.errors`` and re-exported here.

Nothing here does I/O; every error says what went wrong and, where it can, what to do next.
"""

from __future__ import annotations

from typing import Any

from beamlink.errors import NameInUse, NodeError

__all__ = [
    "NameInUse",
    "NodeError",
    "NodeStartError",
    "ProcessExit",
    "ReceiveTimeout",
    "UnknownName",
]


class ReceiveTimeout(NodeError, TimeoutError):
    """``receive`` found no matching message within its timeout (Erlang's ``after`` clause)."""


class ProcessExit(NodeError):
    """A process ends with ``reason``.

    Raise it inside a process body to exit with any reason (Erlang's ``exit(Reason)``). The runtime
    raises it from ``receive`` in a process that an exit signal has already ended.
    """

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownName(NodeError, LookupError):
    """A local send to a name that no process holds (Erlang raises ``badarg`` there)."""


class NodeStartError(NodeError):
    """The node could not start (e.g. its host does not resolve); see the message.

    A missing or malformed setting (name, port, cookie) raises `beamlink.settings.SettingsError`.
    """
