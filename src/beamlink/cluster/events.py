"""Cluster events (connects, disconnects, poll failures, dropped datagrams) and their fan-out.

The counterpart of libcluster's telemetry events. Every event names its topology; subscribers
(logging, ``beamlink.cluster.metrics``, tests) are plain callables. A subscriber that raises is
logged and never disturbs the reconcile loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("beamlink.cluster")


@dataclass(frozen=True)
class ClusterEvent:
    """Base of all events: the topology it happened in."""

    topology: str


@dataclass(frozen=True)
class ConnectOk(ClusterEvent):
    node: str
    duration: float


@dataclass(frozen=True)
class ConnectError(ClusterEvent):
    node: str
    duration: float
    reason: str


@dataclass(frozen=True)
class DisconnectOk(ClusterEvent):
    node: str
    duration: float


@dataclass(frozen=True)
class DisconnectError(ClusterEvent):
    node: str
    duration: float
    reason: str


@dataclass(frozen=True)
class PollOk(ClusterEvent):
    """A discovery round answered: ``discovered`` names (self excluded), ``draining`` kept only."""

    discovered: int
    draining: int
    duration: float


@dataclass(frozen=True)
class PollFailure(ClusterEvent):
    """Discovery failed; the last good answer stays in force."""

    duration: float
    reason: str


@dataclass(frozen=True)
class DatagramDropped(ClusterEvent):
    """A gossip datagram was rejected (``reason``: auth, garbage, replay, self, oversize)."""

    reason: str
    sender: str


@dataclass(frozen=True)
class TopologyCrashed(ClusterEvent):
    """The topology task raised; it is restarted after ``restart_in`` seconds."""

    reason: str
    restart_in: float


Subscriber = Callable[[ClusterEvent], None]


class EventBus:
    """Delivers events synchronously to every subscriber, isolating their failures."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add ``subscriber``; returns a function that removes it again."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def emit(self, event: ClusterEvent) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("cluster event subscriber %r failed on %r", subscriber, event)


def log_event(event: ClusterEvent) -> None:
    """The default subscriber: one log line per event, at a level matching its gravity."""
    if isinstance(event, ConnectOk):
        log.info("[%s] connected to %s (%.3f s)", event.topology, event.node, event.duration)
    elif isinstance(event, DisconnectOk):
        log.info("[%s] disconnected from %s", event.topology, event.node)
    elif isinstance(event, ConnectError):
        log.warning("[%s] cannot connect to %s: %s", event.topology, event.node, event.reason)
    elif isinstance(event, DisconnectError):
        log.warning("[%s] cannot disconnect %s: %s", event.topology, event.node, event.reason)
    elif isinstance(event, PollFailure):
        log.warning(
            "[%s] discovery failed, keeping the last good answer: %s", event.topology, event.reason
        )
    elif isinstance(event, DatagramDropped):
        log.debug("[%s] dropped datagram from %s: %s", event.topology, event.sender, event.reason)
    elif isinstance(event, TopologyCrashed):
        log.error(
            "[%s] topology crashed (%s), restarting in %.1f s",
            event.topology,
            event.reason,
            event.restart_in,
        )
