"""Real beamlink nodes (separate OS processes on 127.0.0.x) clustering with dns_poll + dnsmasq.

Scale up, scale down gracefully and with SIGKILL, a DNS outage, and resolvers that answer only
one family (dnsmasq with a hosts file and no upstream refuses AAAA; a server SERVFAILing AAAA
mid-run): every node's own node list is checked each time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster.node_process import ClusterProcess
from tests.support.dns_proxy import DnsProxy, DnsProxyFactory
from tests.support.dnsmasq import Dnsmasq, DnsmasqFactory
from tests.support.erlang import free_port
from tests.support.wait import eventually

SERVICE = "tasks.t_cluster_demo"
ROOT = str(Path(__file__).resolve().parents[2])
POLLING_MS = 300


class Swarm:
    """Node processes on 127.0.1.x published in ``dns``; they ask ``nameserver`` (default: ``dns``)."""

    def __init__(self, dns: Dnsmasq, dist_port: int, nameserver: str | None = None) -> None:
        self.dns = dns
        self.dist_port = dist_port
        self.nameserver = nameserver or dns.address
        self.running: dict[str, ClusterProcess] = {}

    def ip(self, index: int) -> str:
        return f"127.0.1.{index}"

    def publish(self) -> None:
        self.dns.set_hosts({SERVICE: [name.partition("@")[2] for name in self.running]})

    async def add(self, *indices: int) -> None:
        for index in indices:
            name = f"demo@{self.ip(index)}"
            self.running[name] = ClusterProcess(name, self.dist_port, self.nameserver, SERVICE, POLLING_MS)
        self.publish()
        for index in indices:
            await self.running[f"demo@{self.ip(index)}"].start(ROOT)

    async def converged(self, timeout: float = 20.0) -> None:
        names = set(self.running)

        def full_mesh() -> bool:
            return all(p.nodes == names - {n} for n, p in self.running.items())

        await eventually(full_mesh, timeout=timeout)


    async def stop_all(self) -> None:
        for proc in self.running.values():
            await proc.kill()


@pytest.fixture
async def swarm(dnsmasq_factory: DnsmasqFactory) -> AsyncIterator[Swarm]:
    dns = dnsmasq_factory(local_domains=["t_cluster_demo"])
    cluster = Swarm(dns, free_port())
    yield cluster
    await cluster.stop_all()


@pytest.fixture
async def refusing_aaaa(dnsmasq_factory: DnsmasqFactory) -> AsyncIterator[Swarm]:
    """A swarm whose resolver is dnsmasq as users run it: a hosts file of A records, no upstream,
    no ``--local``, so every AAAA query is REFUSED."""
    cluster = Swarm(dnsmasq_factory(local_domains=[]), free_port())
    yield cluster
    await cluster.stop_all()


@pytest.fixture
async def behind_proxy(
    dnsmasq_factory: DnsmasqFactory, dns_proxy_factory: DnsProxyFactory
) -> AsyncIterator[tuple[Swarm, DnsProxy]]:
    """A swarm asking a DNS proxy in front of an authoritative dnsmasq (AAAA: NODATA) that can
    be told to SERVFAIL a record type."""
    dns = dnsmasq_factory(local_domains=["t_cluster_demo"])
    proxy = dns_proxy_factory(dns.port)
    cluster = Swarm(dns, free_port(), proxy.address)
    yield cluster, proxy
    await cluster.stop_all()


async def test_scale_up_down_kill_and_dns_outage(swarm: Swarm) -> None:
    await swarm.add(1, 2, 3)
    await swarm.converged()
    await swarm.add(4, 5)
    await swarm.converged()

    leaving = swarm.running.pop("demo@127.0.1.5")
    swarm.publish()
    assert await leaving.terminate() == 0
    await swarm.converged()

    killed = swarm.running.pop("demo@127.0.1.4")
    await killed.kill()
    swarm.publish()
    await swarm.converged()

    swarm.dns.stop()
    await swarm.add(6)
    before = {name: proc.nodes for name, proc in swarm.running.items() if name != "demo@127.0.1.6"}
    await eventually(lambda: swarm.running["demo@127.0.1.6"].nodes is not None)
    await asyncio.sleep(POLLING_MS / 1000 * 4)
    for name, nodes in before.items():
        assert swarm.running[name].nodes == nodes, f"{name} changed its node list during the outage"
    swarm.dns.start()
    swarm.publish()
    await swarm.converged()


async def test_killed_node_stays_gone_while_dns_still_lists_it(swarm: Swarm) -> None:
    await swarm.add(1, 2, 3)
    await swarm.converged()
    killed = swarm.running.pop("demo@127.0.1.3")
    await killed.kill()
    await eventually(
        lambda: all(p.nodes == set(swarm.running) - {n} for n, p in swarm.running.items()),
        timeout=20,
    )
    # DNS still lists the killed node: across at least two more polls that found it, no
    # survivor connects to it again.
    polls = {name: len(p.polls) for name, p in swarm.running.items()}
    lists = {name: len(p.history) for name, p in swarm.running.items()}
    await eventually(
        lambda: all(len(p.polls) >= polls[n] + 2 for n, p in swarm.running.items()), timeout=20
    )
    for name, proc in swarm.running.items():
        assert set(proc.polls[polls[name] :]) == {2}, f"{name}: DNS stopped listing {killed.name}"
        assert proc.history[lists[name] :] == [], f"{name} changed its node list: {proc.history}"
        assert proc.nodes == set(swarm.running) - {name}


async def test_resolver_refusing_aaaa_forms_the_cluster(refusing_aaaa: Swarm) -> None:
    swarm = refusing_aaaa
    await swarm.add(1, 2, 3, 4, 5)
    await swarm.converged()
    leaving = swarm.running.pop("demo@127.0.1.5")
    swarm.publish()
    assert await leaving.terminate() == 0
    await swarm.converged()


async def test_aaaa_failing_mid_run_while_a_records_change(
    behind_proxy: tuple[Swarm, DnsProxy],
) -> None:
    swarm, proxy = behind_proxy
    await swarm.add(1, 2, 3)
    await swarm.converged()
    proxy.fail("AAAA")
    await swarm.add(4)
    await swarm.converged()
    killed = swarm.running.pop("demo@127.0.1.2")
    await killed.kill()
    swarm.publish()
    await swarm.converged()
    proxy.fail()
    await swarm.add(5)
    await swarm.converged()
