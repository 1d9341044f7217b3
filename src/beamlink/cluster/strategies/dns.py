"""DNS strategies: ``dns_poll``, ``kubernetes_dns`` (A/AAAA) and ``kubernetes_dnssrv`` (SRV).

Built on dnspython's async resolver, with no cache, no EDNS (so answers over 512 bytes arrive
truncated and the resolver retries them over TCP: the cluster is never capped by the size of a
UDP answer) and either the system resolver or the configured ``nameservers``.

Start-up cost: importing dnspython takes about as much CPU as starting Python itself, and a new
replica should not spend it before its first poll. So a `Resolver` for the system's resolver
(no ``nameservers``) answers A and AAAA queries through the C library (``getaddrinfo``, one call
per family, in the loop's executor, bounded by ``dns_timeout``) until dnspython is loaded
(`load_dnspython`), which a DNS strategy does in a thread `DNSPYTHON_DELAY` after it started:
the replicas of a scale-up start together, and one that is up should not take CPU from those
still starting. Both ask the same servers (``/etc/resolv.conf``, search domains and all); only
dnspython sets its own per-server timeouts. With ``nameservers``, and for SRV, dnspython is used
from the start.

Error semantics, the part libcluster gets wrong: NXDOMAIN and "no records of this type" are real
answers (no nodes); timeouts, SERVFAIL, REFUSED and network errors raise ``DiscoveryError``, so
the reconcile loop keeps the last good answer instead of disconnecting everyone. (The C library
reports NXDOMAIN and NODATA as ``EAI_NONAME``/``EAI_NODATA``, the failures as ``EAI_AGAIN`` or
``EAI_FAIL``.)

A and AAAA are independent answers (``AddressLookup``): each family that answers is used, and a
family whose query fails keeps its own last good answer (initially none) and is logged, at most
once a minute per name and family. Only when every family fails is the lookup a
``DiscoveryError``. Resolvers that answer one family and refuse the other are common: dnsmasq
serving a hosts file with no upstream (and no ``--local``) REFUSES the type it has no record for.
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING, TypeVar

from beamlink.cluster.events import CLUSTER_LOG_INTERVAL
from beamlink.cluster.schema import (
    DnsOptions,
    DnsPollConfig,
    KubernetesDnsConfig,
    KubernetesDnsSrvConfig,
    split_host_port,
)
from beamlink.cluster.strategies.base import Discovery, DiscoveryError, Strategy, StrategyContext
from beamlink.logs import RateLimiter

if TYPE_CHECKING:
    import dns.asyncresolver

log = logging.getLogger("beamlink.cluster")

DnsConfigT = TypeVar("DnsConfigT", bound=DnsOptions)

_DNSPYTHON = ("dns.asyncresolver", "dns.exception", "dns.nameserver", "dns.rdatatype", "dns.resolver")
_dnspython_loaded = False
DNSPYTHON_DELAY = 3.0  # seconds after a DNS strategy starts until it loads dnspython
# getaddrinfo's "no such name" and "no address of this family": answers, not failures.
_NO_ADDRESS = frozenset(
    getattr(socket, code) for code in ("EAI_NONAME", "EAI_NODATA", "EAI_ADDRFAMILY")
    if hasattr(socket, code)
)
_FAMILY = {"A": socket.AF_INET, "AAAA": socket.AF_INET6}


def load_dnspython() -> None:
    """Import dnspython; from then on every `Resolver` uses it (blocking: run it in a thread)."""
    global _dnspython_loaded
    for module in _DNSPYTHON:
        importlib.import_module(module)
    _dnspython_loaded = True


def _dnspython_resolver(nameservers: tuple[str, ...], timeout: float) -> dns.asyncresolver.Resolver:
    """An uncached dnspython resolver: the system one, or one asking ``host:port`` servers only."""
    load_dnspython()
    import dns.asyncresolver
    import dns.nameserver

    if nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        servers: list[str | dns.nameserver.Nameserver] = []
        for server in nameservers:
            host, port = split_host_port(server, 53)
            servers.append(dns.nameserver.Do53Nameserver(host, port))
        resolver.nameservers = servers
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.cache = None
    resolver.lifetime = timeout
    resolver.timeout = min(resolver.lifetime, 2.0)
    return resolver


class Resolver:
    """Uncached DNS queries for the strategies: the system's resolver, or ``nameservers``
    (``host`` or ``host:port``) only; each query bounded by ``timeout_ms``.

    ``resolve`` returns the records as text, an empty list for NXDOMAIN and NODATA, and raises
    ``DiscoveryError`` for everything else. A system resolver answers A/AAAA through
    ``getaddrinfo`` until dnspython is loaded (module docstring).
    """

    def __init__(self, nameservers: tuple[str, ...], timeout_ms: int) -> None:
        self.nameservers = nameservers
        self.timeout = timeout_ms / 1000
        self._dnspython: dns.asyncresolver.Resolver | None = None
        if nameservers:
            self._dnspython = _dnspython_resolver(nameservers, self.timeout)

    @property
    def uses_dnspython(self) -> bool:
        """True once queries go through dnspython (always with ``nameservers``)."""
        return self._dnspython is not None or _dnspython_loaded

    async def resolve(self, query: str, rdtype: str) -> list[str]:
        """The records of ``query`` as text (empty for NXDOMAIN/NODATA); DiscoveryError otherwise."""
        if self._dnspython is None and (_dnspython_loaded or rdtype not in _FAMILY):
            self._dnspython = _dnspython_resolver(self.nameservers, self.timeout)
        if self._dnspython is None:
            return await self._getaddrinfo(query, rdtype)
        import dns.exception
        import dns.resolver

        try:
            answer = await self._dnspython.resolve(query, rdtype, search=True)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise DiscoveryError(f"{rdtype} {query}: {exc}") from exc
        return [rdata.to_text() for rdata in answer]

    async def _getaddrinfo(self, query: str, rdtype: str) -> list[str]:
        loop = asyncio.get_running_loop()
        lookup = loop.getaddrinfo(query, None, family=_FAMILY[rdtype], type=socket.SOCK_STREAM)
        try:
            infos = await asyncio.wait_for(lookup, self.timeout)
        except socket.gaierror as exc:
            if exc.errno in _NO_ADDRESS:
                return []
            raise DiscoveryError(f"{rdtype} {query}: {exc.strerror}") from exc
        except asyncio.TimeoutError as exc:
            raise DiscoveryError(f"{rdtype} {query}: no answer within {self.timeout:g} s") from exc
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


FAMILIES = ("A", "AAAA")


class AddressLookup:
    """The A and AAAA records of one name, each family answering on its own.

    ``addresses()`` asks both families at once. A family that answers (records, NXDOMAIN or
    NODATA) replaces its last good answer; a family that fails (timeout, SERVFAIL, REFUSED,
    network error) keeps it and is logged (once a minute per family); when every family fails, it raises
    ``DiscoveryError`` naming each failure. Keep one lookup per name for as long as the last
    good answers should be remembered.
    """

    def __init__(self, resolver: Resolver, query: str) -> None:
        self.resolver = resolver
        self.query = query
        self.last_good: dict[str, tuple[str, ...]] = {family: () for family in FAMILIES}
        self._failures = RateLimiter(CLUSTER_LOG_INTERVAL)

    async def addresses(self) -> list[str]:
        """Addresses of every family: fresh where the family answered, its last good otherwise."""
        results = await asyncio.gather(
            *(self.resolver.resolve(self.query, family) for family in FAMILIES),
            return_exceptions=True,
        )
        errors: list[tuple[str, DiscoveryError]] = []
        for family, result in zip(FAMILIES, results, strict=True):
            if isinstance(result, DiscoveryError):
                errors.append((family, result))
            elif isinstance(result, BaseException):
                raise result
            else:
                self.last_good[family] = tuple(str(ipaddress.ip_address(a)) for a in result)
        if len(errors) == len(FAMILIES):
            raise DiscoveryError("; ".join(str(error) for _, error in errors))
        for family, error in errors:
            self._log_failure(family, error)
        return [address for family in FAMILIES for address in self.last_good[family]]

    def _log_failure(self, family: str, error: DiscoveryError) -> None:
        kept = self.last_good[family]
        self._failures.log(
            log,
            logging.WARNING,
            family,
            "DNS %s; keeping the last %s answer (%s) and using the families that answered. "
            "Harmless if this resolver never serves %s records (dnsmasq with only a hosts file "
            "refuses them); otherwise check the resolver",
            error,
            family,
            ", ".join(kept) if kept else "no addresses",
            family,
        )


class _DnsStrategy(Strategy[DnsConfigT]):
    """A strategy that asks DNS: one resolver, built once (reading resolv.conf once), per topology;
    dnspython loaded in a thread `DNSPYTHON_DELAY` after the start if the resolver lacks it."""

    def __init__(self, config: DnsConfigT, context: StrategyContext) -> None:
        super().__init__(config, context)
        self.resolver = Resolver(config.nameservers, config.dns_timeout)
        self._loader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self.resolver.uses_dnspython:
            self._loader = asyncio.create_task(_load_later(), name="beamlink-load-dnspython")

    async def close(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
            self._loader = None


async def _load_later() -> None:
    await asyncio.sleep(DNSPYTHON_DELAY)
    await asyncio.to_thread(load_dnspython)


class _AddressStrategy(_DnsStrategy[DnsConfigT]):
    """``basename@<ip>`` for every A/AAAA record of a name."""

    def __init__(self, config: DnsConfigT, context: StrategyContext) -> None:
        super().__init__(config, context)
        query, self.basename = self._query_and_basename()
        self.lookup = AddressLookup(self.resolver, query)

    def _query_and_basename(self) -> tuple[str, str]:
        raise NotImplementedError

    async def discover(self) -> Discovery:
        addresses = await self.lookup.addresses()
        return Discovery(frozenset(f"{self.basename}@{address}" for address in addresses))


class DnsPollStrategy(_AddressStrategy[DnsPollConfig]):
    """libcluster's DNSPoll: ``node_basename@<ip>`` for each A/AAAA record of ``query``."""

    def _query_and_basename(self) -> tuple[str, str]:
        return self.config.query, self.config.node_basename


class KubernetesDnsStrategy(_AddressStrategy[KubernetesDnsConfig]):
    """libcluster's Kubernetes.DNS: the pods behind a headless ``service``."""

    def _query_and_basename(self) -> tuple[str, str]:
        return self.config.service, self.config.application_name


class KubernetesDnsSrvStrategy(_DnsStrategy[KubernetesDnsSrvConfig]):
    """libcluster's Kubernetes.DNSSRV: ``application_name@<target>`` for each SRV record."""

    async def discover(self) -> Discovery:
        records = await self.resolver.resolve(self.config.query, "SRV")
        targets = {record.split()[3].rstrip(".") for record in records}
        app = self.config.application_name
        return Discovery(frozenset(f"{app}@{target}" for target in targets if target))
