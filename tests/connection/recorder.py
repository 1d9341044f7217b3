"""A ConnectionHandler for tests: records nodeup/nodedown/messages and lets a test wait on them."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from beamlink.connection import DownReason, PeerInfo
from beamlink.etf import Atom


class Recorder:
    """A ConnectionHandler that records everything and lets tests wait for it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Atom, Any]] = []
        self.messages: list[tuple[Atom, tuple[Any, ...], Any]] = []
        self.changed = asyncio.Event()

    def on_nodeup(self, peer: Atom, info: PeerInfo) -> None:
        self.events.append(("up", peer, info))
        self.changed.set()

    def on_nodedown(self, peer: Atom, reason: DownReason) -> None:
        self.events.append(("down", peer, reason))
        self.changed.set()

    def on_message(self, peer: Atom, control_msg: tuple[Any, ...], message: Any) -> None:
        self.messages.append((peer, control_msg, message))
        self.changed.set()

    async def wait_for(self, predicate: Any, timeout: float = 15.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            self.changed.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out; events={self.events} messages={self.messages[-5:]}"
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)

    def kinds(self, kind: str) -> list[Atom]:
        return [peer for k, peer, _ in self.events if k == kind]
