"""Gossip: heartbeat codecs (fuzzed), strategies talking over loopback, and a real Elixir peer."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beamlink.cluster.events import DatagramDropped
from beamlink.cluster.heartbeat import (
    HeartbeatRejected,
    LibclusterHeartbeats,
    SealedHeartbeats,
)
from beamlink.cluster.schema import GossipConfig, TopologyConfig
from beamlink.cluster.strategies import Strategy, StrategyContext
from beamlink.cluster.strategies.gossip import GossipStrategy
from beamlink.cluster.topology import Cluster
from beamlink.etf import Atom, encode
from tests.cluster.support import EventLog, MemoryMembership
from tests.support.require import require_tool
from tests.support.wait import eventually

EXS = Path(__file__).parent / "data" / "libcluster_heartbeat.exs"
NOW = 1_700_000_000_000


def free_udp_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def rejected(opener: Callable[[], object]) -> str:
    with pytest.raises(HeartbeatRejected) as info:
        opener()
    return info.value.reason


def test_sealed_roundtrip_and_rejections() -> None:
    codec = SealedHeartbeats("secret")
    datagram = codec.seal("a@127.0.0.1", now_ms=NOW)
    assert codec.open(datagram, now_ms=NOW + 5) == "a@127.0.0.1"
    assert rejected(lambda: codec.open(datagram, now_ms=NOW + 6)) == "replay"
    other = SealedHeartbeats("other")
    assert rejected(lambda: other.open(codec.seal("a@h", now_ms=NOW), now_ms=NOW)) == "auth"
    flipped = bytearray(codec.seal("a@h", now_ms=NOW))
    flipped[-1] ^= 1
    assert rejected(lambda: codec.open(bytes(flipped), now_ms=NOW)) == "auth"
    old = codec.seal("a@h", now_ms=NOW - 31_000)
    assert rejected(lambda: codec.open(old, now_ms=NOW)) == "stale"
    assert rejected(lambda: codec.open(b"heartbeat::x", now_ms=NOW)) == "garbage"
    assert rejected(lambda: codec.open(b"BLG1" + bytes(600), now_ms=NOW)) == "oversize"
    with pytest.raises(HeartbeatRejected):
        codec.seal("not a node name")


def test_sealed_every_truncation_is_rejected() -> None:
    codec = SealedHeartbeats("secret")
    datagram = codec.seal("node@10.0.0.1", now_ms=NOW)
    for end in range(len(datagram)):
        with pytest.raises(HeartbeatRejected):
            codec.open(datagram[:end], now_ms=NOW)


@given(st.binary(max_size=700))
def test_sealed_garbage_only_raises_rejected(data: bytes) -> None:
    codec = SealedHeartbeats("secret")
    with pytest.raises(HeartbeatRejected):
        codec.open(data, now_ms=NOW)


@pytest.mark.parametrize("secret", [None, "cookie-secret"])
def test_libcluster_roundtrip_and_format(secret: str | None) -> None:
    codec = LibclusterHeartbeats(secret)
    datagram = codec.seal("app@10.0.0.7")
    assert codec.open(datagram) == "app@10.0.0.7"
    if secret is None:
        assert datagram == b"heartbeat::" + encode({Atom("node"): Atom("app@10.0.0.7")})
    else:
        assert len(datagram) % 16 == 0 and not datagram.startswith(b"heartbeat::")
        for end in range(len(datagram)):
            with pytest.raises(HeartbeatRejected):
                codec.open(datagram[:end])


@pytest.mark.parametrize(
    "term",
    [
        {Atom("node"): "app@h"},
        {Atom("node"): Atom("app@h"), Atom("x"): Atom("y")},
        {Atom("nod"): Atom("app@h")},
        [Atom("node")],
        {Atom("node"): Atom("no-at-sign")},
        {Atom("node"): Atom("bad name@h")},
    ],
)
def test_libcluster_rejects_other_terms(term: Any) -> None:
    codec = LibclusterHeartbeats(None)
    with pytest.raises(HeartbeatRejected):
        codec.open(b"heartbeat::" + encode(term))


def test_libcluster_wrong_secret_is_rejected() -> None:
    datagram = LibclusterHeartbeats("right").seal("a@h")
    rejects = 0
    for _ in range(20):
        try:
            LibclusterHeartbeats("wrong").open(datagram)
        except HeartbeatRejected:
            rejects += 1
    assert rejects == 20


@given(st.binary(max_size=700), st.sampled_from([None, "s"]))
def test_libcluster_garbage_only_raises_rejected(data: bytes, secret: str | None) -> None:
    codec = LibclusterHeartbeats(secret)
    try:
        codec.open(data)
    except HeartbeatRejected:
        return
    raise AssertionError("random bytes accepted as a heartbeat")


@given(st.binary(max_size=300))
def test_libcluster_garbage_after_prefix(data: bytes) -> None:
    with pytest.raises(HeartbeatRejected):
        LibclusterHeartbeats(None).open(b"heartbeat::\x83" + data)


class GossipNode:
    """A gossip topology on an in-memory membership, reachable to every name."""

    def __init__(self, name: str, config: GossipConfig) -> None:
        self.membership = MemoryMembership(name)
        self.membership.reachable = _Everything()
        self.events = EventLog()
        self.strategies: list[GossipStrategy] = []
        self.cluster = Cluster(self.membership, {"g": config}, strategy_factory=self._create)
        self.cluster.subscribe(self.events)

    def _create(self, config: TopologyConfig, context: StrategyContext) -> Strategy[Any]:
        assert isinstance(config, GossipConfig)
        strategy = GossipStrategy(config, context)
        self.strategies.append(strategy)
        return strategy

    @property
    def strategy(self) -> GossipStrategy:
        return self.strategies[-1]

    async def start(self) -> GossipNode:
        await self.cluster.start()
        return self

    async def stop(self) -> None:
        await self.cluster.stop(leave=False)


class _Everything(set[str]):
    def __contains__(self, item: object) -> bool:
        return True


@pytest.fixture
async def gossip_nodes() -> AsyncIterator[list[GossipNode]]:
    nodes: list[GossipNode] = []
    yield nodes
    for node in nodes:
        await node.stop()


def base(**options: Any) -> dict[str, Any]:
    return {"heartbeat_min": 50, "heartbeat_max": 100, "polling_interval": 200, **options}


async def _pair(nodes: list[GossipNode], configs: list[GossipConfig]) -> None:
    for index, config in enumerate(configs):
        node = GossipNode(f"n{index}@127.0.0.{index + 2}", config)
        nodes.append(await node.start())
    names = {node.membership.name for node in nodes}
    for node in nodes:
        await eventually(lambda node=node: node.membership.connected == names - {node.membership.name})


async def test_multicast_on_loopback(gossip_nodes: list[GossipNode]) -> None:
    port = free_udp_port()
    config = GossipConfig(
        secret="s", port=port, multicast_if="127.0.0.1", multicast_ttl=0, **base()
    )
    await _pair(gossip_nodes, [config, config, config])


async def test_broadcast_on_loopback(gossip_nodes: list[GossipNode]) -> None:
    port = free_udp_port()
    config = GossipConfig(
        secret="s", port=port, transport="broadcast", broadcast_addr="127.255.255.255", **base()
    )
    await _pair(gossip_nodes, [config, config])


async def test_unicast_ipv4_with_intruders(gossip_nodes: list[GossipNode]) -> None:
    port = free_udp_port("127.0.0.2")
    peers = (f"127.0.0.2:{port}", f"127.0.0.3:{port}")
    configs = [
        GossipConfig(secret="s", transport="unicast", if_addr=f"127.0.0.{i}", port=port, peers=peers, **base())
        for i in (2, 3)
    ]
    await _pair(gossip_nodes, configs)
    target = gossip_nodes[0]
    intruder = SealedHeartbeats("wrong secret")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(intruder.seal("evil@127.0.0.9"), ("127.0.0.2", port))
        sock.sendto(b"\x00garbage", ("127.0.0.2", port))
        sock.sendto(LibclusterHeartbeats(None).seal("evil@127.0.0.9"), ("127.0.0.2", port))
    strategy = target.strategy
    await eventually(lambda: strategy.dropped["auth"] >= 1 and strategy.dropped["garbage"] >= 2)
    await asyncio.sleep(0.3)
    assert "evil@127.0.0.9" not in strategy.heard
    assert target.membership.count("connect", "evil@127.0.0.9") == 0
    assert {e.reason for e in target.events.of(DatagramDropped)} >= {"auth", "garbage"}


async def test_unicast_ipv6(gossip_nodes: list[GossipNode]) -> None:
    ports = [free_udp_port("::1"), free_udp_port("::1")]
    peers = tuple(f"[::1]:{p}" for p in ports)
    configs = [
        GossipConfig(secret="s", transport="unicast", if_addr="::1", port=p, peers=peers, **base())
        for p in ports
    ]
    await _pair(gossip_nodes, configs)


async def test_socket_error_reopens_the_socket(gossip_nodes: list[GossipNode]) -> None:
    port = free_udp_port("127.0.0.2")
    peers = (f"127.0.0.2:{port}", f"127.0.0.3:{port}")
    configs = [
        GossipConfig(secret="s", transport="unicast", if_addr=f"127.0.0.{i}", port=port, peers=peers, **base())
        for i in (2, 3)
    ]
    await _pair(gossip_nodes, configs)
    strategy = gossip_nodes[1].strategy
    strategy.socket_failed(OSError(100, "network is down"))
    assert strategy.local_address is None
    await eventually(lambda: strategy.local_address is not None)
    strategy.heard.clear()
    await eventually(lambda: "n0@127.0.0.2" in strategy.heard)
    assert strategy.socket_errors == 1


@pytest.mark.parametrize("secret", [None, "shared-secret"])
async def test_libcluster_compat_with_elixir(gossip_nodes: list[GossipNode], secret: str | None) -> None:
    elixir = require_tool("elixir")
    py_port, ex_port = free_udp_port(), free_udp_port()
    config = GossipConfig(
        libcluster_compat=True,
        allow=("ex@127.0.0.1",),
        secret=secret,
        transport="unicast",
        if_addr="127.0.0.1",
        port=py_port,
        peers=(f"127.0.0.1:{ex_port}",),
        **base(),
    )
    node = await GossipNode("py@127.0.0.1", config).start()
    gossip_nodes.append(node)
    argv = [elixir, str(EXS), str(ex_port), str(py_port), "ex@127.0.0.1", *([secret] if secret else [])]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "HEARD py@127.0.0.1" in out.decode(), out.decode()
    await eventually(lambda: "ex@127.0.0.1" in node.membership.connected)
