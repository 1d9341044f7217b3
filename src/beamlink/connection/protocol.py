"""One distribution socket as an asyncio protocol: the handshake, then frames and ticks.

This file only moves bytes and runs timers; protocol decisions live in `beamlink.distribution`
(handshake, frames) and in the owner (`ConnectionManager`): who wins a simultaneous connect,
what happens on nodeup/nodedown.

Ticks (dist_util:send_tick/2, OTP semantics): every ``net_ticktime / 4`` seconds, send a tick
(empty frame) if nothing was written since the previous check; if nothing at all was read for 4
checks in a row, the peer is down (`TICK_TIMEOUT`). A silent peer is therefore detected between
``net_ticktime`` and ``1.25 * net_ticktime`` after its last bytes.

Writes: `send` encodes at once and queues the frame; one callback per loop iteration joins
everything queued and calls `transport.write` once.

TLS (`beamlink.connection.tls`): with a `TlsSession`, the socket speaks TLS from its first byte;
the distribution handshake starts once the TLS handshake is done (the handshake timeout covers
both), and every write (`_write`, the one primitive) seals plaintext into whole TLS records under
the connection's `threading.Lock`, which the reads' decryption also holds: another thread (the loop
watchdog's ticks) can write through the same primitive. Without TLS, a peer whose first bytes are a
TLS record is refused at once, saying so.

Ticks while the loop is stalled (`beamlink.connection.watchdog`): `tick_now` lets the watchdog
thread write a tick (sealed into a TLS record when TLS is on) straight to the socket (a dup of its
descriptor, non-blocking) under the same lock, only when asyncio's write buffer is empty: the byte
stream is then between two frames (two records). Whatever the kernel does not take is kept and
sent before anything else (by the watchdog or by the loop's next write), so the stream stays well
framed (and a sealed record is never dropped). A `_tick` check that runs late (the loop was
stalled) does not count silence: it checks again right after the next I/O pass, so bytes that
arrived during the stall are read before a peer is declared down.

Traffic is counted per read and per write (never per message): bytes (handshake and ticks
included) and frames (distribution messages, ticks excluded), in the connection's own
`TrafficCounters` and in the owner's node-wide ones.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from typing import Any, Protocol, cast

from beamlink.connection.events import (
    CLOSED,
    PROTOCOL_ERROR,
    TICK_TIMEOUT,
    DownReason,
    PeerInfo,
)
from beamlink.connection.tls import TlsError, TlsSession, looks_like_tls
from beamlink.distribution.control import NO_MESSAGE
from beamlink.distribution.frames import BIG_BINARY, TICK, FrameError, FrameReader, FrameWriter
from beamlink.distribution.handshake import (
    Acceptor,
    AliveQuery,
    HandshakeComplete,
    HandshakeError,
    Initiator,
    PeerName,
    Status,
)
from beamlink.etf import Atom

log = logging.getLogger(__name__)

TICKS_PER_TICKTIME = 4
WRITE_CHUNK = 1 << 20
"""At most this many bytes of queued frames are handed to the transport at once (see `_flush`)."""


class TrafficCounters:
    """Bytes and frames received and sent; plain integers that only grow."""

    __slots__ = ("bytes_in", "bytes_out", "frames_in", "frames_out")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
        self.frames_in = 0
        self.frames_out = 0


class ConnectionOwner(Protocol):
    """What a `DistConnection` asks of the manager that owns it."""

    def decide(self, conn: DistConnection, peer: PeerName) -> Status:
        """Acceptor: the answer to a peer's name (simultaneous connects, already connected)."""

    def answer_alive(self, conn: DistConnection) -> bool:
        """Initiator: the peer believes we are still connected; continue this attempt?"""

    def handshake_done(self, conn: DistConnection, info: PeerInfo) -> bool:
        """The handshake succeeded; False to drop this connection (the manager closes it)."""

    def handshake_failed(self, conn: DistConnection, error: Exception) -> None:
        """The handshake failed (refused, bad cookie, timeout, closed socket...)."""

    def connection_down(self, conn: DistConnection, reason: DownReason) -> None:
        """A connection that was up went down."""

    def deliver(self, peer: Atom, frames: list[tuple[tuple[Any, ...], Any]]) -> None:
        """The ``(control, message)`` pairs of one read from a connected peer, in order."""


