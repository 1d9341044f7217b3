"""ConnectionManager between Python nodes over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from beamlink.connection import (
    CLOSED,
    DISCONNECTED,
    REPLACED,
    TICK_TIMEOUT,
    ConnectionManager,
)
from beamlink.distribution import control, flags
from beamlink.distribution.handshake import AliveQuery, HandshakeComplete, Initiator
from beamlink.etf import Atom, Pid
from tests.connection.recorder import Recorder

COOKIE = "pycookie"


class Cluster:
    """Python nodes on 127.0.0.1 that find each other through a shared port table."""

    def __init__(self) -> None:
        self.ports: dict[Atom, int] = {}
        self.managers: list[ConnectionManager] = []

    async def resolve(self, peer: Atom) -> tuple[str, int]:
        return "127.0.0.1", self.ports[peer]

    async def node(
        self, name: str, *, cookie: str = COOKIE, **kw: object
    ) -> tuple[ConnectionManager, Recorder]:
        recorder = Recorder()
        manager = ConnectionManager(
            local_name=name,
            cookie=cookie,
            creation=len(self.managers) + 1,
            handler=recorder,
            resolver=self.resolve,
            **kw,  # type: ignore[arg-type]
        )
        self.ports[Atom(name)] = await manager.listen("127.0.0.1", 0)
        self.managers.append(manager)
        return manager, recorder

    async def close(self) -> None:
        """Close every manager `node` made."""
        for manager in self.managers:
            await manager.close()


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster()
    yield c
    await c.close()


async def handshake_raw(port: int, local: str, peer: str, cookie: str = COOKIE) -> socket.socket:
    """A peer speaking the handshake with our sans-I/O Initiator over a blocking socket."""
    sock = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", port), timeout=5)
    hs = Initiator(
        local, cookie, peer_name=peer, flags=flags.advertised_flags(hidden=False), creation=9
    )
    loop = asyncio.get_running_loop()
    while not hs.complete:
        out = hs.data_to_send()
        if out:
            await loop.run_in_executor(None, sock.sendall, out)
        data = await loop.run_in_executor(None, sock.recv, 4096)
        assert data, "closed during the handshake"
        for ev in hs.receive_data(data):
            if isinstance(ev, AliveQuery):
                hs.answer_alive(True)
            else:
                assert isinstance(ev, HandshakeComplete)
    return sock


def established_on(ports: set[int]) -> int:
    """How many ESTABLISHED TCP sockets on 127.0.0.1 have one of `ports` as local port."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, _remote, state = line.split()[1:4]
        address, port = local.split(":")
        if state == "01" and address == "0100007F" and int(port, 16) in ports:
            count += 1
    return count


async def test_messages_flow_both_ways_in_order(cluster: Cluster) -> None:
    a, rec_a = await cluster.node("a@127.0.0.1")
    b, rec_b = await cluster.node("b@127.0.0.1")
    started = time.monotonic()
    assert await a.connect("b@127.0.0.1")
    logging.getLogger(__name__).info(
        "py -> py connect took %.1f ms", (time.monotonic() - started) * 1000
    )
    await rec_b.wait_for(lambda: rec_b.kinds("up"))
    pid = Pid(Atom("a@127.0.0.1"), 1, 0, 1)
    count = 5000
    for i in range(count):
        assert a.send(Atom("b@127.0.0.1"), control.send(pid), i)
    await rec_b.wait_for(lambda: len(rec_b.messages) == count)
    assert [m for _, _, m in rec_b.messages] == list(range(count))
    assert b.send(Atom("a@127.0.0.1"), control.link(pid, pid))
    await rec_a.wait_for(lambda: rec_a.messages)
    assert rec_a.messages == [(Atom("b@127.0.0.1"), control.link(pid, pid), control.NO_MESSAGE)]
    assert not a.send(Atom("nobody@127.0.0.1"), control.send(pid), 1)


