"""Node monitoring (``net_kernel:monitor_nodes/1``): nodeup/nodedown as `NodeEvent`s fanned out
to callbacks and async streams, with OTP's nodedown reasons. The `Node` feeds it from the
connection layer; users and kernel services subscribe through ``Node.monitor_nodes``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final, Literal

from beamlink.connection import (
    CLOSED,
    DISCONNECTED,
    PROTOCOL_ERROR,
    REPLACED,
    SHUTDOWN,
    TICK_TIMEOUT,
    DownReason,
)
from beamlink.etf import Atom

log = logging.getLogger("beamlink.node")

# OTP's nodedown_reason values (net_kernel:monitor_nodes/2) for each connection-layer reason.
NODEDOWN_REASONS: Final = {
    CLOSED: Atom("connection_closed"),
    TICK_TIMEOUT: Atom("net_tick_timeout"),
    PROTOCOL_ERROR: Atom("connection_closed"),
    DISCONNECTED: Atom("disconnect"),
    REPLACED: Atom("connection_closed"),
    SHUTDOWN: Atom("net_kernel_terminated"),
}


@dataclass(frozen=True)
class NodeEvent:
    """A node connected (``nodeup``) or its connection ended (``nodedown``, with ``reason``)."""

    kind: Literal["nodeup", "nodedown"]
    node: Atom
    hidden: bool
    reason: Atom | None = None
    detail: str = ""


NodeCallback = Callable[[NodeEvent], None]


class NodeEventStream:
    """An async iterator of `NodeEvent`s from the moment it was made; ``close()`` ends it."""

    def __init__(self, monitors: NodeMonitors) -> None:
        self._monitors = monitors
        self._queue: asyncio.Queue[NodeEvent | None] = asyncio.Queue()
        self._closed = False

    def _push(self, event: NodeEvent | None) -> None:
        if not self._closed:
            self._queue.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[NodeEvent]:
        return self

    async def __anext__(self) -> NodeEvent:
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event

    async def next(self, timeout: float | None = None) -> NodeEvent:
        """The next event; `TimeoutError` after ``timeout`` seconds, StopAsyncIteration if closed."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    def close(self) -> None:
        """Stop receiving events; a pending iteration ends."""
        self._push(None)
        self._closed = True
        self._monitors.streams.discard(self)

    async def __aenter__(self) -> NodeEventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class NodeMonitors:
    """Fans nodeup/nodedown out to callbacks and streams; a failing callback is only logged."""

    def __init__(self) -> None:
        self.callbacks: list[NodeCallback] = []
        self.streams: set[NodeEventStream] = set()

    def subscribe(self, callback: NodeCallback) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that unsubscribes."""
        self.callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self.callbacks:
                self.callbacks.remove(callback)

        return unsubscribe

    def stream(self) -> NodeEventStream:
        stream = NodeEventStream(self)
        self.streams.add(stream)
        return stream

    def nodeup(self, node: Atom, hidden: bool) -> None:
        self._emit(NodeEvent("nodeup", node, hidden))

    def nodedown(self, node: Atom, hidden: bool, reason: DownReason) -> None:
        atom = NODEDOWN_REASONS.get(reason.kind, Atom("connection_closed"))
        self._emit(NodeEvent("nodedown", node, hidden, atom, str(reason)))

    def _emit(self, event: NodeEvent) -> None:
        for callback in list(self.callbacks):
            try:
                callback(event)
            except Exception:
                log.exception("node monitor callback %r failed on %r", callback, event)
        for stream in list(self.streams):
            stream._push(event)

    def close(self) -> None:
        for stream in list(self.streams):
            stream.close()
