"""Hostile peers after a real handshake, against a live node, while honest peers keep talking.

A beamlink node (``target``) exchanges numbered messages both ways with a real ``erl`` node and
with a second beamlink node for the whole episode. Meanwhile raw-socket peers that passed the
cookie check (`HostilePeer`) send it garbage frames, malformed messages, an oversized length
prefix, unknown and malformed control messages, compressed bombs, deep nesting, atom-cache
headers we never negotiated, a truncated frame and a slowloris trickle. Each is dropped, or its
message rejected, with a specific log line; peak memory stays bounded; the honest streams lose,
duplicate or reorder nothing and never see a nodedown.
"""

from __future__ import annotations

import asyncio
import logging
import re
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from beamlink.distribution import flags as dflags
from beamlink.distribution.control import LINK, MONITOR_P, SEND, SPAWN_REQUEST
from beamlink.distribution.frames import FrameReader, FrameWriter
from beamlink.etf import Atom, Pid, encode
from beamlink.node import Node
from beamlink.node.runtime import Process
from tests.robustness.hostile import FRAME_LENGTH, HostilePeer
from tests.support.erlang import ErlPeer, runtime
from tests.support.fixtures import PeerFactory

pytestmark = pytest.mark.timeout(120)

COOKIE = "robustness-cookie"
TICKTIME = 4.0
HANDSHAKE_TIMEOUT = 3.0
TARGET = "target@127.0.0.1"
PYPEER = "pypeer@127.0.0.1"
ERLPEER = "erlpeer@127.0.0.1"
HEADER = bytes([131, 68, 0])  # normal distribution header, no atom-cache refs
MEMORY_HEADROOM = 96 * 1024 * 1024


def memory(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak) of this process, in bytes."""
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    assert match is not None
    return int(match.group(1)) * 1024


def reset_peak_memory() -> None:
    """Start VmHWM afresh (Linux: ``5`` in clear_refs), so earlier tests' peaks do not count."""
    Path("/proc/self/clear_refs").write_text("5")


def body(term: Any) -> bytes:
    """A term without its leading 131, as it follows a distribution header."""
    return encode(term)[1:]


def compressed_bomb(declared: int, inflated: int) -> bytes:
    """A COMPRESSED term (tag 80) claiming ``declared`` bytes whose zlib data inflates to
    ``inflated`` bytes of a binary, built in chunks (never held inflated here)."""
    packer = zlib.compressobj(9)
    parts = [packer.compress(b"m" + struct.pack(">I", inflated - 5))]
    chunk = bytes(1 << 20)
    left = inflated - 5
    while left > 0:
        parts.append(packer.compress(chunk[: min(left, len(chunk))]))
        left -= len(chunk)
    parts.append(packer.flush())
    return bytes([131, 80]) + struct.pack(">I", declared) + b"".join(parts)


@dataclass
class Received:
    """Numbers received from one source, checked for gaps, duplicates and order."""

    numbers: list[int] = field(default_factory=list)

    def check(self, sent: int, who: str) -> None:
        assert self.numbers == list(range(1, sent + 1)), (
            f"{who}: sent 1..{sent}, received {len(self.numbers)} "
            f"(first anomaly at {next((i for i, n in enumerate(self.numbers, 1) if n != i), None)})"
        )


