"""What a strategy is: something that discovers node names, and nothing else.

A strategy never connects or disconnects: ``discover()`` returns a ``Discovery`` (the names to
be connected, plus ``draining`` names that must be neither connected nor disconnected, such as
terminating pods) or raises ``DiscoveryError``. The reconcile loop in ``beamlink.cluster.topology``
owns every side effect on membership, so a failing strategy can never shrink the cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from beamlink.cluster.events import ClusterEvent
from beamlink.cluster.schema import TopologyConfig
from beamlink.errors import BeamlinkError

ConfigT = TypeVar("ConfigT", bound=TopologyConfig)


class DiscoveryError(BeamlinkError):
    """Discovery could not produce an answer this round (never means "no nodes")."""


@dataclass(frozen=True)
class Discovery:
    """One discovery answer: names to connect, and names to leave alone while they drain."""

    nodes: frozenset[str]
    draining: frozenset[str] = frozenset()


@dataclass(frozen=True)
class StrategyContext:
    """What a strategy may know about its surroundings."""

    topology: str
    self_name: str
    emit: Callable[[ClusterEvent], None]
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def self_host(self) -> str:
        return self.self_name.partition("@")[2]


class Strategy(Generic[ConfigT]):
    """Base of every strategy; subclasses implement ``discover`` and may hold resources.

    ``start`` runs once before the first ``discover`` and ``close`` once after the last one
    (also on crash and cancellation). A push-style strategy (gossip) sets ``context.wakeup``
    when it learns something new, so the loop polls at once instead of at the next interval.
    """

    def __init__(self, config: ConfigT, context: StrategyContext) -> None:
        self.config = config
        self.context = context

    async def start(self) -> None:
        """Acquire resources (sockets, clients)."""

    async def discover(self) -> Discovery:
        raise NotImplementedError

    async def close(self) -> None:
        """Release what ``start`` acquired."""
