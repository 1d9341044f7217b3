"""Helpers shared by the EPMD tests: free ports and bounded polling of an EPMD."""

from __future__ import annotations

import asyncio
import socket

from beamlink.epmd import EpmdUnavailable, names
from tests.support.wait import eventually


def free_port() -> int:
    """A TCP port that nothing listens on right now (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_epmd(port: int, timeout: float = 10.0) -> None:
    """Wait until an EPMD answers NAMES on 127.0.0.1:``port``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await names(epmd_port=port, timeout=1.0)
            return
        except EpmdUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def wait_until_unregistered(name: str, epmd_port: int) -> None:
    """EPMD sees a closed registration socket asynchronously: poll NAMES (bounded)."""

    async def gone() -> bool:
        return name not in dict(await names(epmd_port=epmd_port))

    await eventually(gone, 4.0, what=f"{name!r} unregistered")
