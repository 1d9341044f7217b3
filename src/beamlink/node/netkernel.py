"""What OTP's net_kernel does for other nodes and for local subscribers.

- The registered ``net_kernel`` process answers ``{'$gen_call', From, {is_auth, Node}}`` with
  ``yes``, which is all ``net_adm:ping/1`` needs (MONITOR_P on ``net_kernel`` then REG_SEND of
  the call, the reply going to the ``[alias|Ref]`` tag's alias or to the caller's pid).
- `gen_reply` is gen:reply/2: how any gen_server-style call on this node is answered.
- `NodeMonitors` is net_kernel:monitor_nodes/1: nodeup/nodedown events to callbacks and async
  streams, with OTP's nodedown reasons.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from beamlink.connection import (
    CLOSED,
    DISCONNECTED,
    PROTOCOL_ERROR,
    REPLACED,
    SHUTDOWN,
    TICK_TIMEOUT,
    DownReason,
)
from beamlink.etf import Atom, ImproperList, Pid, Reference

if TYPE_CHECKING:
    from beamlink.node.process import Process
    from beamlink.node.runtime import ProcessRuntime

log = logging.getLogger("beamlink.node")

NET_KERNEL: Final = Atom("net_kernel")
GEN_CALL: Final = Atom("$gen_call")
IS_AUTH: Final = Atom("is_auth")
YES: Final = Atom("yes")
ALIAS: Final = Atom("alias")

# OTP's nodedown_reason values (net_kernel:monitor_nodes/2) for each connection-layer reason.
NODEDOWN_REASONS: Final = {
    CLOSED: Atom("connection_closed"),
    TICK_TIMEOUT: Atom("net_tick_timeout"),
    PROTOCOL_ERROR: Atom("connection_closed"),
    DISCONNECTED: Atom("disconnect"),
    REPLACED: Atom("connection_closed"),
    SHUTDOWN: Atom("net_kernel_terminated"),
}


def gen_reply(node: ProcessRuntime, sender: Pid, from_: tuple[Any, Any], reply: Any) -> None:
    """Answer a ``$gen_call`` whose From is ``from_`` = ``(Pid, Tag)``, like gen:reply/2.

    A ``[alias|Alias]`` tag (an `ImproperList`) is answered by sending ``{Tag, Reply}`` to the
    alias (ALIAS_SEND), any other tag by sending it to the caller's pid.
    """
    caller, tag = from_
    if type(tag) is ImproperList and tag.items == (ALIAS,) and type(tag.tail) is Reference:
        node.send(tag.tail, (tag, reply), sender=sender)
    else:
        node.send(caller, (tag, reply), sender=sender)


def _is_gen_call(message: Any) -> bool:
    return (
        type(message) is tuple
        and len(message) == 3
        and message[0] == GEN_CALL
        and type(message[1]) is tuple
        and len(message[1]) == 2
    )


async def net_kernel(proc: Process) -> None:
    """Body of the ``net_kernel`` process: answers is_auth; other calls and messages are dropped."""
    while True:
        message = await proc.receive()
        if not _is_gen_call(message):
            continue
        _, from_, request = message
        if type(request) is tuple and len(request) == 2 and request[0] == IS_AUTH:
            gen_reply(proc.node, proc.pid, from_, YES)
        else:
            log.debug("net_kernel ignored call %r", request)


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
