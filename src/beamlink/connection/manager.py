"""One connection per peer node: listener, dialling, simultaneous connects, nodeup/nodedown.

Simultaneous connects are settled as net_kernel does (``accept_pending``): when a peer dials us
while our own dial to it is pending, the node whose name is greater keeps its own attempt. If
ours is greater we answer ``nok``; otherwise we drop our attempt and answer ``ok_simultaneous``.
A peer dialling while we believe it is connected gets ``alive``; if it confirms (``strue``) the
new connection replaces the old one. `connect` returns True in every case that ends with one
connection up, including a lost race.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from beamlink.connection.events import (
    DISCONNECTED,
    REPLACED,
    SHUTDOWN,
    AddressResolver,
    ConnectionHandler,
    DownReason,
    PeerInfo,
)
from beamlink.connection.protocol import DistConnection
from beamlink.dist import flags as dflags
from beamlink.dist.control import NO_MESSAGE
from beamlink.dist.frames import DEFAULT_MAX_FRAME_SIZE
from beamlink.dist.handshake import Acceptor, HandshakeError, Initiator, PeerName, Status
from beamlink.etf import Atom
from beamlink.logs import RateLimiter

log = logging.getLogger(__name__)

DEFAULT_NET_TICKTIME = 60.0
DEFAULT_HANDSHAKE_TIMEOUT = 7.0  # OTP's net_setuptime


@dataclass
class _Dial:
    """Our pending attempt to connect to one peer."""

    peer: Atom
    conn: DistConnection | None = None
    superseded: bool = False
    result: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _Withdrawn(asyncio.Protocol):
    """Takes a socket whose dial lost a simultaneous connect while its TCP connect was in
    flight: hangs up before a byte is sent, as OTP does when it kills the losing dialler."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class ConnectionManager:
    """Keeps at most one connection per peer and tells `handler` about them."""

    def __init__(
        self,
        *,
        local_name: str,
        cookie: str,
        creation: int,
        handler: ConnectionHandler,
        resolver: AddressResolver,
        hidden: bool = False,
        net_ticktime: float = DEFAULT_NET_TICKTIME,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        handshake_version: int = 6,
        flags: int | None = None,
        required_flags: int = dflags.MANDATORY,
        allow: Callable[[Atom], bool] | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self.local_name = Atom(local_name)
        self.cookie = cookie
        self.creation = creation
        self.handler = handler
        self.resolver = resolver
        self.hidden = hidden
        self.net_ticktime = net_ticktime
        self.handshake_timeout = handshake_timeout
        self.handshake_version = handshake_version
        self.flags = dflags.advertised_flags(hidden=hidden) if flags is None else flags
        self.required_flags = required_flags
        self.allow = allow
        self.max_frame_size = max_frame_size
        self._up: dict[Atom, DistConnection] = {}
        self._dials: dict[Atom, _Dial] = {}
        self._accepting: dict[Atom, DistConnection] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._handshaking: set[DistConnection] = set()
        self._up_waiters: dict[Atom, list[asyncio.Future[bool]]] = {}
        self._refusals = RateLimiter(interval=60.0)
        self._closing = False

    # -- public API ---------------------------------------------------------------------------

    async def listen(self, host: str, port: int = 0) -> int:
        """Accept peers on ``host:port`` (0: any free port); returns the bound port."""
        server = await asyncio.get_running_loop().create_server(self._accepted, host, port)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def connect(self, peer: str) -> bool:
        """Connect to `peer` unless connected; True when a connection to it is up."""
        name = Atom(peer)
        if name == self.local_name or name in self._up:
            return True
        if self._closing:
            return False
        dial = self._dials.get(name)
        if dial is None:
            if name in self._accepting:
                return await self._wait_up(name)
            dial = self._dials[name] = _Dial(name)
            asyncio.get_running_loop().create_task(self._dial(dial))
        return await asyncio.shield(dial.result)

    def send(self, peer: Atom, control: tuple[Any, ...], message: Any = NO_MESSAGE) -> bool:
        """Queue a message to a connected peer; False (nothing sent) when not connected."""
        conn = self._up.get(peer)
        if conn is None:
            return False
        conn.send(control, message)
        return True

    async def disconnect(self, peer: str) -> bool:
        """Close the connection to `peer`; True if there was one (nodedown follows)."""
        conn = self._up.get(Atom(peer))
        if conn is None:
            return False
        conn.close(DownReason(DISCONNECTED, "disconnected locally"))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(conn.closed), self.handshake_timeout)
        return True

    def connected_nodes(self, visible_only: bool = True) -> list[Atom]:
        """Names of connected peers; hidden connections too unless `visible_only`."""
        return [
            peer
            for peer, conn in self._up.items()
            if not (visible_only and conn.info is not None and conn.info.hidden)
        ]

    def peer_info(self, peer: str) -> PeerInfo | None:
        """What was agreed with a connected peer."""
        conn = self._up.get(Atom(peer))
        return None if conn is None else conn.info

    async def close(self) -> None:
        """Stop listening and close every connection (nodedown with reason `shutdown`)."""
        self._closing = True
        for server in self._servers:
            server.close()
        for dial in list(self._dials.values()):
            dial.superseded = True
            if dial.conn is not None:
                dial.conn.abort(DownReason(SHUTDOWN))
        conns = list(self._up.values()) + list(self._handshaking)
        for conn in conns:
            conn.close(DownReason(SHUTDOWN, "connection manager closed"))
        if conns:
            await asyncio.wait(
                [asyncio.ensure_future(c.closed) for c in conns], timeout=self.handshake_timeout
            )
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    # -- dialling -------------------------------------------------------------------------------

    def _new_connection(self, handshake: Initiator | Acceptor) -> DistConnection:
        conn = DistConnection(
            self,
            handshake,
            net_ticktime=self.net_ticktime,
            handshake_timeout=self.handshake_timeout,
            max_frame_size=self.max_frame_size,
        )
        self._handshaking.add(conn)
        return conn

    def _accepted(self) -> DistConnection:
        return self._new_connection(
            Acceptor(
                self.local_name,
                self.cookie,
                flags=self.flags,
                creation=self.creation,
                required_flags=self.required_flags,
            )
        )

    async def _dial(self, dial: _Dial) -> None:
        ok = False
        try:
            ok = await self._attempt(dial)
        finally:
            if self._dials.get(dial.peer) is dial:
                del self._dials[dial.peer]
            if not dial.result.done():
                dial.result.set_result(ok)

    async def _attempt(self, dial: _Dial) -> bool:
        peer = dial.peer
        loop = asyncio.get_running_loop()
        try:
            host, port = await asyncio.wait_for(self.resolver(peer), self.handshake_timeout)
            if dial.superseded:
                return await self._wait_up(peer)
            conn = self._new_connection(
                Initiator(
                    self.local_name,
                    self.cookie,
                    peer_name=peer,
                    flags=self.flags,
                    creation=self.creation,
                    version=self.handshake_version,
                    required_flags=self.required_flags,
                )
            )
            dial.conn = conn
            transport, _ = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Withdrawn() if dial.superseded else conn, host, port
                ),
                self.handshake_timeout,
            )
            if dial.superseded:
                transport.abort()
        except Exception as exc:
            if dial.superseded:
                return await self._wait_up(peer)
            self._log_failure(peer, None, exc, outgoing=True)
            return False
        return await self._wait_up(peer, dial)

    async def _wait_up(self, peer: Atom, dial: _Dial | None = None) -> bool:
        """Wait until `peer` is up, or until this attempt (and any incoming one) failed."""
        if peer in self._up:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._up_waiters.setdefault(peer, []).append(waiter)
        if dial is not None:

            def attempt_over(result: asyncio.Future[bool]) -> None:
                if not waiter.done():
                    waiter.set_result(result.result())

            dial.result.add_done_callback(attempt_over)
        try:
            return await asyncio.wait_for(waiter, self.handshake_timeout * 2)
        except asyncio.TimeoutError:
            return peer in self._up
        finally:
            waiters = self._up_waiters.get(peer, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._up_waiters.pop(peer, None)

    def _settle_waiters(self, peer: Atom, ok: bool) -> None:
        for waiter in self._up_waiters.pop(peer, []):
            if not waiter.done():
                waiter.set_result(ok)

    # -- ConnectionOwner ----------------------------------------------------------------------

    def decide(self, conn: DistConnection, peer: PeerName) -> Status:
        name = Atom(peer.name)
        if self._closing:
            return Status.NOT_ALLOWED
        if self.allow is not None and not self.allow(name):
            self._refusals.log(
                log,
                logging.WARNING,
                ("in", name, "not_allowed"),
                "refused connection from %s: not in the allowed nodes",
                name,
            )
            return Status.NOT_ALLOWED
        if name in self._up:
            return Status.ALIVE
        if name in self._accepting:
            return Status.NOK
        dial = self._dials.get(name)
        if dial is not None and not dial.superseded:
            if self.local_name > name:
                return Status.NOK
            dial.superseded = True
            if dial.conn is not None:
                dial.conn.abort(DownReason(REPLACED, "lost a simultaneous connect"))
            self._accepting[name] = conn
            return Status.OK_SIMULTANEOUS
        self._accepting[name] = conn
        return Status.OK

    def answer_alive(self, conn: DistConnection) -> bool:
        return True

    def handshake_done(self, conn: DistConnection, info: PeerInfo) -> bool:
        self._handshaking.discard(conn)
        peer = info.name
        if self._accepting.get(peer) is conn:
            del self._accepting[peer]
        dial = self._dials.get(peer)
        if self._closing or (conn.initiated and (dial is None or dial.superseded)):
            conn.close(DownReason(SHUTDOWN if self._closing else REPLACED))
            return False
        old = self._up.get(peer)
        if old is not None:
            old.close(DownReason(REPLACED, "the peer reconnected"))
        self._up[peer] = conn
        log.log(
            logging.DEBUG if info.hidden else logging.INFO,
            "nodeup %s (%s, %s)",
            peer,
            "hidden" if info.hidden else "visible",
            "dialled" if info.initiated else "accepted",
        )
        self.handler.on_nodeup(peer, info)
        if dial is not None and dial.conn is conn and not dial.result.done():
            dial.result.set_result(True)
        self._settle_waiters(peer, True)
        return True

    def handshake_failed(self, conn: DistConnection, error: Exception) -> None:
        self._handshaking.discard(conn)
        peer = conn.peer
        if peer is not None and self._accepting.get(peer) is conn:
            del self._accepting[peer]
            dial = self._dials.get(peer)
            if dial is None or dial.superseded:
                self._settle_waiters(peer, False)
        if not conn.closed.done() and conn.transport is None:
            conn.closed.set_result(None)
        if conn.initiated:
            dial = self._dials.get(peer) if peer is not None else None
            if dial is not None and dial.conn is conn and not dial.superseded:
                lost_race = isinstance(error, HandshakeError) and error.status is Status.NOK
                if lost_race:
                    dial.superseded = True
                    return
                self._log_failure(peer, conn, error, outgoing=True)
                if not dial.result.done():
                    dial.result.set_result(False)
            return
        self._log_failure(peer, conn, error, outgoing=False)

    def connection_down(self, conn: DistConnection, reason: DownReason) -> None:
        peer = conn.peer
        if peer is None or self._up.get(peer) is not conn:
            return
        del self._up[peer]
        hidden = conn.info is not None and conn.info.hidden
        log.log(logging.DEBUG if hidden else logging.INFO, "nodedown %s: %s", peer, reason)
        self.handler.on_nodedown(peer, reason)

    def deliver(self, peer: Atom, frames: list[tuple[tuple[Any, ...], Any]]) -> None:
        on_message = self.handler.on_message
        for control, message in frames:
            try:
                on_message(peer, control, message)
            except Exception:
                log.exception("handler failed on a message from %s: %r", peer, control)

    def _log_failure(
        self, peer: Atom | None, conn: DistConnection | None, error: Exception, *, outgoing: bool
    ) -> None:
        code = error.code if isinstance(error, HandshakeError) else type(error).__name__
        if isinstance(error, HandshakeError) and error.status is Status.NOT_ALLOWED:
            code = "not_allowed"
        if self._closing or (code == "refused" and not outgoing):
            return
        if not outgoing and isinstance(error, ConnectionError):
            # The peer hung up mid-handshake: a withdrawn losing attempt or a port probe.
            log.debug("incoming handshake from %s dropped by the peer: %s", peer, error)
            return
        who = peer or "unknown node"
        where = conn.peer_address if conn is not None else None
        address = f" ({where[0]}:{where[1]})" if where else ""
        if outgoing:
            self._refusals.log(
                log,
                logging.WARNING,
                ("out", who, code),
                "connection to %s%s failed: %s",
                who,
                address,
                _explain(error),
            )
        else:
            self._refusals.log(
                log,
                logging.WARNING,
                ("in", who, code),
                "refused connection from %s%s: %s",
                who,
                address,
                _explain(error),
            )


def _explain(error: Exception) -> str:
    if isinstance(error, HandshakeError):
        return error.reason
    return str(error) or type(error).__name__
