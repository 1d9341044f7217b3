"""Network partitions between real hosts: network namespaces joined by a bridge.

Four namespaces made by the test, each a host with one veth on a bridge that lives in a fifth
namespace: ``a``, ``b`` and ``c`` (10.233.0.1-3) run beamlink nodes as separate processes,
``e`` (10.233.0.4) a real ``erl`` (OTP 25). Every node uses fixed-port mode (port 4370, no EPMD;
erl with ``-erl_epmd_port``), ``net_ticktime`` 4 s and, for the beamlink nodes, an ``epmd``
topology listing all four. Host ``c``, then host ``e``, is cut off by setting its link down: the
others declare it down within the tick bounds and keep their own connections; after the link comes
back up the reconcile loops reconnect everyone. ``a`` and ``b`` stream numbered messages to each
other all along; every one arrives, once and in order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.robustness.node_process import NodeProcess
from tests.support import wait
from tests.support.erlang import ErlPeer, ErlRuntime, no_epmd_args, runtime, start_peer
from tests.support.require import missing, require_tool

pytestmark = [pytest.mark.timeout(120), pytest.mark.interop]

COOKIE = "partition-cookie"
TICKTIME = 4.0
POLLING_MS = 1000
DIST_PORT = 4370
SUBNET = "10.233.0"
HOSTS = {"a": 1, "b": 2, "c": 3, "e": 4}

log = logging.getLogger(__name__)


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, f"ip {' '.join(args)}: {done.stderr}"


@dataclass(frozen=True)
class Net:
    """The namespaces of one test: ``ns[host]``, the link of each host, the bridge's namespace."""

    tag: str
    switch: str

    def ns(self, host: str) -> str:
        return f"blr{host}{self.tag}"

    def link(self, host: str) -> str:
        return f"blr{host}{self.tag}"

    def address(self, host: str) -> str:
        return f"{SUBNET}.{HOSTS[host]}"

    def node(self, host: str) -> str:
        return f"{host}@{self.address(host)}"

    def prefix(self, host: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.ns(host))

    def set_link(self, host: str, state: str) -> None:
        ip("-n", self.ns(host), "link", "set", self.link(host), state)


@pytest.fixture
def net() -> Iterator[Net]:
    require_tool("ip")
    if os.geteuid() != 0:
        missing("network namespaces need root")
    tag = str(os.getpid() % 100000)
    net = Net(tag, f"blrsw{tag}")
    made = [net.switch]
    try:
        ip("netns", "add", net.switch)
        ip("-n", net.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", net.switch, "link", "set", "br0", "up")
        for host in HOSTS:
            ns = net.ns(host)
            ip("netns", "add", ns)
            made.append(ns)
            port = f"blrp{host}{tag}"
            ip("link", "add", net.link(host), "netns", ns, "type", "veth",
               "peer", "name", port, "netns", net.switch)
            ip("-n", net.switch, "link", "set", port, "master", "br0")
            ip("-n", net.switch, "link", "set", port, "up")
            ip("-n", ns, "addr", "add", f"{net.address(host)}/24", "dev", net.link(host))
            ip("-n", ns, "link", "set", net.link(host), "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield net
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)


@dataclass(frozen=True)
class NetnsRuntime(ErlRuntime):
    """The host's OTP run inside a network namespace."""

    netns: str = ""

    def argv(self, tool: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *super().argv(tool, *args)]


@dataclass
class Cluster:
    net: Net
    nodes: dict[str, NodeProcess]
    erl: ErlPeer


@pytest.fixture
async def cluster(net: Net, tmp_path: Path) -> AsyncIterator[Cluster]:
    host_erl = runtime("otp25")
    everyone = [net.node(h) for h in HOSTS]
    nodes = {
        host: NodeProcess(
            {
                "name": net.node(host),
                "cookie": COOKIE,
                "dist_port": DIST_PORT,
                "net_ticktime": TICKTIME,
                "handshake_timeout": 2.0,
                "topology": {
                    "strategy": "epmd",
                    "hosts": everyone,
                    "polling_interval": POLLING_MS,
                    "connect_timeout": 1000,
                },
            },
            tmp_path / f"{host}.log",
            net.prefix(host),
        )
        for host in ("a", "b", "c")
    }
    erl: ErlPeer | None = None
    try:
        for node in nodes.values():
            await node.start()
        erl = await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: start_peer(
                NetnsRuntime(host_erl.label, host_erl.release, host_erl.root, netns=net.ns("e")),
                net.node("e"),
                COOKIE,
                extra_args=(
                    *no_epmd_args(DIST_PORT, "{10,233,0,4}"),
                    "-kernel", "net_ticktime", str(int(TICKTIME)),
                ),
            ),
        )
        yield Cluster(net, nodes, erl)
    finally:
        if erl is not None:
            erl.stop()
        for node in nodes.values():
            if node.proc is not None:
                await node.kill()


