"""This node's own address for ``basename@auto``: the one its peers reach it at.

Order: ``BEAMLINK_HOST``, then ``POD_IP`` (env overrides); else ask the kernel. For every address
the DNS topologies discover (and every configured peer host), connect a UDP socket toward it
(nothing is sent) and read the local address the route picks. That address is confirmed, and
wins, when it is itself among the discovered ones, or when the kernel reaches a discovered
address directly on a link (its main routing table has a route without gateway to it, read from
``/proc/net/route`` and ``/proc/net/ipv6_route``): nothing translates the address between
neighbours, so that peer sees this one. In a container on several networks (Swarm ingress,
docker_gwbridge, the overlay) the route toward a ``tasks.<service>`` peer leaves from the overlay
address, the one in ``tasks.<service>``. Never ``hostname -i``.

Docker Swarm lists a task in ``tasks.<service>`` only once it is healthy, so a starting replica
cannot find itself there; a replica started next to running ones (scaling up, a replacement)
finds them there, and its overlay link to them confirms its address at the first lookup, with no
wait for its own health check. For a query ``tasks.X`` the service name ``X`` (the service's
virtual IP) is also resolved as a route hint. An address found only through hints or gateways
(or toward peers that do not list us) is used once ``confirm_timeout`` has passed without
confirmation. With nothing at all to route toward (the first replicas of a new service), the
lookup is retried until ``timeout``; then ``AddressError`` says what to set.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from beamlink.cluster.schema import ClusterConfig
from beamlink.cluster.strategies.base import DiscoveryError
from beamlink.cluster.strategies.dns import AddressLookup, Resolver
from beamlink.errors import ConfigurationError

log = logging.getLogger("beamlink.cluster")

HOST_ENV_VARS = ("BEAMLINK_HOST", "POD_IP")
_DISCARD_PORT = 9


class AddressError(ConfigurationError, RuntimeError):
    """No address could be chosen for ``@auto``."""


def route_source(destination: str) -> str | None:
    """The local address the kernel would send from toward ``destination`` (no packet sent)."""
    family = socket.AF_INET6 if ":" in destination else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((destination, _DISCARD_PORT))
        except OSError:
            return None
        return str(sock.getsockname()[0])


Route = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int, bool]  # (net, metric, gateway)

IPV4_ROUTES = Path("/proc/net/route")
IPV6_ROUTES = Path("/proc/net/ipv6_route")
_RTF_UP = 0x1
_RTF_GATEWAY = 0x2
_RTF_REJECT = 0x200


def parse_ipv4_routes(text: str) -> list[Route]:
    """The usable routes of a ``/proc/net/route`` text (Linux's main IPv4 table).

    Addresses and masks are the kernel's 32-bit values in hexadecimal, host byte order; the
    metric is decimal."""
    routes: list[Route] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination, flags, mask = (int(fields[i], 16) for i in (1, 3, 7))
            metric = int(fields[6])
            network = ipaddress.IPv4Network(
                (destination.to_bytes(4, sys.byteorder), bin(mask).count("1")), strict=False
            )
        except ValueError:
            continue
        if flags & _RTF_UP and not flags & _RTF_REJECT:
            routes.append((network, metric, bool(flags & _RTF_GATEWAY)))
    return routes


def parse_ipv6_routes(text: str) -> list[Route]:
    """The usable routes of a ``/proc/net/ipv6_route`` text (every IPv6 table)."""
    routes: list[Route] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            network = ipaddress.IPv6Network(
                (bytes.fromhex(fields[0]), int(fields[1], 16)), strict=False
            )
            metric, flags = int(fields[5], 16), int(fields[8], 16)
        except ValueError:
            continue
        if flags & _RTF_UP and not flags & _RTF_REJECT:
            routes.append((network, metric, bool(flags & _RTF_GATEWAY)))
    return routes


def on_link(destination: str, routes: Iterable[Route]) -> bool:
    """True when the best of ``routes`` toward ``destination`` (longest prefix, then lowest
    metric) has no gateway; False when it has one or none matches."""
    address = ipaddress.ip_address(destination)
    best: Route | None = None
    for route in routes:
        network, metric, _ = route
        if address.version != network.version or address not in network:
            continue
        if best is None or (network.prefixlen, -metric) > (best[0].prefixlen, -best[1]):
            best = route
    return best is not None and not best[2]


def kernel_routes() -> list[Route]:
    """The routes of this host's network namespace (empty where ``/proc`` has none)."""
    routes: list[Route] = []
    for path, parse in ((IPV4_ROUTES, parse_ipv4_routes), (IPV6_ROUTES, parse_ipv6_routes)):
        try:
            routes.extend(parse(path.read_text()))
        except OSError:
            continue
    return routes


def _routes_when_read() -> Iterator[Route]:
    """`kernel_routes`, read only once iterated (most lookups never need them)."""
    yield from kernel_routes()


def choose_address(
    discovered: Iterable[str], hints: Iterable[str] = (), routes: Iterable[Route] = ()
) -> tuple[str | None, bool]:
    """``(address, confirmed)``: a routed local address, confirmed if it is in ``discovered`` or
    ``routes`` reach a discovered address without gateway.

    Routes toward ``discovered`` addresses are tried first, then toward ``hints``. ``routes`` is
    iterated only when a route source is not itself discovered (a lazy iterable then reads the
    routing table only when it is needed).
    """
    addresses = [str(ipaddress.ip_address(a)) for a in discovered]
    known = set(addresses)
    table: list[Route] | None = None  # ``routes``, iterated only when first needed
    first: str | None = None
    neighbour: str | None = None
    for destination in [*addresses, *(str(ipaddress.ip_address(h)) for h in hints)]:
        source = route_source(destination)
        if source is None:
            continue
        if source in known:
            return source, True
        if neighbour is None and destination in known:
            table = list(routes) if table is None else table
            if on_link(destination, table):
                neighbour = source
        first = first or source
    if neighbour is not None:
        return neighbour, True
    return first, False


def _dns_lookups(config: ClusterConfig | None) -> list[tuple[AddressLookup, AddressLookup | None]]:
    """For each name the DNS topologies of ``config`` ask for: its lookup, and for a ``tasks.X``
    name the lookup of ``X`` (the service address, a route hint). Built once per resolution, so
    a family that fails on a retry keeps the answer it gave before."""
    if config is None:
        return []
    lookups: list[tuple[AddressLookup, AddressLookup | None]] = []
    for topology in config.topologies.values():
        listing = topology.dns_listing()
        if listing is None:
            continue
        resolver = Resolver(listing.nameservers, listing.timeout_ms)
        query = listing.query
        service = query[len("tasks."):] if query.startswith("tasks.") else ""
        lookups.append(
            (AddressLookup(resolver, query), AddressLookup(resolver, service) if service else None)
        )
    return lookups


async def _config_addresses(
    config: ClusterConfig | None, lookups: list[tuple[AddressLookup, AddressLookup | None]]
) -> tuple[list[str], list[str]]:
    """``(discovered, hints)``: addresses the topologies of ``config`` point at (DNS answers of
    ``lookups``, peers, static hosts), and the service addresses behind ``tasks.X`` names."""
    if config is None:
        return [], []
    found: list[str] = []
    hints: list[str] = []
    services = [service for _, service in lookups if service is not None]
    hosts = [host for topology in config.topologies.values() for host in topology.peer_hosts()]
    loop = asyncio.get_running_loop()
    answers, peers = await asyncio.gather(  # every name at once: one round trip, not one per name
        asyncio.gather(
            *(lookup.addresses() for lookup, _ in lookups),
            *(service.addresses() for service in services),
            return_exceptions=True,
        ),
        asyncio.gather(
            *(loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM) for host in hosts),
            return_exceptions=True,
        ),
    )
    for index, answer in enumerate(answers):
        listing = index < len(lookups)
        if isinstance(answer, DiscoveryError):
            if listing:
                log.warning("own address: %s", answer)
            else:
                log.debug("own address: no service address: %s", answer)
        elif isinstance(answer, BaseException):
            raise answer
        else:
            (found if listing else hints).extend(answer)
    for infos in peers:  # a static host that does not resolve is skipped
        if isinstance(infos, OSError):
            continue
        if isinstance(infos, BaseException):
            raise infos
        found.extend(str(info[4][0]) for info in infos)
    return list(dict.fromkeys(found)), list(dict.fromkeys(hints))