@pytest.mark.parametrize("names", [("a@127.0.0.1", "z@127.0.0.1"), ("z@127.0.0.1", "a@127.0.0.1")])
async def test_simultaneous_connect_ends_with_one_connection(
    cluster: Cluster, names: tuple[str, str]
) -> None:
    for round_ in range(5):
        x, rec_x = await cluster.node(f"{round_}{names[0]}")
        y, rec_y = await cluster.node(f"{round_}{names[1]}")
        results = await asyncio.gather(x.connect(str(y.local_name)), y.connect(str(x.local_name)))
        assert results == [True, True]
        await asyncio.sleep(0.1)
        assert x.connected_nodes() == [y.local_name] and y.connected_nodes() == [x.local_name]
        assert rec_x.kinds("up") == [y.local_name] and rec_y.kinds("up") == [x.local_name]
        assert rec_x.kinds("down") == [] and rec_y.kinds("down") == []


async def test_v5_handshake_between_python_nodes(cluster: Cluster) -> None:
    a, _rec_a = await cluster.node("a@127.0.0.1", handshake_version=5)
    b, rec_b = await cluster.node("b@127.0.0.1")
    assert await a.connect("b@127.0.0.1")
    await rec_b.wait_for(lambda: rec_b.kinds("up"))
    info_a, info_b = a.peer_info("b@127.0.0.1"), b.peer_info("a@127.0.0.1")
    assert info_a is not None and info_b is not None
    assert info_a.version == info_b.version == 5
    assert info_b.creation == 1 and info_b.flags & flags.V4_NC


@pytest.mark.parametrize("side", ["dialler", "acceptor"])
async def test_disconnect_gives_nodedown_on_both_sides(cluster: Cluster, side: str) -> None:
    a, rec_a = await cluster.node("a@127.0.0.1")
    b, rec_b = await cluster.node("b@127.0.0.1")
    assert await a.connect("b@127.0.0.1")
    await rec_b.wait_for(lambda: rec_b.kinds("up"))
    closer, other = (a, b) if side == "dialler" else (b, a)
    assert await closer.disconnect(str(other.local_name))
    for rec in (rec_a, rec_b):
        await rec.wait_for(lambda rec=rec: rec.kinds("down"))
    reasons = {
        str(m.local_name): r
        for m in (a, b)
        for k, _, r in (rec_a if m is a else rec_b).events
        if k == "down"
    }
    assert reasons[str(closer.local_name)].kind == DISCONNECTED
    assert reasons[str(other.local_name)].kind == CLOSED
    assert not await closer.disconnect(str(other.local_name))


