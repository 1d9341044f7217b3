"""Strategy implementations, looked up by config class and imported only when used.

Lazy import keeps optional dependencies (httpx, cryptography, the EPMD client) out of a node
that only uses ``dns_poll``.
"""

from __future__ import annotations

import importlib
from typing import Any

from beamlink.cluster.config import TopologyConfig
from beamlink.cluster.strategies.base import Discovery, DiscoveryError, Strategy, StrategyContext

_IMPLEMENTATIONS = {
    "dns_poll": "beamlink.cluster.strategies.dns:DnsPollStrategy",
    "kubernetes_dns": "beamlink.cluster.strategies.dns:KubernetesDnsStrategy",
    "kubernetes_dnssrv": "beamlink.cluster.strategies.dns:KubernetesDnsSrvStrategy",
    "kubernetes": "beamlink.cluster.strategies.kubernetes:KubernetesStrategy",
    "epmd": "beamlink.cluster.strategies.epmd:EpmdStrategy",
    "local_epmd": "beamlink.cluster.strategies.epmd:LocalEpmdStrategy",
    "erlang_hosts": "beamlink.cluster.strategies.epmd:ErlangHostsStrategy",
    "gossip": "beamlink.cluster.strategies.gossip:GossipStrategy",
}


def create_strategy(config: TopologyConfig, context: StrategyContext) -> Strategy[Any]:
    """Instantiate the strategy implementing ``config``."""
    module_name, _, class_name = _IMPLEMENTATIONS[config.strategy].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    strategy: Strategy[Any] = cls(config, context)
    return strategy


__all__ = ["Discovery", "DiscoveryError", "Strategy", "StrategyContext", "create_strategy"]
