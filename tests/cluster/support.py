"""Shared helpers for the cluster tests: an in-memory membership and a scripted strategy.

The in-memory membership records every call with timestamps so tests can assert concurrency and
the absence of overlapping polls; it stands in for ``beamlink.node.Node`` in reconcile-loop unit
tests only (integration tests use real nodes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from beamlink.cluster.events import ClusterEvent
from beamlink.cluster.schema import TopologyConfig
from beamlink.cluster.strategies import Discovery, DiscoveryError, Strategy, StrategyContext


@dataclass
class MemoryMembership:
    """A membership whose connects succeed for ``reachable`` names after ``delays[name]``."""

    name: str
    reachable: set[str] = field(default_factory=set)
    delays: dict[str, float] = field(default_factory=dict)
    connected: set[str] = field(default_factory=set)
    calls: list[tuple[str, str, float]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def connect(self, name: str) -> bool:
        self.calls.append(("connect", name, time.monotonic()))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delays.get(name, 0))
        finally:
            self.in_flight -= 1
        if name in self.reachable:
            self.connected.add(name)
            return True
        return False

    async def disconnect(self, name: str) -> bool:
        self.calls.append(("disconnect", name, time.monotonic()))
        self.connected.discard(name)
        return True

    def nodes(self) -> list[str]:
        return sorted(self.connected)

    def count(self, op: str, name: str | None = None) -> int:
        return sum(1 for o, n, _ in self.calls if o == op and (name is None or n == name))


@dataclass(frozen=True, kw_only=True)
class ScriptedConfig(TopologyConfig):
    """Config of the scripted strategy (not registered in the strategy table)."""

    strategy = "scripted"


class ScriptedStrategy(Strategy[ScriptedConfig]):
    """Discovery answers taken from a shared list: a set of names, an exception, or a delay."""

    def __init__(self, config: ScriptedConfig, context: StrategyContext, script: Script) -> None:
        super().__init__(config, context)
        self.script = script

    async def start(self) -> None:
        self.script.starts += 1
        if self.script.crash_on_start:
            self.script.crash_on_start -= 1
            raise RuntimeError("boom on start")

    async def discover(self) -> Discovery:
        self.script.active += 1
        try:
            assert self.script.active == 1, "two polls overlap"
            self.script.discover_times.append(time.monotonic())
            await asyncio.sleep(self.script.discover_delay)
            answer = self.script.answer
            if isinstance(answer, BaseException):
                raise answer
            return answer
        finally:
            self.script.active -= 1

    async def close(self) -> None:
        self.script.closes += 1


@dataclass
class Script:
    answer: Discovery | BaseException = field(default_factory=lambda: Discovery(frozenset()))
    discover_delay: float = 0.0
    crash_on_start: int = 0
    starts: int = 0
    closes: int = 0
    active: int = 0
    discover_times: list[float] = field(default_factory=list)

    def set(self, *names: str, draining: tuple[str, ...] = ()) -> None:
        self.answer = Discovery(frozenset(names), frozenset(draining))

    def fail(self, message: str = "resolver down") -> None:
        self.answer = DiscoveryError(message)

    def factory(self) -> Callable[[TopologyConfig, StrategyContext], Strategy[Any]]:
        def make(config: TopologyConfig, context: StrategyContext) -> Strategy[Any]:
            assert isinstance(config, ScriptedConfig)
            return ScriptedStrategy(config, context, self)

        return make


class EventLog(list[ClusterEvent]):
    """Subscriber collecting events."""

    def __call__(self, event: ClusterEvent) -> None:
        self.append(event)

    def of(self, kind: type[ClusterEvent]) -> list[Any]:
        return [e for e in self if isinstance(e, kind)]


