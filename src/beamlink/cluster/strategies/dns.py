"""DNS strategies: ``dns_poll``, ``kubernetes_dns`` (A/AAAA) and ``kubernetes_dnssrv`` (SRV).

Built on dnspython's async resolver, with no cache, no EDNS (so answers over 512 bytes arrive
truncated and the resolver retries them over TCP: the cluster is never capped by the size of a
UDP answer) and either the system resolver or the configured ``nameservers``.

Error semantics, the part libcluster gets wrong: NXDOMAIN and "no records of this type" are real
answers (no nodes); timeouts, SERVFAIL, REFUSED and network errors raise ``DiscoveryError``, so
the reconcile loop keeps the last good answer instead of disconnecting everyone.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import TypeVar

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from beamlink.cluster.schema import (
    DnsOptions,
    DnsPollConfig,
    KubernetesDnsConfig,
    KubernetesDnsSrvConfig,
    split_host_port,
)
from beamlink.cluster.strategies.base import Discovery, DiscoveryError, Strategy, StrategyContext

_NO_RECORDS = (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer)

DnsConfigT = TypeVar("DnsConfigT", bound=DnsOptions)


def make_resolver(nameservers: tuple[str, ...], timeout_ms: int) -> dns.asyncresolver.Resolver:
    """An uncached resolver: the system one, or one asking ``host:port`` servers only."""
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
    resolver.lifetime = timeout_ms / 1000
    resolver.timeout = min(resolver.lifetime, 2.0)
    return resolver


async def resolve(resolver: dns.asyncresolver.Resolver, query: str, rdtype: str) -> list[str]:
    """The records of ``query`` as text (empty for NXDOMAIN/NODATA); DiscoveryError otherwise."""
    try:
        answer = await resolver.resolve(query, rdtype, search=True)
    except _NO_RECORDS:
        return []
    except dns.exception.DNSException as exc:
        raise DiscoveryError(f"{rdtype} {query}: {exc}") from exc
    return [rdata.to_text() for rdata in answer]


async def resolve_addresses(resolver: dns.asyncresolver.Resolver, query: str) -> list[str]:
    """A and AAAA records of ``query`` together (both must answer, else DiscoveryError)."""
    v4, v6 = await asyncio.gather(resolve(resolver, query, "A"), resolve(resolver, query, "AAAA"))
    return [str(ipaddress.ip_address(address)) for address in [*v4, *v6]]


class _DnsStrategy(Strategy[DnsConfigT]):
    """A strategy that asks DNS: one resolver, built once (reading resolv.conf once), per topology."""

    def __init__(self, config: DnsConfigT, context: StrategyContext) -> None:
        super().__init__(config, context)
        self.resolver = make_resolver(config.nameservers, config.dns_timeout)


class _AddressStrategy(_DnsStrategy[DnsConfigT]):
    """``basename@<ip>`` for every A/AAAA record of a name."""

    def _query_and_basename(self) -> tuple[str, str]:
        raise NotImplementedError

    async def discover(self) -> Discovery:
        query, basename = self._query_and_basename()
        addresses = await resolve_addresses(self.resolver, query)
        return Discovery(frozenset(f"{basename}@{address}" for address in addresses))


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
        records = await resolve(self.resolver, self.config.query, "SRV")
        targets = {record.split()[3].rstrip(".") for record in records}
        app = self.config.application_name
        return Discovery(frozenset(f"{app}@{target}" for target in targets if target))
