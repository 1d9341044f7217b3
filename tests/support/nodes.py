"""Python nodes for tests: a few started on one EPMD port and stopped together, and an idle
process body."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection

from beamlink.node import Node, Process


@contextlib.asynccontextmanager
async def python_nodes(
    cookie: str, port: int, *names: str, hidden: Collection[str] = ()
) -> AsyncIterator[list[Node]]:
    """Nodes ``names`` (those also in ``hidden`` hidden) on 127.0.0.1, registered in the EPMD at
    ``port`` (embedded when none runs there); stopped in reverse order at the end."""
    nodes: list[Node] = []
    try:
        for name in names:
            nodes.append(
                await Node.start(
                    name, cookie, epmd_port=port, listen_host="127.0.0.1", hidden=name in hidden
                )
            )
        yield nodes
    finally:
        for node in reversed(nodes):
            await node.stop()


async def idle(proc: Process) -> None:
    """A process body that waits for a message that never comes."""
    await proc.receive(lambda m: False)
