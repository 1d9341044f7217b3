"""One connection per peer node: listener, dialling, simultaneous connects, nodeup/nodedown.

Simultaneous connects are settled as net_kernel does (``accept_pending``): when a peer dials us
while our own dial to it is pending, the node whose name is greater keeps its own attempt. If
ours is greater we answer ``nok``; otherwise we answer ``ok_simultaneous`` and drop our attempt
once the incoming one has proved the cookie. A peer dialling while we believe it is connected
gets ``alive``; if it confirms (``strue``) and proves the cookie, the new connection replaces the
old one. `connect` returns True in every case that ends with one connection up, including a lost
race.

The name a peer claims is not trusted before its digest is verified (issue 12): a claim never
ends or blocks another attempt of the same name (several incoming attempts may be pending for
one name; the first to prove the cookie wins), so someone repeating ``b@host`` without the
cookie cannot lock ``b`` out. Incoming sockets are admitted by `beamlink.listener` (caps on
pending handshakes in total and per source address, descriptor-limit pause); refusals are logged
rate-limited by source address, not by the claimed name.

With a `TlsConfig` (``tls=``), every connection speaks TLS from its first byte, as OTP's
``inet_tls_dist`` does: accepted ones with the server context, dialled ones with the client
context, checked against the host of the peer's node name.

`ConnectionStats` counts what operators watch (attempts, handshake failures by reason,
nodeup/nodedown, node-wide traffic); the metrics collector reads it at scrape time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from beamlink.connection.events import (
    DISCONNECTED,
    PROTOCOL_ERROR,
    REPLACED,
    SHUTDOWN,
    AddressResolver,
    ConnectionHandler,
    DownReason,
    PeerInfo,
)
from beamlink.connection.protocol import DistConnection, TrafficCounters
from beamlink.connection.tls import TlsConfig, TlsError, TlsSession
from beamlink.connection.watchdog import LoopWatchdog
from beamlink.distribution import flags as dflags
from beamlink.distribution.control import NO_MESSAGE
from beamlink.distribution.frames import DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_TERM_MEMORY
from beamlink.distribution.handshake import (
    Acceptor,
    HandshakeError,
    Initiator,
    PeerName,
    RecentChallenges,
    Status,
)
from beamlink.etf import Atom
from beamlink.listener import (
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_PENDING_PER_SOURCE,
    Admission,
    GuardedServer,
    Ticket,
    listening_socket,
    raise_fd_limit,
)
from beamlink.logs import RateLimiter
from beamlink.settings import DEFAULT_NET_TICKTIME, DEFAULT_STALL_THRESHOLD

log = logging.getLogger(__name__)

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


OUTGOING = "out"
INCOMING = "in"


class ConnectionStats:
    """Counters of one manager; plain integers and small dicts with bounded keys.

    ``attempts[direction]`` (``"out"``: dials, ``"in"``: accepted sockets);
    ``handshake_failures[(direction, reason)]`` with the reasons of `failure_reason`;
    ``nodeups[hidden]``; ``nodedowns[kind]`` (the `DownReason` kinds); ``traffic``: every
    connection's bytes and frames, also of connections that are gone.
    """

    __slots__ = ("attempts", "handshake_failures", "nodedowns", "nodeups", "traffic")

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {OUTGOING: 0, INCOMING: 0}
        self.handshake_failures: dict[tuple[str, str], int] = {}
        self.nodeups: dict[bool, int] = {False: 0, True: 0}
        self.nodedowns: dict[str, int] = {}
        self.traffic = TrafficCounters()


def failure_reason(error: Exception) -> str:
    """A short, bounded name for why a connection attempt failed.

    A `HandshakeError`'s code (``bad_cookie``, ``malformed``, ``refused``...; ``not_allowed``
    when the peer answered that), ``tls`` (a TLS failure: certificates, versions, a peer without
    TLS), ``timeout``, ``connection_refused``, ``closed`` (the peer hung
    up), ``socket_error`` or ``other``. A failed address lookup (EPMD) is ``unresolved``; that
    one is decided by the caller, which knows the lookup failed.
    """
    if isinstance(error, HandshakeError):
        return "not_allowed" if error.status is Status.NOT_ALLOWED else error.code
    if isinstance(error, TlsError):
        return "tls"
    if isinstance(error, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(error, ConnectionError):
        return "closed"
    if isinstance(error, OSError):
        return "socket_error"
    return "other"


class _Unresolved(Exception):
    """The resolver could not tell where a peer listens (wraps its error)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error) or type(error).__name__)
        self.error = error


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
        max_term_memory: int = DEFAULT_MAX_TERM_MEMORY,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_pending_per_source: int = DEFAULT_MAX_PENDING_PER_SOURCE,
        tls: TlsConfig | None = None,
        stall_threshold: float = DEFAULT_STALL_THRESHOLD,
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
        self.tls = tls
        # OTP's inet_tls_dist runs the handshake with 4-byte length headers.
        self._header = 2 if tls is None else 4
        self.max_term_memory = max_term_memory
        self._up: dict[Atom, DistConnection] = {}
        self._dials: dict[Atom, _Dial] = {}
        self._accepting: dict[Atom, set[DistConnection]] = {}
        self._servers: list[GuardedServer] = []
        self._admission = Admission(max_pending, max_pending_per_source)
        self._tickets: dict[DistConnection, Ticket] = {}
        self._issued_challenges = RecentChallenges()
        self._attaching: set[asyncio.Task[None]] = set()
        self._handshaking: set[DistConnection] = set()
        self._up_waiters: dict[Atom, list[asyncio.Future[bool]]] = {}
        self._refusals = RateLimiter(interval=60.0)
        self._closing = False
        self.stats = ConnectionStats()
        if not stall_threshold > 0:
            raise ValueError(f"stall_threshold must be > 0 seconds, got {stall_threshold!r}")
        self.stall_threshold = stall_threshold
        self.watchdog: LoopWatchdog | None = None
        with contextlib.suppress(RuntimeError):  # no running loop yet: listen/connect attach
            self._watch()

    # -- public API ---------------------------------------------------------------------------

    def _watch(self) -> None:
        """Attach to the running loop's watchdog (lag warnings, ticks while the loop stalls)."""
        if self.watchdog is None and not self._closing:
            self.watchdog = LoopWatchdog.attach(self, self.stall_threshold)

    async def listen(self, host: str, port: int = 0) -> int:
        """Accept peers on ``host:port`` (0: any free port); returns the bound port.

        Raises the soft descriptor limit to the hard one first (see `beamlink.listener`)."""
        self._watch()
        raise_fd_limit()
        server = GuardedServer(
            listening_socket(host, port), self._accepted, self._admission, what="distribution"
        )
        server.start()
        self._servers.append(server)
        return server.port

    async def connect(self, peer: str) -> bool:
        """Connect to `peer` unless connected; True when a connection to it is up."""
        name = Atom(peer)
        if name == self.local_name or name in self._up:
            return True
        if self._closing:
            return False
        self._watch()
        dial = self._dials.get(name)
        if dial is None:
            # Dial even when an incoming attempt claims this name: the claim is unproven.
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

    def connections(self) -> list[DistConnection]:
        """The connections that are up (hidden ones included)."""
        return list(self._up.values())

    def peer_info(self, peer: str) -> PeerInfo | None:
        """What was agreed with a connected peer."""
        conn = self._up.get(Atom(peer))
        return None if conn is None else conn.info

    async def close(self) -> None:
        """Stop listening and close every connection (nodedown with reason `shutdown`)."""
        self._closing = True
        if self.watchdog is not None:
            self.watchdog.detach(self)
            self.watchdog = None
        for server in self._servers:
            await server.close()
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
        self._servers.clear()

    # -- dialling -------------------------------------------------------------------------------

    def _new_connection(
        self, handshake: Initiator | Acceptor, tls: TlsSession | None
    ) -> DistConnection:
        conn = DistConnection(
            self,
            handshake,
            net_ticktime=self.net_ticktime,
            handshake_timeout=self.handshake_timeout,
            max_frame_size=self.max_frame_size,
            max_term_memory=self.max_term_memory,
            totals=self.stats.traffic,
            tls=tls,
        )
        self._handshaking.add(conn)
        return conn

    def _accepted(self, sock: socket.socket, source: str, ticket: Ticket) -> None:
        self.stats.attempts[INCOMING] += 1
        conn = self._new_connection(
            Acceptor(
                self.local_name,
                self.cookie,
                flags=self.flags,
                creation=self.creation,
                required_flags=self.required_flags,
                issued_challenges=self._issued_challenges,
                header=self._header,
            ),
            None if self.tls is None else self.tls.server_session(),
        )
        self._tickets[conn] = ticket
        ticket.on_evict = lambda: conn.abort(DownReason(SHUTDOWN, "evicted: too many pending"))
        loop = asyncio.get_running_loop()
        attach = loop.create_task(self._attach(loop, conn, sock))
        self._attaching.add(attach)
        attach.add_done_callback(self._attaching.discard)

    async def _attach(
        self, loop: asyncio.AbstractEventLoop, conn: DistConnection, sock: socket.socket
    ) -> None:
        try:
            await loop.connect_accepted_socket(lambda: conn, sock)
        except OSError as exc:
            sock.close()
            conn.abort(DownReason(SHUTDOWN, f"cannot attach the socket: {exc}"))

    def _release(self, conn: DistConnection) -> None:
        ticket = self._tickets.pop(conn, None)
        if ticket is not None:
            ticket.release()

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
        self.stats.attempts[OUTGOING] += 1
        try:
            try:
                host, port = await asyncio.wait_for(self.resolver(peer), self.handshake_timeout)
            except Exception as exc:
                raise _Unresolved(exc) from exc
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
                    issued_challenges=self._issued_challenges,
                    header=self._header,
                ),
                None if self.tls is None else self.tls.client_session(_host_of(peer)),
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
            if peer in self._accepting:
                # An incoming attempt claims this name; it may yet prove the cookie.
                dial.superseded = True
                return await self._wait_up(peer)
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
        """The answer to a claimed name. Nothing here ends or blocks another attempt: the claim
        is unproven until the digest is verified (`handshake_done`)."""
        name = Atom(peer.name)
        if self._closing:
            return Status.NOT_ALLOWED
        if self.allow is not None and not self.allow(name):
            self._count_failure(INCOMING, "not_allowed")
            self._refusals.log(
                log,
                logging.WARNING,
                (INCOMING, _source(conn), "not_allowed"),
                "refused connection from %s (%s): not in the allowed nodes",
                name,
                _where(conn),
            )
            return Status.NOT_ALLOWED
        if name in self._up:
            status = Status.ALIVE
        else:
            dial = self._dials.get(name)
            if dial is not None and not dial.superseded and self.local_name > name:
                return Status.NOK
            status = Status.OK if dial is None or dial.superseded else Status.OK_SIMULTANEOUS
        self._accepting.setdefault(name, set()).add(conn)
        return status

    def answer_alive(self, conn: DistConnection) -> bool:
        return True

    def _forget_accepting(self, peer: Atom, conn: DistConnection) -> bool:
        """Drop `conn` from the pending attempts of `peer`; True if it was one."""
        pending = self._accepting.get(peer)
        if pending is None or conn not in pending:
            return False
        pending.discard(conn)
        if not pending:
            del self._accepting[peer]
        return True

    def handshake_done(self, conn: DistConnection, info: PeerInfo) -> bool:
        self._handshaking.discard(conn)
        self._release(conn)
        peer = info.name
        self._forget_accepting(peer, conn)
        dial = self._dials.get(peer)
        if self._closing or (conn.initiated and (dial is None or dial.superseded)):
            conn.close(DownReason(SHUTDOWN if self._closing else REPLACED))
            return False
        if not conn.initiated and dial is not None and not dial.superseded:
            # The incoming attempt proved the cookie first: it wins over our pending dial.
            dial.superseded = True
            if dial.conn is not None:
                dial.conn.abort(DownReason(REPLACED, "lost a simultaneous connect"))
        old = self._up.get(peer)
        if old is not None:
            old.close(DownReason(REPLACED, "the peer reconnected"))
        self._up[peer] = conn
        self.stats.nodeups[info.hidden] += 1
        log.log(
            logging.DEBUG if info.hidden else logging.INFO,
            "nodeup %s (%s, %s)",
            peer,
            "hidden" if info.hidden else "visible",
            "dialled" if info.initiated else "accepted",
        )
        self.handler.on_nodeup(peer, info)
        if dial is not None and not dial.result.done():
            dial.result.set_result(True)
        self._settle_waiters(peer, True)
        return True

    def handshake_failed(self, conn: DistConnection, error: Exception) -> None:
        self._handshaking.discard(conn)
        self._release(conn)
        peer = conn.peer
        if peer is not None and self._forget_accepting(peer, conn) and peer not in self._accepting:
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
        nodedowns = self.stats.nodedowns
        nodedowns[reason.kind] = nodedowns.get(reason.kind, 0) + 1
        hidden = conn.info is not None and conn.info.hidden
        # A peer breaking the protocol is worth a warning even when hidden; it had to pass the
        # cookie check first, so these lines cannot come faster than handshakes.
        level = logging.DEBUG if hidden else logging.INFO
        if reason.kind == PROTOCOL_ERROR:
            level = logging.WARNING
        log.log(level, "nodedown %s: %s", peer, reason)
        self.handler.on_nodedown(peer, reason)

    def deliver(self, peer: Atom, frames: list[tuple[tuple[Any, ...], Any]]) -> None:
        on_messages = getattr(self.handler, "on_messages", None)
        if on_messages is not None:  # the handler takes a read's messages in one call
            on_messages(peer, frames)
            return
        on_message = self.handler.on_message
        for control, message in frames:
            try:
                on_message(peer, control, message)
            except Exception:
                log.exception("handler failed on a message from %s: %r", peer, control)

    def _count_failure(self, direction: str, reason: str) -> None:
        failures = self.stats.handshake_failures
        key = (direction, reason)
        failures[key] = failures.get(key, 0) + 1

    def _log_failure(
        self, peer: Atom | None, conn: DistConnection | None, error: Exception, *, outgoing: bool
    ) -> None:
        """Count and log (rate-limited) a failed attempt; refusals we chose (lost races) and
        peers hanging up on an incoming handshake (withdrawn attempts, port probes) are not
        failures."""
        if isinstance(error, _Unresolved):
            code, error = "unresolved", error.error
        else:
            code = failure_reason(error)
        if self._closing or (code == "refused" and not outgoing):
            return
        if not outgoing and isinstance(error, ConnectionError):
            log.debug("incoming handshake from %s dropped by the peer: %s", peer, error)
            return
        self._count_failure(OUTGOING if outgoing else INCOMING, code)
        who = peer or "unknown node"
        address = f" ({_where(conn)})" if conn is not None and conn.peer_address else ""
        if outgoing:
            self._refusals.log(
                log,
                logging.WARNING,
                (OUTGOING, who, code),
                "connection to %s%s failed: %s",
                who,
                address,
                _explain(error),
            )
        else:
            # Keyed on the source address: a new claimed name must not buy a new log line.
            self._refusals.log(
                log,
                logging.WARNING,
                (INCOMING, _source(conn), code),
                "refused connection from %s%s: %s",
                who,
                address,
                _explain(error),
            )


def _source(conn: DistConnection | None) -> str:
    where = conn.peer_address if conn is not None else None
    return str(where[0]) if where else "unknown"


def _where(conn: DistConnection | None) -> str:
    where = conn.peer_address if conn is not None else None
    return f"{where[0]}:{where[1]}" if where else "unknown address"


def _explain(error: Exception) -> str:
    if isinstance(error, HandshakeError):
        return error.reason
    return str(error) or type(error).__name__


def _host_of(peer: Atom) -> str:
    """The host part of a node name (what OTP checks the server certificate against)."""
    return str(peer).partition("@")[2]
