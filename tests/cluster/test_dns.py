"""DNS strategies against a real dnsmasq: A/AAAA (each family on its own, with resolvers that
refuse or fail one of them), SRV, large answers over TCP, outages."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from beamlink.cluster.events import PollFailure
from beamlink.cluster.schema import DnsPollConfig, KubernetesDnsConfig, KubernetesDnsSrvConfig
from beamlink.cluster.strategies import Discovery, DiscoveryError, StrategyContext, create_strategy
from beamlink.cluster.topology import Cluster
from tests.cluster.support import EventLog, MemoryMembership
from tests.support.dns_proxy import DnsProxyFactory
from tests.support.dnsmasq import Dnsmasq, DnsmasqFactory
from tests.support.wait import eventually

SERVICE = "tasks.t_cluster_demo"


def context(self_name: str = "demo@127.0.0.1") -> StrategyContext:
    return StrategyContext("t", self_name, lambda event: None)


async def discover(config: object) -> Discovery:
    strategy = create_strategy(config, context())  # type: ignore[arg-type]
    await strategy.start()
    try:
        return await strategy.discover()
    finally:
        await strategy.close()


async def test_dns_poll_a_and_aaaa(dnsmasq_factory: DnsmasqFactory) -> None:
    server = dnsmasq_factory(local_domains=["t_cluster_demo"])
    server.set_hosts({SERVICE: ["127.0.0.2", "127.0.0.3", "fd00::5"], "other.t_cluster_demo": ["127.0.0.9"]})
    config = DnsPollConfig(query=SERVICE, node_basename="demo", nameservers=(server.address,))
    result = await discover(config)
    assert result.nodes == {"demo@127.0.0.2", "demo@127.0.0.3", "demo@fd00::5"}
    assert result.draining == frozenset()


def rcode(server: Dnsmasq, name: str, rdtype: str) -> str:
    """The response code the server gives to one query (asked directly, UDP)."""
    query = dns.message.make_query(name, rdtype)
    return dns.rcode.to_text(dns.query.udp(query, "127.0.0.1", port=server.port, timeout=2).rcode())


def family_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_resolver_refusing_aaaa_a_records_are_used(
    dnsmasq_factory: DnsmasqFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = dnsmasq_factory(local_domains=[])
    server.set_hosts({SERVICE: ["127.0.0.2", "127.0.0.3"]})
    assert rcode(server, SERVICE, "AAAA") == "REFUSED", "the test needs a resolver refusing AAAA"
    config = DnsPollConfig(query=SERVICE, node_basename="demo", nameservers=(server.address,))
    strategy = create_strategy(config, context())
    with caplog.at_level(logging.WARNING, "beamlink.cluster"):
        for _ in range(3):
            assert (await strategy.discover()).nodes == {"demo@127.0.0.2", "demo@127.0.0.3"}
    [warning] = family_warnings(caplog)
    assert "AAAA" in warning and "REFUSED" in warning and "no addresses" in warning


async def test_resolver_refusing_a_aaaa_records_are_used(dnsmasq_factory: DnsmasqFactory) -> None:
    server = dnsmasq_factory(local_domains=[])
    name = "myapp-headless.ns.svc.cluster.local"
    server.set_hosts({name: ["fd00::4", "fd00::5"]})
    assert rcode(server, name, "A") == "REFUSED", "the test needs a resolver refusing A"
    config = KubernetesDnsConfig(service=name, application_name="myapp", nameservers=(server.address,))
    assert (await discover(config)).nodes == {"myapp@fd00::4", "myapp@fd00::5"}


async def test_nodata_of_one_family_is_an_answer_not_a_failure(
    dnsmasq_factory: DnsmasqFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = dnsmasq_factory(local_domains=["t_cluster_demo"])
    server.set_hosts({SERVICE: ["127.0.0.2"]})
    assert rcode(server, SERVICE, "AAAA") == "NOERROR"
    config = DnsPollConfig(query=SERVICE, node_basename="demo", nameservers=(server.address,))
    with caplog.at_level(logging.WARNING, "beamlink.cluster"):
        assert (await discover(config)).nodes == {"demo@127.0.0.2"}
    assert family_warnings(caplog) == []


async def test_failing_family_keeps_its_last_answer_while_the_other_changes(
    dnsmasq_factory: DnsmasqFactory,
    dns_proxy_factory: DnsProxyFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = dnsmasq_factory(local_domains=[])
    await asyncio.to_thread(server.set_hosts, {SERVICE: ["127.0.0.2", "127.0.0.3", "fd00::5"]})
    proxy = dns_proxy_factory(server.port)
    config = DnsPollConfig(
        query=SERVICE, node_basename="demo", nameservers=(proxy.address,), dns_timeout=1000
    )
    strategy = create_strategy(config, context())
    assert (await strategy.discover()).nodes == {"demo@127.0.0.2", "demo@127.0.0.3", "demo@fd00::5"}

    proxy.fail("AAAA")
    await asyncio.to_thread(server.set_hosts, {SERVICE: ["127.0.0.2", "127.0.0.4", "fd00::6"]})
    with caplog.at_level(logging.WARNING, "beamlink.cluster"):
        for _ in range(3):
            assert (await strategy.discover()).nodes == {
                "demo@127.0.0.2", "demo@127.0.0.4", "demo@fd00::5"
            }
        await asyncio.to_thread(server.set_hosts, {SERVICE: ["127.0.0.4", "fd00::6"]})
        assert (await strategy.discover()).nodes == {"demo@127.0.0.4", "demo@fd00::5"}
    [warning] = family_warnings(caplog)
    assert "SERVFAIL" in warning and "fd00::5" in warning

    proxy.fail("A", "AAAA")
    with pytest.raises(DiscoveryError, match="SERVFAIL"):
        await strategy.discover()

    proxy.fail("A")
    assert (await strategy.discover()).nodes == {"demo@127.0.0.4", "demo@fd00::6"}
    proxy.fail()
    assert (await strategy.discover()).nodes == {"demo@127.0.0.4", "demo@fd00::6"}


async def test_nxdomain_is_an_answer_with_no_nodes(dnsmasq_factory: DnsmasqFactory) -> None:
    server = dnsmasq_factory(local_domains=["t_cluster_demo"])
    config = DnsPollConfig(query=SERVICE, node_basename="demo", nameservers=(server.address,))
    assert (await discover(config)).nodes == frozenset()


async def test_refused_is_an_error(dnsmasq_factory: DnsmasqFactory) -> None:
    server = dnsmasq_factory(local_domains=["t_cluster_demo"])
    config = DnsPollConfig(query="tasks.elsewhere", node_basename="d", nameservers=(server.address,))
    strategy = create_strategy(config, context())
    try:
        await strategy.discover()
    except DiscoveryError as exc:
        assert "REFUSED" in str(exc)
    else:
        raise AssertionError("REFUSED must be a discovery error")


async def test_answers_beyond_512_bytes_use_tcp(dnsmasq_factory: DnsmasqFactory) -> None:
    server = dnsmasq_factory(local_domains=["t_cluster_demo"])
    addresses = [str(ipaddress.IPv4Address("127.1.0.0") + i) for i in range(1, 301)]
    server.set_hosts({SERVICE: addresses})
    raw = dns.query.udp(dns.message.make_query(SERVICE, "A"), "127.0.0.1", port=server.port, timeout=2)
    assert raw.flags & dns.flags.TC, "the test needs an answer that does not fit in UDP"
    config = DnsPollConfig(query=SERVICE, node_basename="demo", nameservers=(server.address,))
    result = await discover(config)
    assert result.nodes == {f"demo@{a}" for a in addresses}


async def test_server_down_is_an_error_then_recovers(dnsmasq_factory: DnsmasqFactory) -> None:
    server = dnsmasq_factory(local_domains=["t_cluster_demo"])
    server.set_hosts({SERVICE: ["127.0.0.2"]})
    config = DnsPollConfig(
        query=SERVICE, node_basename="demo", nameservers=(server.address,), dns_timeout=300
    )
    strategy = create_strategy(config, context())
    assert (await strategy.discover()).nodes == {"demo@127.0.0.2"}
    server.stop()
    try:
        await strategy.discover()
    except DiscoveryError:
        pass
    else:
        raise AssertionError("a dead server must be a discovery error")
    server.start()
    assert (await strategy.discover()).nodes == {"demo@127.0.0.2"}


async def test_kubernetes_dns_headless_service(dnsmasq_factory: DnsmasqFactory) -> None:
    server = dnsmasq_factory(local_domains=["cluster.local"])
    name = "myapp-headless.ns.svc.cluster.local"
    server.set_hosts({name: ["127.0.0.4", "127.0.0.5"]})
    config = KubernetesDnsConfig(service=name, application_name="myapp", nameservers=(server.address,))
    assert (await discover(config)).nodes == {"myapp@127.0.0.4", "myapp@127.0.0.5"}


async def test_kubernetes_dnssrv_targets(dnsmasq_factory: DnsmasqFactory) -> None:
    srv_name = "myapp.ns.svc.cluster.local"
    server = dnsmasq_factory(
        local_domains=["cluster.local"],
        srv=[
            f"{srv_name},myapp-0.myapp.ns.svc.cluster.local,4369",
            f"{srv_name},myapp-1.myapp.ns.svc.cluster.local,4369",
        ],
    )
    config = KubernetesDnsSrvConfig(
        service="myapp", namespace="ns", application_name="myapp", nameservers=(server.address,)
    )
    assert (await discover(config)).nodes == {
        "myapp@myapp-0.myapp.ns.svc.cluster.local",
        "myapp@myapp-1.myapp.ns.svc.cluster.local",
    }


async def test_reconcile_with_dns_outage_keeps_everyone(dnsmasq_factory: DnsmasqFactory) -> None:
    server = dnsmasq_factory(local_domains=["t_cluster_demo"])
    peers = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    server.set_hosts({SERVICE: ["127.0.0.1", *peers]})
    names = {f"demo@{ip}" for ip in peers}
    membership = MemoryMembership("demo@127.0.0.1", reachable=set(names))
    config = DnsPollConfig(
        query=SERVICE,
        node_basename="demo",
        nameservers=(server.address,),
        polling_interval=50,
        dns_timeout=200,
    )
    cluster = Cluster(membership, {"swarm": config})
    events = EventLog()
    cluster.subscribe(events)
    await cluster.start()
    try:
        await eventually(lambda: membership.connected == names)
        server.stop()
        await eventually(lambda: len(events.of(PollFailure)) >= 3)
        assert membership.connected == names
        assert membership.count("disconnect") == 0
        server.start()
        server.set_hosts({SERVICE: ["127.0.0.1", *peers[:2]]})
        await eventually(lambda: membership.connected == names - {"demo@127.0.0.4"})
        server.set_hosts({SERVICE: ["127.0.0.1", *peers]})
        await eventually(lambda: membership.connected == names)
    finally:
        await cluster.stop(leave=False)
    await asyncio.sleep(0)
