"""Discovery from sources anyone can write to (issue 12, items 1 and 4), attacked with raw bytes.

A local user squats names in a real EPMD with a hand-written ALIVE2 request; a network attacker
floods the gossip port with forged libcluster heartbeats. Strategies reading such sources refuse
to start without an ``allow`` list, never hand out a name outside it (and say so in one
rate-limited, quoted log line), and bound the names held and handed out per round.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest

from beamlink.cluster.config import ConfigError
from beamlink.cluster.schema import GossipConfig, parse_topology
from beamlink.cluster.strategies import StrategyContext, create_strategy
from beamlink.cluster.strategies.gossip import GossipStrategy
from beamlink.etf import Atom, encode
from tests.cluster.conftest import private_epmd

__all__ = ["private_epmd"]

pytestmark = pytest.mark.timeout(60)


def context() -> StrategyContext:
    return StrategyContext("t", "app1@127.0.0.1", lambda event: None)


async def squat(epmd_port: int, name: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Register ``name`` the way any local process can: one raw ALIVE2_X request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", epmd_port)
    body = struct.pack(">BHBBHHH", 120, 40000, 77, 0, 6, 6, len(name)) + name + b"\0\0"
    writer.write(struct.pack(">H", len(body)) + body)
    answer = await asyncio.wait_for(reader.readexactly(2), 5)
    assert answer[1] == 0, "EPMD refused the squatter's registration"
    return reader, writer


@pytest.mark.parametrize("strategy", ["local_epmd", "erlang_hosts"])
def test_refuses_to_start_without_allow(strategy: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_topology("t", {"strategy": strategy})
    assert info.value.key == "allow"
    assert "challenge" in str(info.value) and 'allow = ["app@*"]' in str(info.value)


def test_libcluster_compat_requires_allow() -> None:
    with pytest.raises(ConfigError) as info:
        parse_topology("t", {"strategy": "gossip", "libcluster_compat": True})
    assert info.value.key == "allow"
    assert parse_topology("t", {"strategy": "gossip", "secret": "s"})  # sealed: unchanged


async def test_squatted_epmd_names_are_never_handed_out(
    private_epmd: int, caplog: pytest.LogCaptureFixture
) -> None:
    config = parse_topology(
        "t", {"strategy": "local_epmd", "epmd_port": private_epmd, "allow": ["app*@*"]}
    )
    strategy = create_strategy(config, context())
    squatters = [await squat(private_epmd, n) for n in (b"app2", b"evil", b"evil2")]
    try:
        with caplog.at_level(logging.WARNING, "beamlink.cluster"):
            for _ in range(5):
                assert (await strategy.discover()).nodes == {"app2@127.0.0.1"}
    finally:
        for _, writer in squatters:
            writer.close()
    lines = [r.getMessage() for r in caplog.records if "allow list" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "'evil" in lines[0]


def forged(name: str) -> bytes:
    """libcluster's plain heartbeat: ``"heartbeat::" <> term_to_binary(%{node: name})``."""
    return b"heartbeat::" + encode({Atom("node"): Atom(name)})


async def test_forged_gossip_flood_is_bounded() -> None:
    config = GossipConfig(
        libcluster_compat=True,
        transport="unicast",
        if_addr="127.0.0.1",
        port=free_udp_port(),
        peers=("127.0.0.1:9",),
        allow=("app*@*",),
        max_nodes=100,
        max_new_per_round=10,
        sender_rate=50.0,
        heartbeat_min=60_000,
        heartbeat_max=60_000,
    )
    strategy = create_strategy(config, context())
    assert isinstance(strategy, GossipStrategy)
    await strategy.start()
    try:
        target = ("127.0.0.1", config.port)
        await flood(target, "127.0.0.1", [forged(f"app{i}@10.0.0.1") for i in range(2000)])
        for sender in range(2, 40):
            names = [f"{kind}{sender}x{i}@10.0.0.1" for i in range(30) for kind in ("app", "evil")]
            await flood(target, f"127.0.0.{sender}", [forged(n) for n in names])
        await asyncio.sleep(0.2)
        assert len(strategy.heard) <= config.max_nodes
        received = sum(strategy.dropped.values()) + len(strategy.heard)
        assert received > 1000, "the flood did not arrive; the test proves nothing"
        assert strategy.dropped["rate"] > 500
        assert strategy.dropped["not-allowed"] > 0
        assert strategy.dropped["full"] > 0
        first = (await strategy.discover()).nodes
        second = (await strategy.discover()).nodes
        assert len(first) == 10 and len(second) == 20 and first < second
        assert all(n.startswith("app") for n in second)
    finally:
        await strategy.close()


async def flood(target: tuple[str, int], source: str, datagrams: list[bytes]) -> None:
    """Send ``datagrams`` from ``source`` without blocking the loop (batches of 20)."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind((source, 0))
        for i, datagram in enumerate(datagrams):
            await loop.sock_sendto(sock, datagram, target)
            if i % 20 == 19:
                await asyncio.sleep(0.001)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
