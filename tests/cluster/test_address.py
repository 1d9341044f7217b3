"""``basename@auto``: env overrides, routing toward discovered peers (real dnsmasq), neighbours
on a link (the kernel's routing tables), errors."""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beamlink.cluster import address
from beamlink.cluster.address import (
    AddressError,
    choose_address,
    on_link,
    parse_ipv4_routes,
    parse_ipv6_routes,
    resolve_own_host,
)
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


# What `ip route` shows as "default via 10.0.1.1", "10.0.1.0/24 dev eth0" and "blackhole
# 10.9.0.0/16" in a container; the header line is the kernel's.
IPV4_ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth1\t00000000\t0101000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
lo\t0000090A\t00000000\t0201\t0\t0\t0\t0000FFFF\t0\t0\t0
"""
IPV6_ROUTES = (
    "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n"
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n"
)


def ipv4_route_line(network: ipaddress.IPv4Network, flags: int, metric: int) -> str:
    """A /proc/net/route line as the kernel prints it (32-bit values in host byte order)."""
    def word(packed: bytes) -> str:
        return f"{int.from_bytes(packed, sys.byteorder):08X}"

    return (f"eth0\t{word(network.network_address.packed)}\t00000000\t{flags:04X}\t0\t0\t"
            f"{metric}\t{word(network.netmask.packed)}\t0\t0\t0")


def test_kernel_route_tables_are_parsed() -> None:
    routes = parse_ipv4_routes(IPV4_ROUTES)
    assert routes == [
        (ipaddress.ip_network("0.0.0.0/0"), 0, True),
        (ipaddress.ip_network("10.0.1.0/24"), 0, False),
    ]
    assert on_link("10.0.1.7", routes) and not on_link("8.8.8.8", routes)
    assert not on_link("10.9.0.1", routes)  # the blackhole is skipped: the default gateway wins
    routes6 = parse_ipv6_routes(IPV6_ROUTES)
    assert on_link("fd00::7", routes6) and not on_link("2001:db8::1", routes6)
    assert not on_link("fd00::7", routes) and not on_link("10.0.1.7", [])
    assert parse_ipv4_routes("Iface\tDestination\neth0\tjunk\n") == []
    assert parse_ipv6_routes("short line\n") == []


@given(
    st.ip_addresses(v=4), st.integers(0, 32), st.booleans(), st.integers(0, 2**16),
    st.ip_addresses(v=4),
)
def test_ipv4_route_lines_round_trip(
    base: ipaddress.IPv4Address, prefix: int, gateway: bool, metric: int,
    probe: ipaddress.IPv4Address,
) -> None:
    network = ipaddress.IPv4Network((base, prefix), strict=False)
    line = ipv4_route_line(network, 0x1 | (0x2 if gateway else 0), metric)
    routes = parse_ipv4_routes("header\n" + line)
    assert routes == [(network, metric, gateway)]
    assert on_link(str(probe), routes) == (probe in network and not gateway)


def test_longest_prefix_then_lowest_metric_wins() -> None:
    wide = (ipaddress.ip_network("10.0.0.0/8"), 0, False)
    narrow_via_gateway = (ipaddress.ip_network("10.0.1.0/24"), 50, True)
    assert on_link("10.0.2.1", [wide, narrow_via_gateway])
    assert not on_link("10.0.1.1", [wide, narrow_via_gateway])
    direct = (ipaddress.ip_network("10.0.1.0/24"), 100, False)
    assert not on_link("10.0.1.1", [direct, narrow_via_gateway])
    assert on_link("10.0.1.1", [(direct[0], 1, False), narrow_via_gateway])


def test_a_neighbour_on_a_link_confirms_the_route_source() -> None:
    loopback = ipaddress.ip_network("127.0.0.0/8")
    assert choose_address(["127.0.0.5"], routes=[(loopback, 0, False)]) == ("127.0.0.1", True)
    assert choose_address(["127.0.0.5"], routes=[(loopback, 0, True)]) == ("127.0.0.1", False)
    # A service address (a hint) is not a peer: it confirms nothing.
    assert choose_address([], ["127.0.0.5"], [(loopback, 0, False)]) == ("127.0.0.1", False)


async def test_new_replica_next_to_listed_peers_needs_no_dns_entry_of_its_own(
    dnsmasq_factory: DnsmasqFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scaled-up Swarm task: tasks.X lists only its peers, which are on its link, so its
    address is confirmed at once, long before its own health check could list it."""
    routes = tmp_path / "route"
    loopback = ipaddress.IPv4Network("127.0.0.0/8")
    routes.write_text("header\n" + ipv4_route_line(loopback, 0x1, 0) + "\n")
    monkeypatch.setattr(address, "IPV4_ROUTES", routes)
    server = dnsmasq_factory(local_domains=["t_cluster_demo"])
    server.set_hosts({SERVICE: ["127.0.0.5", "127.0.0.6"]})
    config = ClusterConfig(
        {"swarm": DnsPollConfig(query=SERVICE, node_basename="d", nameservers=(server.address,))}
    )
    lookup = resolve_own_host(config, environ={}, timeout=600, confirm_timeout=600)
    assert await asyncio.wait_for(lookup, 60) == "127.0.0.1"
