"""``basename@auto``: env overrides, routing toward discovered peers (real dnsmasq), errors."""

from __future__ import annotations

import pytest

from beamlink.cluster.address import AddressError, choose_address, resolve_own_host
from beamlink.cluster.schema import ClusterConfig, DnsPollConfig, EpmdConfig
from tests.support.dnsmasq import DnsmasqFactory

SERVICE = "tasks.t_cluster_demo"


async def test_env_overrides_win() -> None:
    assert await resolve_own_host(environ={"BEAMLINK_HOST": "10.0.9.9", "POD_IP": "1.2.3.4"}) == "10.0.9.9"
    assert await resolve_own_host(environ={"POD_IP": "10.1.2.3"}) == "10.1.2.3"


async def test_confirmed_by_dns_answer(dnsmasq_factory: DnsmasqFactory) -> None:
    server = dnsmasq_factory(local_domains=["t_cluster_demo"])
    server.set_hosts({SERVICE: ["127.0.0.5", "127.0.0.1", "127.0.0.6"]})
    config = ClusterConfig(
        {"swarm": DnsPollConfig(query=SERVICE, node_basename="d", nameservers=(server.address,))}
    )
    assert await resolve_own_host(config, environ={}, timeout=5) == "127.0.0.1"


async def test_confirmed_by_a_resolver_refusing_aaaa(dnsmasq_factory: DnsmasqFactory) -> None:
    server = dnsmasq_factory(local_domains=[])
    server.set_hosts({SERVICE: ["127.0.0.5", "127.0.0.1"]})
    config = ClusterConfig(
        {"swarm": DnsPollConfig(query=SERVICE, node_basename="d", nameservers=(server.address,))}
    )
    host = await resolve_own_host(config, environ={}, timeout=2, confirm_timeout=2)
    assert host == "127.0.0.1"


async def test_unconfirmed_address_after_timeout(dnsmasq_factory: DnsmasqFactory) -> None:
    server = dnsmasq_factory(local_domains=["t_cluster_demo"])
    server.set_hosts({SERVICE: ["127.0.0.5"]})
    config = ClusterConfig(
        {"swarm": DnsPollConfig(query=SERVICE, node_basename="d", nameservers=(server.address,))}
    )
    host = await resolve_own_host(config, environ={}, timeout=0.2, retry_interval=0.05)
    assert host == "127.0.0.1"


async def test_waits_until_dns_lists_this_node(dnsmasq_factory: DnsmasqFactory) -> None:
    server = dnsmasq_factory(local_domains=["t_cluster_demo"])
    config = ClusterConfig(
        {"swarm": DnsPollConfig(query=SERVICE, node_basename="d", nameservers=(server.address,))}
    )
    with pytest.raises(AddressError, match="BEAMLINK_HOST"):
        await resolve_own_host(config, environ={}, timeout=0.2, retry_interval=0.05)


async def test_static_hosts_and_peers() -> None:
    config = ClusterConfig({"e": EpmdConfig(hosts=("a@127.0.0.1",))})
    assert await resolve_own_host(config, environ={}, timeout=1) == "127.0.0.1"
    assert await resolve_own_host(peers=["::1"], environ={}, timeout=1) == "::1"
    assert choose_address([]) == (None, False)


async def test_swarm_service_address_is_a_route_hint(dnsmasq_factory: DnsmasqFactory) -> None:
    """A starting Swarm task is not yet in tasks.X, but the route toward X (the VIP) finds it."""
    server = dnsmasq_factory(local_domains=["t_cluster_demo"])
    server.set_hosts({SERVICE.removeprefix("tasks."): ["127.0.0.1"]})
    config = ClusterConfig(
        {"swarm": DnsPollConfig(query=SERVICE, node_basename="d", nameservers=(server.address,))}
    )
    host = await resolve_own_host(config, environ={}, timeout=5, confirm_timeout=0.1,
                                  retry_interval=0.05)
    assert host == "127.0.0.1"
