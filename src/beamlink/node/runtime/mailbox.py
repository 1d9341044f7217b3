"""A process mailbox: an ordered queue with Erlang-style selective receive on asyncio.

Rules:
1. Delivery (`put`) is the hot path: one deque append, and a wake-up only when the owner waits.
2. `receive` returns the oldest message the predicate accepts; messages it skips keep their order.
3. Only the owning process receives, so there is at most one waiter at a time.
4. An owner waiting for any message may install `direct`: a message arriving while the queue is
   empty then goes to `direct(message)` at once, inside `put` (no task wake-up, no loop
   iteration); it returns False to have the message queued as usual. GenServer uses it to run a
   quick synchronous callback straight from the connection's `data_received`.

A receive scans the queue once, then on each wake-up looks only at the messages that arrived
since its last look, so a long queue of unmatched messages costs one pass per receive.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from beamlink.node.errors import ProcessExit, ReceiveTimeout

Match = Callable[[Any], bool]


class Mailbox:
    """Messages of one process, oldest first."""

    __slots__ = ("_closed_reason", "_is_closed", "_queue", "_waiter", "direct")

    def __init__(self) -> None:
        self._queue: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._is_closed = False
        self._closed_reason: Any = None
        #: Set by the owner only while it awaits `receive()` with no predicate (rule 4).
        self.direct: Callable[[Any], bool] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, message: Any) -> None:
        """Append ``message`` and wake the owner if it waits (dropped once the mailbox closed)."""
        if self._is_closed:
            return
        waiter = self._waiter
        direct = self.direct
        if direct is not None and waiter is not None and not self._queue and direct(message):
            return
        self._queue.append(message)
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def put_first(self, message: Any) -> None:
        """Put ``message`` ahead of every queued one and wake the owner (the owner's own
        resumption markers; dropped once the mailbox closed)."""
        if self._is_closed:
            return
        self._queue.appendleft(message)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def close(self, reason: Any) -> None:
        """The owner has exited with ``reason``: a pending or later `receive` raises ProcessExit."""
        self._is_closed = True
        self._closed_reason = reason
        self._queue.clear()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def peek(self) -> list[Any]:
        """A copy of the queued messages, oldest first (for inspection and tests)."""
        return list(self._queue)

    def take_queued(self, limit: int) -> list[Any]:
        """Remove and return up to ``limit`` queued messages, oldest first, without waiting."""
        queue = self._queue
        return [queue.popleft() for _ in range(min(limit, len(queue)))]

    def remove_all(self, match: Match) -> int:
        """Drop every queued message ``match`` accepts; returns how many were dropped."""
        kept = [m for m in self._queue if not match(m)]
        dropped = len(self._queue) - len(kept)
        if dropped:
            self._queue.clear()
            self._queue.extend(kept)
        return dropped

    def _take(self, match: Match | None, start: int) -> tuple[bool, Any]:
        queue = self._queue
        if match is None:
            if queue:
                return True, queue.popleft()
            return False, None
        for index in range(start, len(queue)):
            message = queue[index]
            if match(message):
                del queue[index]
                return True, message
        return False, None

    async def receive(self, match: Match | None = None, timeout: float | None = None) -> Any:
        """The oldest message ``match`` accepts (any message when ``match`` is None).

        Waits up to ``timeout`` seconds (None: forever; 0: only look at what is queued) and then
        raises :class:`ReceiveTimeout`. Raises :class:`ProcessExit` when the owner has exited.
        Cancelling the awaiting task leaves the queue untouched.
        """
        if match is None and self._queue:  # the hot path (a closed mailbox is empty)
            return self._queue.popleft()
        if self._is_closed:
            raise ProcessExit(self._closed_reason)
        found, message = self._take(match, 0)
        if found:
            return message
        if timeout is not None and timeout <= 0:
            raise ReceiveTimeout("no matching message")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        expired = False
        handle = None
        if timeout is not None:

            def expire() -> None:
                nonlocal expired
                expired = True
                if not waiter.done():
                    waiter.set_result(None)

            handle = loop.call_later(timeout, expire)
        try:
            scanned = len(self._queue)
            while True:
                self._waiter = waiter
                await waiter
                if self._is_closed:
                    raise ProcessExit(self._closed_reason)
                found, message = self._take(match, scanned)
                if found:
                    return message
                if expired:
                    raise ReceiveTimeout(f"no matching message within {timeout} s")
                scanned = len(self._queue)
                waiter = loop.create_future()
        finally:
            if handle is not None:
                handle.cancel()
            if self._waiter is waiter:
                self._waiter = None
