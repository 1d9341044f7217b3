"""Strategy implementations, imported only when used: each config class names its own
(``TopologyConfig.implementation``), so there is no table here to keep in step.

Lazy import keeps optional dependencies (httpx, cryptography, the EPMD client) out of a node
that only uses ``dns_poll``.
"""

from __future__ import annotations

import importlib
from typing import Any

from beamlink.cluster.schema import TopologyConfig
from beamlink.cluster.strategies.base import Discovery, DiscoveryError, Strategy, StrategyContext


def create_strategy(config: TopologyConfig, context: StrategyContext) -> Strategy[Any]:
    """Instantiate the strategy implementing ``config``."""
    if not config.implementation:
        raise TypeError(f"{type(config).__name__} names no strategy implementation")
    module_name, _, class_name = config.implementation.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    strategy: Strategy[Any] = cls(config, context)
    return strategy


__all__ = ["Discovery", "DiscoveryError", "Strategy", "StrategyContext", "create_strategy"]
