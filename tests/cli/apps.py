"""Apps hosted by ``beamlink start --app tests.cli.apps:...`` in the CLI tests.

They print markers on stdout (the tests read them from the node's log) so a test can see which
hook ran and in which order.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from beamlink.etf import Atom
from beamlink.node.genserver import From, GenServer


class Greeter(GenServer):
    """Registered as ``greeter``: ``{greet, Name}`` -> ``<<"hello, Name from Node">>``."""

    name = "greeter"

    def __init__(self, home: Any) -> None:
        super().__init__()
        self.node = home

    def handle_call(self, request: Any, from_: From) -> Any:
        if type(request) is tuple and len(request) == 2 and request[0] == Atom("greet"):
            return f"hello, {bytes(request[1]).decode()} from {self.node.name}"
        if request == Atom("nodes"):
            return sorted(self.node.nodes())
        return (Atom("error"), Atom("unknown_request"))


async def greeter(node: Any) -> None:
    """Entry point: run the greeter until the node stops the app."""
    await Greeter.start(node, home=node)
    print("greeter started", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        print("greeter cancelled", flush=True)


class Hooks:
    """An app object with start/stop hooks; ``stop`` is async."""

    def start(self, node: Any) -> None:
        print(f"hooks start on {node.name} pid {os.getpid()}", flush=True)

    async def stop(self) -> None:
        await asyncio.sleep(0.05)
        print("hooks stopped", flush=True)


async def crash(node: Any) -> None:
    """Entry point that crashes shortly after the node is up."""
    await asyncio.sleep(0.2)
    raise ValueError("the app broke on purpose")


async def finish(node: Any) -> None:
    """Entry point that returns: the node then stops with status 0."""
    print("finish ran", flush=True)


class BadStart:
    """Its start hook raises."""

    def start(self, node: Any) -> None:
        raise RuntimeError("cannot start on purpose")