async def resolve_own_host(
    config: ClusterConfig | None = None,
    *,
    peers: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    confirm_timeout: float = 3.0,
    retry_interval: float = 0.5,
) -> str:
    """The host part for ``basename@auto`` (see the module docstring).

    ``peers`` adds known peer addresses to those the topologies discover.
    """
    env = os.environ if environ is None else environ
    for variable in HOST_ENV_VARS:
        value = env.get(variable, "").strip()
        if value:
            return value
    started = time.monotonic()
    lookups = _dns_lookups(config)
    while True:
        found, hints = await _config_addresses(config, lookups)
        discovered = [*peers, *found]
        address, confirmed = choose_address(discovered, hints, _routes_when_read())
        if confirmed and address is not None:
            return address
        waited = time.monotonic() - started
        if waited >= timeout or (address is not None and waited >= confirm_timeout):
            break
        await asyncio.sleep(retry_interval)
    if address is not None:
        log.warning(
            "own address %s is not among the discovered addresses %s; set BEAMLINK_HOST to override",
            address,
            sorted(set(discovered)),
        )
        return address
    raise AddressError(
        "cannot choose this node's address for @auto: no peer or DNS answer to route toward; "
        "set BEAMLINK_HOST (or POD_IP), or configure a dns_poll topology"
    )
