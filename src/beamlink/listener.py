"""Guarded TCP listening for the distribution listener and the embedded EPMD.

Before a peer proves anything, it may only cost us a bounded amount: `Admission` caps the
connections still in their first exchange (handshake, EPMD request) in total and per source
address; when the total is reached, the oldest pending connection of the source holding the
most is evicted to make room, so spreading sockets over many loopback addresses cannot lock a
newcomer out either. `GuardedServer` is an accept loop (instead of ``loop.create_server``) that
admits each socket before any protocol sees it, stops accepting for a moment when the accepted
descriptor is close to the soft ``RLIMIT_NOFILE`` (the next one would fail), and reports
``EMFILE``/``ENFILE`` as one rate-limited warning line, never a traceback.
`raise_fd_limit` raises the soft descriptor limit to the hard one (called when a node listens).

It imports nothing from beamlink but `logs`, so any layer may use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable

from beamlink.logs import RateLimiter

try:
    import resource
except ImportError:  # pragma: no cover - not on POSIX
    resource = None  # type: ignore[assignment]

__all__ = ["Admission", "GuardedServer", "Ticket", "raise_fd_limit"]

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 256
DEFAULT_MAX_PENDING_PER_SOURCE = 16
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_PAUSE = 0.2  # seconds without accepting when out of descriptors
_complaints = RateLimiter(interval=30.0)


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (best effort); returns the soft limit."""
    if resource is None:
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def _fd_limit() -> int:
    if resource is None:
        return 1 << 16
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class Ticket:
    """One admitted connection; `release` when it has proved itself or is gone."""

    __slots__ = ("_admission", "on_evict", "released", "source")

    def __init__(self, admission: Admission, source: str) -> None:
        self._admission = admission
        self.source = source
        self.released = False
        self.on_evict: Callable[[], None] | None = None

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._admission._release(self)


class Admission:
    """Counts pending connections per source address and in total."""

    def __init__(
        self,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_per_source: int = DEFAULT_MAX_PENDING_PER_SOURCE,
    ) -> None:
        if not 0 < max_per_source <= max_pending:
            raise ValueError("need 0 < max_per_source <= max_pending")
        self.max_pending = max_pending
        self.max_per_source = max_per_source
        self.total = 0
        self.refused = 0
        self.evicted = 0
        self._by_source: dict[str, list[Ticket]] = {}

    def admit(self, source: str) -> Ticket | None:
        """A ticket for a new connection from `source`, or None (refused: too many from it)."""
        held = self._by_source.get(source)
        if held is not None and len(held) >= self.max_per_source:
            self.refused += 1
            return None
        if self.total >= self.max_pending:
            self._evict_one()
        ticket = Ticket(self, source)
        self._by_source.setdefault(source, []).append(ticket)
        self.total += 1
        return ticket

    def pending(self, source: str) -> int:
        return len(self._by_source.get(source, ()))

    def _evict_one(self) -> None:
        victims = max(self._by_source.values(), key=len)
        ticket = victims[0]
        ticket.release()
        self.evicted += 1
        if ticket.on_evict is not None:
            ticket.on_evict()

    def _release(self, ticket: Ticket) -> None:
        held = self._by_source.get(ticket.source)
        if held is None or ticket not in held:
            return
        held.remove(ticket)
        self.total -= 1
        if not held:
            del self._by_source[ticket.source]


Accept = Callable[[socket.socket, str, Ticket], None]


class GuardedServer:
    """Accepts on `sock` and hands admitted sockets to ``on_accept(sock, source, ticket)``."""

    def __init__(self, sock: socket.socket, on_accept: Accept, admission: Admission, *, what: str) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.admission = admission
        self.what = what
        self._on_accept = on_accept
        limit = _fd_limit()
        self._fd_ceiling = limit - max(16, min(256, limit // 20))
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._serve(), name=f"beamlink-accept-{self.what}"
        )

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.sock.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, address = await loop.sock_accept(self.sock)
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS:
                    self._complain("resources", "cannot accept: %s; pausing", exc.strerror)
                    await asyncio.sleep(_PAUSE)
                    continue
                if self.sock.fileno() < 0:
                    return
                self._complain("accept", "accept failed: %s", exc)
                continue
            if conn.fileno() >= self._fd_ceiling:
                conn.close()
                self._complain("resources", "near the descriptor limit; not accepting for now")
                await asyncio.sleep(_PAUSE)
                continue
            source = str(address[0]) if isinstance(address, tuple) else "local"
            ticket = self.admission.admit(source)
            if ticket is None:
                conn.close()
                self._complain(
                    ("busy", source),
                    "refusing a connection from %s: %d pending already from that address",
                    source,
                    self.admission.max_per_source,
                )
                continue
            conn.setblocking(False)
            try:
                self._on_accept(conn, source, ticket)
            except Exception:
                ticket.release()
                conn.close()
                log.exception("%s: handling an accepted connection failed", self.what)

    def _complain(self, key: object, msg: str, *args: object) -> None:
        _complaints.log(log, logging.WARNING, (self.what, key), f"{self.what}: {msg}", *args)


def listening_socket(host: str | None, port: int) -> socket.socket:
    """A bound, listening TCP socket on ``host:port`` (None or "": every IPv4 interface)."""
    infos = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host in (None, "", "::"):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock
