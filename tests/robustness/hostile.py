"""A hostile distribution peer: a raw socket that completes a real handshake with a node (the
sans-I/O `Initiator` of `beamlink.distribution.handshake`) and then writes whatever bytes a test wants.

It drains what the node sends (ticks, control messages) in the background so that the node's
writes never block, and tells when the node hung up.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct

from beamlink.distribution import flags as dflags
from beamlink.distribution.handshake import HandshakeComplete, Initiator

FRAME_LENGTH = struct.Struct(">I")


class HostilePeer:
    """One connection whose handshake succeeded; `send` writes raw bytes after it."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, agreed_flags: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.agreed_flags = agreed_flags
        self.received = 0
        self._drain = asyncio.get_running_loop().create_task(self._read_until_closed())

    @classmethod
    async def connect(
        cls,
        target: str,
        port: int,
        cookie: str,
        *,
        name: str = "evil@127.0.0.1",
        flags: int | None = None,
        timeout: float = 10.0,
    ) -> HostilePeer:
        """Dial ``target`` on 127.0.0.1:``port`` and complete the handshake as ``name``.

        ``flags`` default to a hidden node's advertised flags (a hidden peer makes the target
        start no global-name sync, so the attack is the only traffic).
        """
        offered = dflags.advertised_flags(hidden=True) if flags is None else flags
        hs = Initiator(
            name,
            cookie,
            peer_name=target,
            flags=offered,
            creation=secrets.randbelow(1 << 31) + 4,
        )
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout
        )
        writer.write(hs.data_to_send())

        async def handshake() -> int:
            while True:
                data = await reader.read(4096)
                if not data:
                    raise ConnectionError(f"{target} closed during the handshake ({hs.state})")
                for event in hs.receive_data(data):
                    writer.write(hs.data_to_send())
                    if isinstance(event, HandshakeComplete):
                        return event.flags
                writer.write(hs.data_to_send())

        try:
            agreed = await asyncio.wait_for(handshake(), timeout)
        except BaseException:
            writer.close()
            raise
        return cls(reader, writer, agreed)

    async def _read_until_closed(self) -> None:
        with contextlib.suppress(OSError):
            while data := await self.reader.read(65536):
                self.received += len(data)

    async def send(self, data: bytes) -> None:
        """Write ``data`` and wait until the socket buffer takes it (OSError if it is gone)."""
        self.writer.write(data)
        await self.writer.drain()

    async def send_frame(self, body: bytes) -> None:
        """One length-prefixed frame."""
        await self.send(FRAME_LENGTH.pack(len(body)) + body)

    @property
    def closed_by_node(self) -> bool:
        return self._drain.done()

    async def wait_closed_by_node(self, timeout: float) -> bool:
        """True when the node hung up within ``timeout`` seconds."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._drain), timeout)
        return self._drain.done()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
        self._drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._drain