@dataclass
class Episode:
    target: Node
    pypeer: Node
    erl: ErlPeer
    from_erl: Received = field(default_factory=Received)
    from_pypeer: Received = field(default_factory=Received)
    at_pypeer: Received = field(default_factory=Received)
    sent: dict[str, int] = field(default_factory=dict)
    nodedowns: list[tuple[str, str]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def _sink(proc: Process, episode: Episode) -> None:
    """On the target: numbered messages from erl and from pypeer."""
    while True:
        source, number = await proc.receive()
        if source == Atom("erl"):
            episode.from_erl.numbers.append(number)
        else:
            episode.from_pypeer.numbers.append(number)


async def _pysink(proc: Process, episode: Episode) -> None:
    while True:
        _, number = await proc.receive()
        episode.at_pypeer.numbers.append(number)


async def _stream(episode: Episode, key: str, send: Callable[[int], None]) -> None:
    """Send 1, 2, 3... every 2 ms until the episode stops; records how many went out."""
    number = 0
    while not episode.stop.is_set():
        number += 1
        send(number)
        episode.sent[key] = number
        await asyncio.sleep(0.002)


ERL_SETUP = (
    "Counter = spawn(fun() -> L = fun Loop(Next, Bad) -> receive "
    "{py, N} when N =:= Next -> Loop(Next + 1, Bad); "
    "{py, N} -> Loop(N + 1, Bad + 1); "
    "{get, From} -> From ! {count, Next - 1, Bad}, Loop(Next, Bad) end end, L(1, 0) end), "
    "register(counter, Counter), "
    "Sender = spawn(fun() -> L = fun Loop(N) -> receive {stop, From} -> From ! {sent, N - 1} "
    f"after 2 -> {{sink, '{TARGET}'}} ! {{erl, N}}, Loop(N + 1) end end, L(1) end), ok"
)


@pytest.fixture
async def episode(peers: PeerFactory) -> AsyncIterator[Episode]:
    rt = runtime("otp25")
    target = await Node.start(
        TARGET, COOKIE, net_ticktime=TICKTIME, handshake_timeout=HANDSHAKE_TIMEOUT
    )
    pypeer = await Node.start(PYPEER, COOKIE, net_ticktime=TICKTIME)
    ep: Episode | None = None
    try:
        erl = await peers.astart(
            rt, ERLPEER, COOKIE, extra_args=("-kernel", "net_ticktime", str(int(TICKTIME)))
        )
        ep = Episode(target, pypeer, erl)
        target.spawn(_sink, ep, name="sink")
        pypeer.spawn(_pysink, ep, name="pysink")
        assert await target.connect(PYPEER)
        assert await erl.aeval(f"net_kernel:connect_node('{TARGET}')") == "true"
        target.monitor_nodes(lambda event: ep.nodedowns.append((event.kind, str(event.node))))
        yield ep
    finally:
        if ep is not None:
            ep.stop.set()  # streams still running after a failure end here
            await asyncio.sleep(0.05)
        await pypeer.stop()
        await target.stop()


Attack = Callable[[HostilePeer], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    """One attack: what is sent, whether the node drops the connection, the log line it writes."""

    name: str
    attack: Attack
    dropped: bool
    log: str
    flags: int | None = None


def _cases(sink: Pid) -> list[Case]:
    send_ctl = body((SEND, Atom(""), sink))
    no_fragments = dflags.advertised_flags(hidden=True) & ~dflags.FRAGMENTS
    pass_through_ctl = b"p" + encode((SEND, Atom(""), sink))

    async def garbage(peer: HostilePeer) -> None:
        await peer.send_frame(b"\xff" + bytes(range(200)))

    async def malformed_message(peer: HostilePeer) -> None:
        # LIST_EXT declaring five elements, then one byte.
        await peer.send_frame(HEADER + send_ctl + b"\x6c\x00\x00\x00\x05\x61")

    async def oversized(peer: HostilePeer) -> None:
        await peer.send(FRAME_LENGTH.pack(2**31) + b"x" * 64)

    async def unknown_op(peer: HostilePeer) -> None:
        await peer.send_frame(HEADER + body((99, Atom("what"), 1)))

    async def bad_arity(peer: HostilePeer) -> None:
        wrong = [(LINK, 5), (SEND, b"x"), (MONITOR_P, 1, 2, 3), (SPAWN_REQUEST, [], {})]
        frames = [FRAME_LENGTH.pack(len(HEADER) + len(body(c))) + HEADER + body(c) for c in wrong]
        await peer.send(b"".join(frames) * 250)

    async def bomb_declared(peer: HostilePeer) -> None:
        await peer.send_frame(pass_through_ctl + compressed_bomb(1 << 30, 1 << 28))

    async def bomb_lying(peer: HostilePeer) -> None:
        await peer.send_frame(pass_through_ctl + compressed_bomb(1000, 1 << 28))

    async def bomb_in_header(peer: HostilePeer) -> None:
        await peer.send_frame(HEADER + send_ctl + compressed_bomb(1000, 1 << 20)[1:])

    async def deep(peer: HostilePeer) -> None:
        depth = 200_000
        await peer.send_frame(HEADER + send_ctl + b"\x6c\x00\x00\x00\x01" * depth + b"\x6a" * (depth + 1))

    async def atom_cache(peer: HostilePeer) -> None:
        await peer.send_frame(bytes([131, 68, 2]) + bytes(40))

    async def truncated_then_close(peer: HostilePeer) -> None:
        await peer.send(FRAME_LENGTH.pack(1000) + HEADER + send_ctl)
        await peer.close()

    return [
        Case("garbage frame", garbage, True, r"protocol_error: unknown frame kind 255"),
        Case("malformed message", malformed_message, True, r"protocol_error: undecodable term: LIST_EXT"),
        Case("length prefix 2^31", oversized, True, r"frame of 2147483648 bytes exceeds the limit"),
        Case("unknown control op", unknown_op, False, r"ignored control message \(99,"),
        Case("wrong arity and types x1000", bad_arity, False, r"malformed control message"),
        Case("compressed bomb (declared 1 GiB)", bomb_declared, True,
             r"declares 1073741824 bytes uncompressed, above max_size", no_fragments),
        Case("compressed bomb (lying size)", bomb_lying, True,
             r"inflates to more than the declared 1000 bytes", no_fragments),
        Case("compressed term inside a header frame", bomb_in_header, True,
             r"compressed term is only allowed directly after the version byte"),
        Case("nesting 200000 deep", deep, True, r"nesting exceeds max_depth"),
        Case("atom-cache refs not negotiated", atom_cache, True,
             r"peer used 2 atom cache refs, but DIST_HDR_ATOM_CACHE was not negotiated"),
        Case("truncated frame, then close", truncated_then_close, True,
             r"closed: peer closed the connection"),
    ]


def _lines(caplog: pytest.LogCaptureFixture, who: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if who in r.getMessage()]


async def _slowloris(ep: Episode, caplog: pytest.LogCaptureFixture) -> None:
    """1 byte/s of a frame announced as 1 MB: kept while bytes trickle in (like OTP, any byte
    counts as life), costing only what was sent; dropped by the tick check once it stops."""
    who = "slowloris@127.0.0.1"
    peer = await HostilePeer.connect(TARGET, ep.target.port, COOKIE, name=who)
    await peer.send(FRAME_LENGTH.pack(1 << 20))
    for _ in range(int(TICKTIME * 1.5)):
        await asyncio.sleep(1.0)
        await peer.send(b"x")
        assert Atom(who) in ep.target.nodes(hidden=True), "a trickling peer is alive"
    silent_since = time.monotonic()
    assert await peer.wait_closed_by_node(TICKTIME * 1.25 + 3)
    assert time.monotonic() - silent_since >= TICKTIME * 0.75
    assert any("tick_timeout" in r.getMessage() for r in _lines(caplog, who))
    await peer.close()


async def _slow_handshake(ep: Episode, caplog: pytest.LogCaptureFixture) -> None:
    """1 byte/s during the handshake: dropped at the handshake timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", ep.target.port)
    hung_up = asyncio.create_task(reader.read())
    started = time.monotonic()
    try:
        for byte in b"\x00\x20N" + bytes(30):
            if hung_up.done():
                break
            writer.write(bytes([byte]))
            await asyncio.wait([hung_up], timeout=1.0)
        assert hung_up.done(), "a handshake trickling 1 byte/s is still open"
        # Generous (a loaded machine), yet far below the 33 s the trickle would take.
        assert time.monotonic() - started < HANDSHAKE_TIMEOUT + 10
    finally:
        writer.close()
        hung_up.cancel()
    assert any(
        f"handshake not done within {HANDSHAKE_TIMEOUT}s" in r.getMessage() for r in caplog.records
    )


@pytest.mark.interop
async def test_hostile_peers_are_dropped_and_honest_peers_lose_nothing(
    episode: Episode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="beamlink")
    ep = episode
    sink = ep.target.whereis("sink")
    assert sink is not None
    await ep.erl.aeval(ERL_SETUP)
    streams = [
        asyncio.create_task(
            _stream(ep, "to_erl", lambda n: ep.target.send(("counter", ERLPEER), (Atom("py"), n)))
        ),
        asyncio.create_task(
            _stream(ep, "to_pypeer", lambda n: ep.target.send(("pysink", PYPEER), (Atom("t"), n)))
        ),
        asyncio.create_task(
            _stream(
                ep, "from_pypeer", lambda n: ep.pypeer.send(("sink", TARGET), (Atom("py"), n))
            )
        ),
    ]
    reset_peak_memory()
    memory_before = memory("VmRSS")
    slow = [asyncio.create_task(_slowloris(ep, caplog)), asyncio.create_task(_slow_handshake(ep, caplog))]

    for index, case in enumerate(_cases(sink)):
        who = f"evil{index}@127.0.0.1"
        peer = await HostilePeer.connect(TARGET, ep.target.port, COOKIE, name=who, flags=case.flags)
        await case.attack(peer)
        if case.dropped:
            assert await peer.wait_closed_by_node(5.0), case.name
            await asyncio.sleep(0.05)
            assert Atom(who) not in ep.target.nodes(hidden=True), case.name
        else:
            await asyncio.sleep(0.3)
            assert not peer.closed_by_node, f"{case.name}: rejected messages, kept the connection"
            assert Atom(who) in ep.target.nodes(hidden=True), case.name
        lines = [r for r in _lines(caplog, who) if re.search(case.log, r.getMessage())]
        assert lines, f"{case.name}: no log line matching {case.log!r}"
        if case.dropped and "closed" not in case.log:
            assert lines[0].levelno == logging.WARNING, case.name
        if case.name.startswith("wrong arity"):
            assert len(lines) == 1, "malformed control messages are rate-limited per peer"
        await peer.close()

    await asyncio.gather(*slow)
    growth = memory("VmHWM") - memory_before
    logging.getLogger(__name__).info("peak memory grew by %.1f MiB", growth / 2**20)
    assert growth < MEMORY_HEADROOM, "peak memory grew too much"

    ep.stop.set()
    await asyncio.gather(*streams)
    erl_sent = int(await ep.erl.aeval("Sender ! {stop, self()}, receive {sent, X} -> X after 5000 -> timeout end"))

    async def settled() -> None:
        while not (
            len(ep.from_erl.numbers) >= erl_sent
            and len(ep.from_pypeer.numbers) >= ep.sent["from_pypeer"]
            and len(ep.at_pypeer.numbers) >= ep.sent["to_pypeer"]
        ):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(settled(), 10)
    await asyncio.sleep(0.2)  # anything extra (a duplicate) would show now
    ep.from_erl.check(erl_sent, "erl -> target")
    ep.from_pypeer.check(ep.sent["from_pypeer"], "pypeer -> target")
    ep.at_pypeer.check(ep.sent["to_pypeer"], "target -> pypeer")
    expected = f"{{{ep.sent['to_erl']},0}}"
    for _ in range(50):  # the last numbers may still be on their way
        count = await ep.erl.aeval(
            "counter ! {get, self()}, receive {count, C, B} -> {C, B} after 5000 -> timeout end"
        )
        if count == expected:
            break
        await asyncio.sleep(0.1)
    assert count == expected, "target -> erl: every number once, in order"
    assert erl_sent > 100 and ep.sent["to_erl"] > 100
    logging.getLogger(__name__).info(
        "erl sent %d, pypeer sent %d, target sent %d to erl and %d to pypeer",
        erl_sent, ep.sent["from_pypeer"], ep.sent["to_erl"], ep.sent["to_pypeer"],
    )
    assert ("nodedown", ERLPEER) not in ep.nodedowns
    assert ("nodedown", PYPEER) not in ep.nodedowns
    assert sorted(map(str, ep.target.nodes())) == [ERLPEER, PYPEER]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no ERROR lines"


def test_a_big_frame_in_many_reads_is_joined_once() -> None:
    """Reassembly is linear: a 16 MiB frame fed in 256-byte reads (65536 reads) completes at
    once; joining the tail on every read would copy about 550 GB and hit the deadline."""
    size = 16 << 20
    writer = FrameWriter(dflags.advertised_flags(hidden=False))
    frame = writer.frame((SEND, Atom(""), Pid(Atom("a@b"), 1, 0, 1)), bytes(size))
    reader = FrameReader()
    chunk = 256
    out = []
    deadline = time.monotonic() + 60
    for offset in range(0, len(frame), chunk):
        out += reader.feed(frame[offset : offset + chunk])
        assert time.monotonic() < deadline, "reassembly is not linear"
        if offset + chunk < len(frame):
            assert reader.buffered == offset + chunk
    assert len(out) == 1 and out[0][1] == bytes(size)
    assert reader.buffered == 0