class DistConnection(asyncio.Protocol):
    """A socket in the handshake and then in the connected state."""

    def __init__(
        self,
        owner: ConnectionOwner,
        handshake: Initiator | Acceptor,
        *,
        net_ticktime: float,
        handshake_timeout: float,
        max_frame_size: int,
        max_term_memory: int,
        totals: TrafficCounters | None = None,
        tls: TlsSession | None = None,
    ) -> None:
        self.owner = owner
        self.tls = tls
        self._lock = threading.Lock()
        self.traffic = TrafficCounters()
        self._totals = TrafficCounters() if totals is None else totals
        self.handshake: Initiator | Acceptor | None = handshake
        self.initiated = isinstance(handshake, Initiator)
        self.peer: Atom | None = (
            Atom(handshake.peer_name) if isinstance(handshake, Initiator) else None
        )
        self.info: PeerInfo | None = None
        self.net_ticktime = net_ticktime
        self.handshake_timeout = handshake_timeout
        self.max_frame_size = max_frame_size
        self.max_term_memory = max_term_memory
        self.transport: asyncio.Transport | None = None
        self.peer_address: tuple[Any, ...] | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._reader: FrameReader | None = None
        self._writer: FrameWriter | None = None
        # Queued frames: bytes, or (head, binary) for a message that is one big binary (see
        # `send`); `_big_out` counts the latter.
        self._out: list[bytes | tuple[bytes, bytes]] = []
        self._big_out = 0
        self._paused = False  # the transport's buffer is over its high-water mark
        self._flush_scheduled = False
        # A message frame was written at once in this loop iteration (see `send`), or a read's
        # delivery runs: then `_eager_wanted` says a message frame was queued by it, and the
        # frames leave together when the delivery ends.
        self._eager_spent = False
        self._eager_wanted = False
        self._finished = False
        self._read_count = 0
        self._write_count = 0
        self._seen_read = 0
        self._seen_write = 0
        self._silent_checks = 0
        self._tick_due = 0.0
        # Shared with the watchdog thread (under _lock): the socket it ticks through, the part of
        # a tick the kernel did not take, and bytes it wrote that are not counted yet.
        self._lock = threading.Lock()
        self._tick_socket: socket.socket | None = None
        self._tick_rest = b""
        self._thread_bytes = 0

    @property
    def is_up(self) -> bool:
        return self.info is not None and not self._finished

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses, hence no isinstance).
        self.transport = cast(asyncio.Transport, transport)
        self.peer_address = transport.get_extra_info("peername")
        self._timer = self._loop.call_later(self.handshake_timeout, self._handshake_timed_out)
        assert self.handshake is not None
        if self.tls is None:
            self._write_handshake(self.handshake)
            return
        try:
            hello = self.tls.start()
        except TlsError as exc:
            self._fail_handshake(exc)
            return
        self._write_wire(hello)

    def data_received(self, data: bytes) -> None:
        if self._finished:
            return
        size = len(data)
        first = self.traffic.bytes_in == 0
        self.traffic.bytes_in += size
        self._totals.bytes_in += size
        if self.tls is not None:
            data = self._tls_received(self.tls, data)
            if not data:
                return
        elif first and self._reader is None and looks_like_tls(data):
            self._fail_handshake(TlsError(
                "the peer speaks TLS but this node runs plain TCP distribution: give every node "
                "the same ssl_dist_optfile (beamlink --ssl-dist-optfile FILE, Node.start(tls=...))"
            ))
            return
        reader = self._reader
        if reader is None:
            self._handshake_data(data)
        else:
            self._frames_received(reader, data)

    def _tls_received(self, tls: TlsSession, data: bytes) -> bytes:
        """Decrypt; answer what TLS wants answered; start the distribution handshake once TLS is
        up. Returns the plaintext (b"" when there is none or the connection failed)."""
        established = tls.established
        try:
            with self._lock:
                try:
                    data = tls.receive(data)
                finally:
                    self._write_wire_locked(tls.data_to_send())
        except TlsError as exc:
            if self.info is None:
                self._fail_handshake(exc)
            else:
                self.close(DownReason(PROTOCOL_ERROR, str(exc)))
            return b""
        if tls.peer_closed and self.transport is not None:
            self.transport.close()
        if not established and tls.established:
            log.debug("TLS up with %s: %s %s", self.peer_address, tls.version, tls.cipher)
            assert self.handshake is not None
            self._write_handshake(self.handshake)
        return data

    def _frames_received(self, reader: FrameReader, data: bytes) -> None:
        self._read_count += 1
        try:
            frames = reader.feed(data)
        except FrameError as exc:
            self.close(DownReason(PROTOCOL_ERROR, str(exc)))
            return
        if frames:
            count = len(frames)
            self.traffic.frames_in += count
            self._totals.frames_in += count
            assert self.peer is not None
            eager, self._eager_spent, self._eager_wanted = self._eager_spent, True, False
            try:
                self.owner.deliver(self.peer, frames)
            finally:
                self._eager_spent = eager
            if self._eager_wanted and self._out and not self._paused:
                # A message queued while delivering (a GenServer's reply made inside the
                # delivery) leaves now with the frames before it, not one loop iteration later.
                self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        detail = f"socket error: {exc}" if exc else "peer closed the connection"
        error: Exception = ConnectionError(detail)
        hs = self.handshake
        tls = self.tls
        if tls is not None and not tls.established:
            error = ConnectionError(
                f"{detail} during the TLS handshake: a plain TCP distribution node, or one that "
                "rejected our TLS hello (see its log)"
            )
        elif isinstance(hs, Initiator) and hs.state == "await_ack":
            # Erlang closes without a word when our digest is wrong.
            error = HandshakeError(
                hs.state, "bad_cookie", f"{detail} after our challenge reply: a wrong cookie?"
            )
        elif hs is not None:
            hint = " (over TLS: did it reject our certificate? see its log)" if tls else ""
            error = ConnectionError(f"{detail} during the handshake (state {hs.state}){hint}")
        self._finish(DownReason(CLOSED, detail), error)
        if not self.closed.done():
            self.closed.set_result(None)

    # -- handshake -----------------------------------------------------------------------------

    def _handshake_data(self, data: bytes) -> None:
        hs = self.handshake
        assert hs is not None
        try:
            events = hs.receive_data(data)
            for event in events:
                if isinstance(event, PeerName):
                    self.peer = Atom(event.name)
                    assert isinstance(hs, Acceptor)
                    hs.decide(self.owner.decide(self, event))
                elif isinstance(event, AliveQuery):
                    assert isinstance(hs, Initiator)
                    hs.answer_alive(self.owner.answer_alive(self))
                elif isinstance(event, HandshakeComplete):
                    self._write_handshake(hs)
                    self._handshake_complete(event, hs.trailing_data)
                    return
        except HandshakeError as exc:
            self._write_handshake(hs)
            self._fail_handshake(exc)
            return
        self._write_handshake(hs)
        if hs.state == "refused":
            self._fail_handshake(
                HandshakeError(hs.state, "refused", f"we answered {hs.peer_name} with a refusal")
            )

    def _write_handshake(self, hs: Initiator | Acceptor) -> None:
        if self.tls is not None and not self.tls.established:
            return  # sent once TLS is up
        out = hs.data_to_send()
        if out:
            self._write(out)

    def _write(self, data: bytes) -> None:
        """The one way plaintext reaches the socket: sealed into TLS records under the lock
        when TLS is on, as is otherwise."""
        tls = self.tls
        if tls is None:
            self._write_wire(data)
            return
        with self._lock:
            self._write_wire_locked(tls.seal(data))

    def _write_wire(self, data: bytes) -> None:
        with self._lock:
            self._write_wire_locked(data)

    def _write_wire_locked(self, data: bytes, *more: bytes) -> None:
        """Hand wire bytes (``data``, then each of ``more``) to the transport, after what is
        left of a watchdog tick; the caller holds `_lock`."""
        if self._thread_bytes:
            self._count_written(self._thread_bytes)
            self._thread_bytes = 0
        if self._tick_rest:
            data = self._tick_rest + data
            self._tick_rest = b""
        transport = self.transport
        if data and transport is not None:
            self._count_written(len(data))
            transport.write(data)
            self._write_count += 1
            for piece in more:
                self._count_written(len(piece))
                transport.write(piece)

    def _count_written(self, size: int) -> None:
        self.traffic.bytes_out += size
        self._totals.bytes_out += size

    def _handshake_timed_out(self) -> None:
        self._fail_handshake(TimeoutError(f"handshake not done within {self.handshake_timeout}s"))

    def _fail_handshake(self, error: Exception) -> None:
        if self._finished:
            return
        self._finished = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()
        self.owner.handshake_failed(self, error)

    def _handshake_complete(self, event: HandshakeComplete, trailing: bytes) -> None:
        self._cancel_timer()
        self.handshake = None
        self.peer = Atom(event.name)
        self.info = PeerInfo(
            name=self.peer,
            flags=event.flags,
            creation=event.creation,
            version=event.version,
            initiated=self.initiated,
        )
        reader = self._reader = FrameReader(
            max_frame_size=self.max_frame_size, max_term_memory=self.max_term_memory
        )
        self._writer = FrameWriter(event.flags)
        if not self.owner.handshake_done(self, self.info):
            return
        assert self.transport is not None
        raw = self.transport.get_extra_info("socket")
        if raw is not None:  # any loop's socket object (asyncio's, uvloop's) has a descriptor
            tick_socket = socket.socket(fileno=os.dup(raw.fileno()))
            tick_socket.setblocking(False)
            self._tick_socket = tick_socket
        self._schedule_tick(self.net_ticktime / TICKS_PER_TICKTIME)
        if trailing:
            self._frames_received(reader, trailing)

    # -- connected ------------------------------------------------------------------------------

    def send(self, control: tuple[Any, ...], message: Any = NO_MESSAGE) -> None:
        """Queue one message; it goes out with the others of this loop iteration."""
        writer = self._writer
        if writer is None or self._finished:
            raise ConnectionError("connection is not up")
        if type(message) is bytes and len(message) >= BIG_BINARY:
            # Its bytes go to the transport as they are: the socket takes them from the
            # caller's object, and only what it does not take is copied (into the transport).
            self._out.append(writer.binary_frame(control, message))
            self._big_out += 1
        else:
            self._out.append(writer.frame(control, message))
        if message is not NO_MESSAGE:
            if not self._eager_spent and not self._paused:
                # The first message of a loop iteration leaves at once, with the frames queued
                # before it (a call's MONITOR_P, the last call's DEMONITOR_P): a request or reply
                # reaches the peer one loop iteration earlier. Later frames of this iteration
                # wait for the flush below, so a burst still goes out in a few large writes.
                # (Signals alone wait for it too: e.g. an rpc's SPAWN_REPLY and the exit of
                # its process then leave in one write.)
                self._flush()
                self._eager_spent = True
            else:
                self._eager_wanted = True
        # Also after an eager write that left nothing queued: this flush ends the iteration
        # (it clears `_eager_spent`), so the next iteration's first message leaves at once too.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self, everything: bool = False) -> None:
        """Hand the queued frames to the transport; while it is paused (its buffer over the
        high-water mark) they wait here, and go out when it resumes, at most `WRITE_CHUNK`
        bytes at a time: asyncio keeps unsent bytes in one bytearray that moves its whole
        remainder on every partial send, so feeding it megabytes at once costs quadratic copying.
        ``everything``: write all of it now (closing)."""
        self._flush_scheduled = False
        self._eager_spent = False
        out = self._out
        if not out or self._finished or self.transport is None:
            out.clear()
            self._big_out = 0
            return
        if self._paused and not everything:
            return
        if self._big_out:
            self._flush_pieces(everything)
        else:
            frames = cast("list[bytes]", out)  # no (head, binary) pair among them
            if everything:
                taken = len(frames)
            else:
                taken = size = 0
                for frame in frames:
                    taken += 1
                    size += len(frame)
                    if size >= WRITE_CHUNK:
                        break
            data = b"".join(frames[:taken]) if taken > 1 else frames[0]
            if taken == len(frames):
                frames.clear()
            else:
                del frames[:taken]
            self.traffic.frames_out += taken
            self._totals.frames_out += taken
            self._write(data)
        if out and not self._paused and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush_pieces(self, everything: bool) -> None:
        """`_flush` when big binaries are queued: frames up to `WRITE_CHUNK` bytes (or all) go
        out in one locked write of pieces, the small frames and each big binary's head joined,
        each big binary on its own, uncopied."""
        out = self._out
        pieces: list[bytes] = []
        small: list[bytes] = []
        taken = size = big = 0
        for frame in out:
            taken += 1
            if isinstance(frame, bytes):
                small.append(frame)
                size += len(frame)
            else:
                head, binary = frame
                small.append(head)
                pieces.append(b"".join(small) if len(small) > 1 else head)
                pieces.append(binary)
                small = []
                size += len(head) + len(binary)
                big += 1
            if size >= WRITE_CHUNK and not everything:
                break
        if small:
            pieces.append(b"".join(small))
        del out[:taken]
        self._big_out -= big
        self.traffic.frames_out += taken
        self._totals.frames_out += taken
        tls = self.tls
        with self._lock:  # one frame's pieces are never split by a watchdog tick
            if tls is None:
                self._write_wire_locked(*pieces)
            else:
                self._write_wire_locked(tls.seal(b"".join(pieces)))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._out and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def tick_now(self) -> bool:
        """Write a tick from another thread (the watchdog, while the loop is stalled); True when
        written. Only between frames: nothing when asyncio holds unsent bytes of a frame, when the
        socket is full, or when the connection is not up."""
        with self._lock:
            sock = self._tick_socket
            transport = self.transport
            if sock is None or transport is None or transport.is_closing():
                return False
            try:
                if transport.get_write_buffer_size():
                    return False
            except RuntimeError:  # the loop is changing the buffer right now
                return False
            data = self._tick_rest
            if not data:
                data = TICK if self.tls is None else self.tls.seal(TICK)
            try:
                sent = sock.send(data)
            except OSError:  # full (EAGAIN) or broken: the loop sees errors when it runs again
                sent = 0
            # Unsent bytes go out first, later: a TLS record, once sealed, must not be lost.
            self._tick_rest = data[sent:]
            self._thread_bytes += sent
            if sent:
                self._write_count += 1
            return sent > 0 and not self._tick_rest

    def _schedule_tick(self, delay: float) -> None:
        self._tick_due = self._loop.time() + delay
        self._timer = self._loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        if self._finished:
            return
        interval = self.net_ticktime / TICKS_PER_TICKTIME
        if self._loop.time() - self._tick_due > interval / 2:
            # The loop was stalled: what the peer sent meanwhile waits in the socket, unread.
            # Timers run after the I/O callbacks of the same loop iteration, so a check scheduled
            # now runs after the next read pass.
            self._schedule_tick(0)
            return
        if self._read_count == self._seen_read:
            self._silent_checks += 1
            if self._silent_checks >= TICKS_PER_TICKTIME:
                self.close(DownReason(TICK_TIMEOUT, f"nothing received for {self.net_ticktime}s"))
                return
        else:
            self._silent_checks = 0
            self._seen_read = self._read_count
        if self._write_count == self._seen_write and not self._out and self.transport is not None:
            self._write(TICK)
        self._seen_write = self._write_count
        self._schedule_tick(interval)

    def close(self, reason: DownReason) -> None:
        """Flush what is queued, close the socket and report `reason` (once)."""
        if self._finished:
            return
        self._flush(everything=True)
        if self.tls is not None and self.transport is not None:
            with self._lock:
                self._write_wire_locked(self.tls.close_notify())
        if self.transport is not None:
            self.transport.close()
        self._finish(reason, ConnectionError(str(reason)))

    def abort(self, reason: DownReason) -> None:
        """Drop the socket at once, without flushing."""
        if self.transport is not None:
            self.transport.abort()
        self._finish(reason, ConnectionError(str(reason)))

    def _finish(self, reason: DownReason, error: Exception) -> None:
        if self._finished:
            return
        if self.info is None:
            self._fail_handshake(error)
            return
        self._finished = True
        self._cancel_timer()
        self._out.clear()
        self._big_out = 0
        with self._lock:
            if self._tick_socket is not None:
                self._tick_socket.close()
                self._tick_socket = None
        self.owner.connection_down(self, reason)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __repr__(self) -> str:
        state = "up" if self.is_up else ("closed" if self._finished else "handshake")
        return f"<DistConnection {self.peer} {state} initiated={self.initiated}>"