async def test_wrong_cookie_logs_one_line_and_serving_goes_on(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    a, _rec_a = await cluster.node("a@127.0.0.1")
    intruder, _ = await cluster.node("bad@127.0.0.1", cookie="wrong")
    friend, _ = await cluster.node("friend@127.0.0.1")
    with caplog.at_level(logging.WARNING, logger="beamlink.connection"):
        for _ in range(3):
            assert not await intruder.connect("a@127.0.0.1")
    refused = [
        r.message for r in caplog.records if "refused connection from bad@127.0.0.1" in r.message
    ]
    assert len(refused) == 1 and "wrong cookie" in refused[0]
    assert await friend.connect("a@127.0.0.1")
    assert a.connected_nodes() == [Atom("friend@127.0.0.1")]


@pytest.mark.parametrize(
    "junk",
    [
        b"\xff" * 64,  # oversized length
        b"\x00\x00",  # empty message
        b"\x00\x10N\x00\x00",  # truncated, then silence until the handshake timeout
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
async def test_garbage_handshake_is_dropped_and_serving_goes_on(
    cluster: Cluster, junk: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    _a, _ = await cluster.node("a@127.0.0.1", handshake_timeout=1.0)
    friend, _ = await cluster.node("friend@127.0.0.1")
    reader, writer = await asyncio.open_connection("127.0.0.1", cluster.ports[Atom("a@127.0.0.1")])
    with caplog.at_level(logging.WARNING, logger="beamlink.connection"):
        writer.write(junk)
        assert await asyncio.wait_for(reader.read(), 5) in (b"",)
    writer.close()
    assert any("refused connection from" in r.message for r in caplog.records)
    assert await friend.connect("a@127.0.0.1")


async def test_silent_peer_is_declared_down_and_ticks_keep_links_up(cluster: Cluster) -> None:
    ticktime = 1.0
    a, rec_a = await cluster.node("a@127.0.0.1", net_ticktime=ticktime)
    _b, rec_b = await cluster.node("b@127.0.0.1", net_ticktime=ticktime)
    assert await a.connect("b@127.0.0.1")
    sock = await handshake_raw(
        cluster.ports[Atom("a@127.0.0.1")], "silent@127.0.0.1", "a@127.0.0.1"
    )
    try:
        await rec_a.wait_for(lambda: Atom("silent@127.0.0.1") in rec_a.kinds("up"))
        up_at = time.monotonic()
        await rec_a.wait_for(lambda: rec_a.kinds("down"), timeout=ticktime * 4)
        silent_for = time.monotonic() - up_at
        [(_kind, peer, reason)] = [e for e in rec_a.events if e[0] == "down"]
        assert peer == Atom("silent@127.0.0.1") and reason.kind == TICK_TIMEOUT
        assert ticktime * 0.75 <= silent_for <= ticktime * 1.25 + 0.5
        # The idle a<->b link survived several tick periods thanks to ticks.
        assert a.connected_nodes() == [Atom("b@127.0.0.1")]
        assert rec_b.kinds("down") == []
    finally:
        sock.close()


async def test_reconnect_while_up_replaces_the_old_connection(cluster: Cluster) -> None:
    a, rec_a = await cluster.node("a@127.0.0.1")
    port = cluster.ports[Atom("a@127.0.0.1")]
    first = await handshake_raw(port, "r@127.0.0.1", "a@127.0.0.1")
    await rec_a.wait_for(lambda: rec_a.kinds("up"))
    second = await handshake_raw(port, "r@127.0.0.1", "a@127.0.0.1")  # answers 'alive' with strue
    try:
        await rec_a.wait_for(lambda: len(rec_a.kinds("up")) == 2)
        [(_, _, reason)] = [e for e in rec_a.events if e[0] == "down"]
        assert reason.kind == REPLACED
        assert a.connected_nodes() == [Atom("r@127.0.0.1")]
        first.settimeout(5)
        assert await asyncio.to_thread(first.recv, 100) == b""
        await asyncio.to_thread(second.sendall, struct.pack(">I", 0))
    finally:
        first.close()
        second.close()


async def test_unreachable_peer_fails_fast(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    a, _ = await cluster.node("a@127.0.0.1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        cluster.ports[Atom("gone@127.0.0.1")] = s.getsockname()[1]
    with caplog.at_level(logging.WARNING, logger="beamlink.connection"):
        assert not await a.connect("gone@127.0.0.1")
    assert any("connection to gone@127.0.0.1" in r.message for r in caplog.records)
    assert not await a.connect("unknown@127.0.0.1")  # the resolver raises KeyError


async def test_allow_list_refuses_with_not_allowed(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    await cluster.node("a@127.0.0.1", allow=lambda peer: peer == Atom("ok@127.0.0.1"))
    ok, _ = await cluster.node("ok@127.0.0.1")
    other, _ = await cluster.node("other@127.0.0.1")
    with caplog.at_level(logging.WARNING, logger="beamlink.connection"):
        assert not await other.connect("a@127.0.0.1")
    assert any("not in the allowed nodes" in r.message for r in caplog.records)
    assert any("not_allowed" in r.message for r in caplog.records)
    assert await ok.connect("a@127.0.0.1")


@pytest.mark.parametrize("spread", [0.0, 0.005, 0.02, 0.06])
async def test_full_mesh_of_staggered_connects_keeps_one_connection_per_pair(
    cluster: Cluster, spread: float, caplog: pytest.LogCaptureFixture
) -> None:
    """Every node connects to every other, each call a little later than the last: many
    connects arrive while the peer's own attempt is mid-handshake or just finished. No
    attempt fails, no pair connects twice, and no side logs a warning about the races."""
    size = 14
    nodes = [await cluster.node(f"m{i}@127.0.0.1") for i in range(size)]
    managers = [manager for manager, _ in nodes]
    rng = random.Random(f"mesh-{spread}")

    async def connect(a: ConnectionManager, b: ConnectionManager) -> bool:
        await asyncio.sleep(rng.uniform(0, spread))
        return await a.connect(str(b.local_name))

    pairs = [(a, b) for a in managers for b in managers if a is not b]
    with caplog.at_level(logging.WARNING, logger="beamlink.connection"):
        results = await asyncio.gather(*(connect(a, b) for a, b in pairs))
        await asyncio.sleep(0.2)
    # (event loop lag reports are about the machine's load, not about the races)
    assert [r.message for r in caplog.records if r.name != "beamlink.connection.watchdog"] == []
    outcomes = zip(pairs, results, strict=True)
    failed = [(a.local_name, b.local_name) for (a, b), ok in outcomes if not ok]
    assert failed == []
    for manager, recorder in nodes:
        others = {m.local_name for m in managers if m is not manager}
        assert set(manager.connected_nodes()) == others
        assert sorted(recorder.kinds("up")) == sorted(others), "a pair connected twice"
        assert recorder.kinds("down") == []
    for a, b in pairs:
        info_ab, info_ba = a.peer_info(str(b.local_name)), b.peer_info(str(a.local_name))
        assert info_ab is not None and info_ba is not None
        assert info_ab.initiated != info_ba.initiated, "the two ends are different sockets"
    accepted = established_on(set(cluster.ports.values()))
    assert accepted == size * (size - 1) // 2, "a losing attempt left its socket open"


async def test_connect_during_an_incoming_handshake_waits_for_it(cluster: Cluster) -> None:
    """OTP's pending state: a peer's handshake in progress is the connection to wait for."""
    b, rec_b = await cluster.node("b@127.0.0.1")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        cluster.ports[Atom("a@127.0.0.1")] = closed.getsockname()[1]  # a dial from b fails
    sock = await asyncio.to_thread(
        socket.create_connection, ("127.0.0.1", cluster.ports[Atom("b@127.0.0.1")]), timeout=5
    )
    loop = asyncio.get_running_loop()
    hs = Initiator(
        "a@127.0.0.1",
        COOKIE,
        peer_name="b@127.0.0.1",
        flags=flags.advertised_flags(hidden=False),
        creation=9,
    )
    try:
        await loop.run_in_executor(None, sock.sendall, hs.data_to_send())
        while hs.state != "await_ack":
            data = await loop.run_in_executor(None, sock.recv, 4096)
            assert data, "closed during the handshake"
            hs.receive_data(data)
        connecting = asyncio.create_task(b.connect("a@127.0.0.1"))
        await asyncio.sleep(0.1)
        assert not connecting.done(), "b dialled a although a's own attempt was pending"
        await loop.run_in_executor(None, sock.sendall, hs.data_to_send())
        while not hs.complete:
            data = await loop.run_in_executor(None, sock.recv, 4096)
            assert data, "closed during the handshake"
            hs.receive_data(data)
        assert await asyncio.wait_for(connecting, 5)
        assert b.connected_nodes() == [Atom("a@127.0.0.1")]
        assert rec_b.kinds("up") == [Atom("a@127.0.0.1")]
    finally:
        sock.close()
