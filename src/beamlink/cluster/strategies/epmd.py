"""EPMD-based strategies: ``epmd`` (static names), ``local_epmd`` and ``erlang_hosts``.

``local_epmd`` and ``erlang_hosts`` ask EPMD servers for their registered names (NAMES) and turn
them into ``name@host``. Anyone who can register in such an EPMD chooses those names, so only the
names matching the topology's ``allow`` list are returned (see ``allow``). An unreachable EPMD is an error for that host only: its last good list
stays in force, and only when no host answers does the round fail as a whole.
"""

from __future__ import annotations

import asyncio
import logging

from beamlink.cluster.hosts_erlang import HostsFileError, find_hosts_file, parse_hosts_erlang
from beamlink.cluster.schema import EpmdConfig, ErlangHostsConfig, LocalEpmdConfig
from beamlink.cluster.strategies.allow import AllowList
from beamlink.cluster.strategies.base import Discovery, DiscoveryError, Strategy, StrategyContext
from beamlink.epmd import EpmdError, names

LOCAL_EPMD_HOST = "127.0.0.1"

log = logging.getLogger("beamlink.cluster")


class EpmdStrategy(Strategy[EpmdConfig]):
    """libcluster's Epmd: always the configured ``hosts``; the loop retries until connected."""

    async def discover(self) -> Discovery:
        return Discovery(frozenset(self.config.hosts))


async def _names_on(host: str, epmd_port: int | None) -> list[str]:
    try:
        registered = await names(host, epmd_port=epmd_port)
    except (EpmdError, OSError, asyncio.TimeoutError) as exc:
        raise DiscoveryError(f"EPMD on {host}: {exc or type(exc).__name__}") from exc
    return [f"{name}@{host}" for name, _port in registered]


class LocalEpmdStrategy(Strategy[LocalEpmdConfig]):
    """libcluster's LocalEpmd: nodes registered in the EPMD of this host, named ``x@<own host>``,
    that match ``allow``."""

    def __init__(self, config: LocalEpmdConfig, context: StrategyContext) -> None:
        super().__init__(config, context)
        self.allow = AllowList(context.topology, config.allow)

    async def discover(self) -> Discovery:
        host = self.context.self_host
        registered = await _names_on(LOCAL_EPMD_HOST, self.config.epmd_port)
        return Discovery(self.allow.filter(f"{n.partition('@')[0]}@{host}" for n in registered))


class ErlangHostsStrategy(Strategy[ErlangHostsConfig]):
    """libcluster's ErlangHosts: hosts from ``.hosts.erlang``, then the names on each EPMD."""

    def __init__(self, config: ErlangHostsConfig, context: StrategyContext) -> None:
        super().__init__(config, context)
        self.allow = AllowList(context.topology, config.allow)
        self._last_good: dict[str, frozenset[str]] = {}

    def _hosts(self) -> list[str]:
        path = find_hosts_file(self.config.hosts_file)
        if path is None:
            raise DiscoveryError("no .hosts.erlang in the current or home directory")
        try:
            return parse_hosts_erlang(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, HostsFileError) as exc:
            raise DiscoveryError(f"{path}: {exc}") from exc

    async def discover(self) -> Discovery:
        hosts = self._hosts()
        results = await asyncio.gather(
            *(_names_on(host, self.config.epmd_port) for host in hosts), return_exceptions=True
        )
        errors = []
        for host, result in zip(hosts, results, strict=True):
            if isinstance(result, DiscoveryError):
                errors.append(str(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                self._last_good[host] = self.allow.filter(result)
        if hosts and len(errors) == len(hosts):
            raise DiscoveryError("; ".join(errors))
        for error in errors:
            log.warning("[%s] keeping the last names of a host: %s", self.context.topology, error)
        nodes = frozenset().union(*(self._last_good.get(host, frozenset()) for host in hosts))
        return Discovery(nodes)