async def eventually(check: Callable[[], bool], timeout: float, what: str) -> float:
    """``tests.support.wait.eventually``; returns the time it took."""
    started = time.monotonic()
    await wait.eventually(check, timeout, what=what)
    return time.monotonic() - started


async def erl_nodes(erl: ErlPeer) -> frozenset[str]:
    text = await erl.aeval("nodes()")
    return frozenset(n.strip("'") for n in text.strip("[]").split(",") if n)


async def erl_eventually(erl: ErlPeer, expected: frozenset[str], what: str) -> None:
    for _ in range(100):
        if await erl_nodes(erl) == expected:
            return
        await asyncio.sleep(0.1)
    assert await erl_nodes(erl) == expected, what


async def cut_and_heal(cluster: Cluster, cut: str) -> None:
    """Set ``cut``'s link down: the others declare it down within the tick bounds and keep
    their own connections; set it up: everyone reconnects within about one polling interval."""
    net = cluster.net
    names = {h: net.node(h) for h in HOSTS}
    everyone = frozenset(names.values())
    python_hosts = [h for h in cluster.nodes if h != cut]

    cut_at = time.monotonic()
    net.set_link(cut, "down")
    for host in python_hosts:
        node = cluster.nodes[host]
        expected = everyone - {names[host], names[cut]}

        def declared(n: NodeProcess = node, e: frozenset[str] = expected) -> bool:
            return n.nodes == e

        await eventually(declared, TICKTIME * 1.25 + 3, f"{host} declares {cut} down")
        down_after = node.history[-1][0] - cut_at
        log.info("%s declared %s down %.2f s after the cut", host, cut, down_after)
        assert TICKTIME * 0.5 <= down_after <= TICKTIME * 1.25 + 1.5, (host, down_after)
    if cut == "e":
        await erl_eventually(cluster.erl, frozenset(), "the cut erl sees nobody")
    else:
        await erl_eventually(cluster.erl, everyone - {names["e"], names[cut]},
                             f"erl declares {cut} down")
        await eventually(lambda: cluster.nodes[cut].nodes == frozenset(), TICKTIME * 1.25 + 3,
                         f"{cut} sees nobody")
    # The healthy side keeps its connections while the cut host stays away for a few polls.
    await asyncio.sleep(POLLING_MS / 1000 * 3)
    for host in python_hosts:
        assert cluster.nodes[host].nodes == everyone - {names[host], names[cut]}

    net.set_link(cut, "up")
    took = await eventually(
        lambda: all(n.nodes == everyone - {names[h]} for h, n in cluster.nodes.items()),
        POLLING_MS / 1000 + 8,
        f"full mesh after healing {cut}",
    )
    log.info("full mesh again %.2f s after healing %s", took, cut)
    await erl_eventually(cluster.erl, everyone - {names["e"]}, "erl connected to all again")


async def test_cut_hosts_are_declared_down_and_rejoin_and_nothing_is_lost(
    cluster: Cluster,
) -> None:
    net = cluster.net
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    names = {h: net.node(h) for h in HOSTS}
    everyone = frozenset(names.values())
    await eventually(
        lambda: all(n.nodes == everyone - {names[h]} for h, n in cluster.nodes.items()),
        20,
        "full mesh",
    )
    await erl_eventually(cluster.erl, everyone - {names["e"]}, "erl sees the mesh")
    await a.tell("stream " + names["b"])
    await b.tell("stream " + names["a"])
    await asyncio.sleep(1.0)
    started = time.monotonic()

    await cut_and_heal(cluster, "c")  # a beamlink host
    await cut_and_heal(cluster, "e")  # the erl host

    sent_a, sent_b = await a.sent(), await b.sent()
    await asyncio.sleep(0.5)
    got_a, got_b = await a.received(), await b.received()
    log.info("a sent %s, b sent %s; a got %s, b got %s", sent_a, sent_b, got_a, got_b)
    assert got_b[names["a"]] == (sent_a[names["b"]], 0), "a -> b: all, once, in order"
    assert got_a[names["b"]] == (sent_b[names["a"]], 0), "b -> a: all, once, in order"
    for node, other in ((a, names["b"]), (b, names["a"])):
        assert all(other in nodes for t, nodes in node.history if t >= started), node.name
    for node in cluster.nodes.values():
        assert node.error_lines() == [], node.name
        assert await node.terminate() == 0
