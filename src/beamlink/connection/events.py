"""What the connection layer tells the node layer: peer info, down reasons, the handler protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from beamlink.distribution import flags as dflags
from beamlink.etf import Atom

AddressResolver = Callable[[Atom], Awaitable[tuple[str, int]]]
"""Where to dial a peer: ``(host, port)``; raise (any exception) when it cannot be found."""

CLOSED = "closed"
TICK_TIMEOUT = "tick_timeout"
PROTOCOL_ERROR = "protocol_error"
DISCONNECTED = "disconnected"
REPLACED = "replaced"
SHUTDOWN = "shutdown"


@dataclass(frozen=True)
class PeerInfo:
    """A connected peer: `flags` are the agreed flags; `initiated` is True when we dialled."""

    name: Atom
    flags: int
    creation: int
    version: int
    initiated: bool

    @property
    def hidden(self) -> bool:
        """True for a hidden connection (either side hidden: PUBLISHED not agreed)."""
        return not self.flags & dflags.PUBLISHED


@dataclass(frozen=True)
class DownReason:
    """Why a connection went down: `kind` is one of the module's constants, `detail` is text."""

    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


class ConnectionHandler(Protocol):
    """The node layer's side. Called on the event loop, synchronously: return quickly.

    A handler may also define ``on_messages(peer, messages)``: it is then called once per read
    with that read's ``(control, message)`` pairs, in order, in place of `on_message` for each;
    it must log a message that fails and go on with the rest itself, as the manager does around
    `on_message` (the node's runtime does: ``ProcessRuntime.dispatch_all``).
    """

    def on_nodeup(self, peer: Atom, info: PeerInfo) -> None:
        """`peer` is connected; comes before any `on_message` from it."""

    def on_nodedown(self, peer: Atom, reason: DownReason) -> None:
        """The connection to `peer` that was up is gone (once per connection)."""

    def on_message(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        """A control message (``control[0]`` is the operation) and its message or NO_MESSAGE."""
