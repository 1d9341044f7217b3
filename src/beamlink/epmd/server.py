"""Embedded EPMD: an asyncio server speaking the EPMD protocol, and ``ensure_epmd`` to use or start one.

A container usually has no ``epmd``; the first beamlink node there runs this one in its own
process. It behaves like OTP's ``epmd_srv.c`` for ALIVE2, PORT_PLEASE2 and NAMES:

* a registration lives exactly as long as the socket that sent ALIVE2 (any byte sent on it
  afterwards, or its close, unregisters the node); only local peers (loopback, or the address
  the connection came in on) may register;
* a name held by a live registration is refused (result 1, creation 99), and that socket closed;
* creations are 32-bit and never 0..3: a random start for a name not seen before, then +1 for
  every new registration of the same name (a v5-only node gets ``counter % 3 + 1`` in
  ALIVE2_RESP, as epmd_srv.c does);
* any other request code, malformed or oversized input, or a request not complete within
  ``request_timeout`` closes that one connection with a rate-limited log line; serving goes on;
* connections still waiting for their request are capped in total and per source address
  (`beamlink.listener`: the oldest of the busiest source is dropped when the total is reached),
  and accepting pauses near the descriptor limit; EMFILE is one rate-limited line.

Requests other than ALIVE2, PORT_PLEASE2 and NAMES (KILL, STOP, DUMP) are not implemented:
``epmd -kill`` does not stop an embedded EPMD. When the process that runs it exits, every
registration it holds is dropped; see ``beamlink.epmd.keeper`` for how the other local nodes take
over.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from beamlink.epmd.client import DEFAULT_TIMEOUT, EpmdUnavailable, default_epmd_port, names
from beamlink.epmd.protocol import (
    DIST_VERSION_6,
    ERROR_CREATION,
    RESULT_ERROR,
    RESULT_OK,
    Alive2Request,
    Alive2Response,
    EpmdProtocolError,
    NamesRequest,
    NamesResponse,
    NeedData,
    NodeAddress,
    Port2Response,
    Request,
    RequestReader,
    encode_response,
)
from beamlink.errors import EpmdError
from beamlink.listener import (
    Admission,
    GuardedServer,
    Ticket,
    listening_socket,
    raise_fd_limit,
)

__all__ = ["EmbeddedEpmd", "RegisteredNode", "ensure_epmd"]

log = logging.getLogger(__name__)

# Creations 1..3 are the old 2-bit range and 0 means "any"; epmd_srv.c never hands them out.
_MIN_CREATION = 4
_CREATION_MOD = 1 << 32
# Names whose last creation is remembered after they unregister (epmd_srv.c: MAX_UNREG_COUNT).
_REMEMBERED_NAMES = 1000
_READ_CHUNK = 4096
# Every local node talks to EPMD from loopback, often many at once (a host starting up), and a
# request takes milliseconds: caps higher than the distribution listener's.
MAX_PENDING = 1024
MAX_PENDING_PER_SOURCE = 256


@dataclass(frozen=True)
class RegisteredNode:
    """A node currently registered with an ``EmbeddedEpmd``."""

    node: NodeAddress
    creation: int


class _RateLimitedLog:
    """Logs at most ``burst`` warnings per ``interval`` seconds and counts the rest."""

    def __init__(self, burst: int = 5, interval: float = 10.0) -> None:
        self._burst = burst
        self._interval = interval
        self._window_start = 0.0
        self._in_window = 0
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._window_start >= self._interval:
            if self._suppressed:
                log.warning("embedded EPMD: %d similar messages suppressed", self._suppressed)
            self._window_start, self._in_window, self._suppressed = now, 0, 0
        if self._in_window < self._burst:
            self._in_window += 1
            log.warning(message, *args)
        else:
            self._suppressed += 1


def _is_local_peer(writer: asyncio.StreamWriter) -> bool:
    """epmd_srv.c's rule: loopback peers, or peers using the address they connected to."""
    peer = writer.get_extra_info("peername")
    local = writer.get_extra_info("sockname")
    if not peer or not local:
        return False
    address = ipaddress.ip_address(peer[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or peer[0] == local[0]


class EmbeddedEpmd:
    """An EPMD server running inside this process.

    ``addresses`` are the IP addresses to listen on; None (the default) means every interface,
    like ``epmd`` itself, so that nodes on other hosts can look up the nodes of this one.
    ``port`` defaults to ``ERL_EPMD_PORT`` or 4369; 0 picks a free port (see ``.port``) and needs
    exactly one address.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        addresses: Sequence[str] | None = None,
        request_timeout: float = 10.0,
        max_pending: int = MAX_PENDING,
        max_pending_per_source: int = MAX_PENDING_PER_SOURCE,
    ) -> None:
        self._requested_port = default_epmd_port() if port is None else port
        if self._requested_port == 0 and (addresses is None or len(addresses) != 1):
            raise ValueError("port 0 (any free port) needs exactly one address to listen on")
        self._addresses = None if addresses is None else list(addresses)
        self._request_timeout = request_timeout
        self._servers: list[GuardedServer] = []
        self._started = False
        self.admission = Admission(max_pending, max_pending_per_source)
        self._bound_port: int | None = None
        self._nodes: dict[str, tuple[RegisteredNode, asyncio.StreamWriter]] = {}
        self._counters: OrderedDict[str, int] = OrderedDict()
        self._handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._complaints = _RateLimitedLog()

    @property
    def port(self) -> int:
        """The TCP port this EPMD listens on (known once started)."""
        if self._bound_port is None:
            raise RuntimeError("EmbeddedEpmd is not started")
        return self._bound_port

    @property
    def serving(self) -> bool:
        """True between ``start()`` and ``close()``."""
        return self._started

    def registered(self) -> list[RegisteredNode]:
        """The nodes registered right now."""
        return [entry for entry, _ in self._nodes.values()]

    async def start(self) -> None:
        """Bind and listen; raises ``OSError`` (``EADDRINUSE``) when the port is taken."""
        if self._started:
            raise RuntimeError("EmbeddedEpmd is already started")
        raise_fd_limit()
        port = self._requested_port
        sockets = []
        try:
            for address in self._addresses or [""]:
                sockets.append(listening_socket(address, port))
                port = sockets[0].getsockname()[1]
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        self._servers = [
            GuardedServer(sock, self._accepted, self.admission, what="embedded EPMD")
            for sock in sockets
        ]
        for server in self._servers:
            server.start()
        self._started = True
        self._bound_port = port
        log.info(
            "embedded EPMD listening on %s port %d",
            ", ".join(self._addresses) if self._addresses else "all interfaces",
            self._bound_port,
        )

    async def close(self) -> None:
        """Stop listening and drop every connection, and with them every registration."""
        if not self._started:
            return
        self._started = False
        for server in self._servers:
            await server.close()
        self._servers = []
        for writer in self._handlers.values():
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        log.info("embedded EPMD on port %s stopped", self._bound_port)

    async def __aenter__(self) -> EmbeddedEpmd:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _accepted(self, sock: socket.socket, source: str, ticket: Ticket) -> None:
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._attach(loop, sock, ticket))

        def evict() -> None:
            task.cancel()

        ticket.on_evict = evict

    async def _attach(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, ticket: Ticket
    ) -> None:
        reader = asyncio.StreamReader(limit=_READ_CHUNK * 4)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock)
        except OSError:
            sock.close()
            ticket.release()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            await self._handle(reader, writer, ticket)
        except asyncio.CancelledError:
            writer.close()

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ticket: Ticket
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        peer = writer.get_extra_info("peername")
        try:
            try:
                request = await asyncio.wait_for(self._read_request(reader), self._request_timeout)
            finally:
                ticket.release()
            if request is None:
                return
            if isinstance(request, Alive2Request):
                await self._serve_registration(request.node, reader, writer, peer)
                return
            if isinstance(request, NamesRequest):
                response: NamesResponse | Port2Response = NamesResponse(
                    self.port, tuple((name, e.node.port) for name, (e, _) in self._nodes.items())
                )
            else:
                found = self._nodes.get(request.name)
                response = (
                    Port2Response(RESULT_OK, found[0].node)
                    if found
                    else Port2Response(RESULT_ERROR)
                )
            writer.write(encode_response(response))
            await writer.drain()
        except EpmdProtocolError as exc:
            self._complaints.warning("embedded EPMD: dropping %s: %s", peer, exc)
        except asyncio.TimeoutError:  # builtins.TimeoutError on 3.11+, distinct on 3.10
            self._complaints.warning(
                "embedded EPMD: dropping %s: no complete request within %s s",
                peer, self._request_timeout,
            )
        except OSError as exc:
            log.debug("embedded EPMD: connection from %s failed: %s", peer, exc)
        finally:
            writer.close()
            del self._handlers[task]

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> Request | None:
        """The request that opens a connection, or None if the peer closed before sending one."""
        parser = RequestReader()
        while True:
            event = parser.next_event()
            if not isinstance(event, NeedData):
                return event
            data = await reader.read(_READ_CHUNK)
            if not data:
                return None
            parser.feed(data)

    def _next_creation_counter(self, name: str) -> int:
        previous = self._counters.pop(name, None)
        if previous is None:
            counter = _MIN_CREATION + secrets.randbelow(_CREATION_MOD - _MIN_CREATION)
        else:
            counter = max((previous + 1) % _CREATION_MOD, _MIN_CREATION)
        self._counters[name] = counter
        while len(self._counters) > _REMEMBERED_NAMES:
            self._counters.popitem(last=False)
        return counter

    async def _serve_registration(
        self,
        node: NodeAddress,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: object,
    ) -> None:
        extended = node.highest_version >= DIST_VERSION_6
        if not _is_local_peer(writer):
            self._complaints.warning("embedded EPMD: refusing ALIVE2 from non-local %s", peer)
            return
        if node.name in self._nodes:
            log.warning("embedded EPMD: name %r is already registered; refusing %s", node.name, peer)
            writer.write(encode_response(Alive2Response(RESULT_ERROR, ERROR_CREATION, extended)))
            await writer.drain()
            return
        counter = self._next_creation_counter(node.name)
        creation = counter if extended else counter % 3 + 1
        entry = RegisteredNode(node, creation)
        self._nodes[node.name] = (entry, writer)
        try:
            writer.write(encode_response(Alive2Response(RESULT_OK, creation, extended)))
            await writer.drain()
            log.info("embedded EPMD: registered %r port %d creation %d", node.name, node.port, creation)
            if await reader.read(_READ_CHUNK):
                self._complaints.warning(
                    "embedded EPMD: %r sent bytes on its registration socket; unregistering",
                    node.name,
                )
        finally:
            del self._nodes[node.name]
            log.info("embedded EPMD: unregistered %r", node.name)


async def _epmd_answers(host: str, epmd_port: int, timeout: float) -> bool:
    try:
        await names(host, epmd_port=epmd_port, timeout=timeout)
    except EpmdUnavailable:
        return False
    except EpmdProtocolError as exc:
        if exc.empty:
            raise
        raise EpmdError(
            f"something that is not EPMD listens on {host}:{epmd_port} ({exc}); "
            "free that port or set ERL_EPMD_PORT"
        ) from exc
    return True


async def ensure_epmd(
    *,
    epmd_port: int | None = None,
    host: str = "127.0.0.1",
    addresses: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> EmbeddedEpmd | None:
    """Make sure an EPMD answers on ``host``:``epmd_port``; start an embedded one if none does.

    Returns None when an EPMD already answers (a system ``epmd``, or another node's embedded
    one), else the started ``EmbeddedEpmd`` listening on ``addresses`` (default: every interface),
    which the caller owns and must ``close()``. When several processes race to start one, one wins
    the bind and the others, seeing ``EADDRINUSE``, wait for the winner to answer and return None.
    Raises ``EpmdError`` when the port is held by something that never answers as EPMD.
    """
    epmd_port = default_epmd_port() if epmd_port is None else epmd_port
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await _epmd_answers(host, epmd_port, timeout):
                return None
        except EpmdProtocolError:
            # Another process may be half-way through starting its embedded EPMD (a connection
            # closed with no answer): retry until the deadline before calling the port foreign.
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        server = EmbeddedEpmd(port=epmd_port, addresses=addresses)
        try:
            await server.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            log.debug("EPMD port %d taken by another process; waiting for it to answer", epmd_port)
        else:
            return server
        if time.monotonic() >= deadline:
            raise EpmdError(
                f"port {epmd_port} is in use but no EPMD answered on {host} within {timeout} s: "
                "it is held by something that is not EPMD (or an EPMD that does not answer); "
                "free that port or set ERL_EPMD_PORT"
            )
        await asyncio.sleep(0.05)
