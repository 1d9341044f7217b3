"""Cluster events (connects, disconnects, poll failures, dropped datagrams) and their fan-out.

The counterpart of libcluster's telemetry events. Every event names its topology; subscribers
(logging, ``beamlink.cluster.metrics``, tests) are plain callables. A subscriber that raises is
logged and never disturbs the reconcile loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from beamlink.logs import RateLimiter

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


#: One line per identical cluster problem (same topology, same kind, same reason) per interval.
CLUSTER_LOG_INTERVAL = 60.0


class ClusterLog:
    """The default subscriber: logs what the connection layer does not already log, rate-limited.

    Connects, disconnects and connect failures are logged once by the connection layer (``nodeup``,
    ``nodedown``, ``connection to X failed``); topology-level problems (discovery failures,
    crashed topologies, failed disconnects) are logged here, once per identical problem per
    ``interval``; dropped gossip datagrams at debug level.
    """

    def __init__(self, interval: float = CLUSTER_LOG_INTERVAL) -> None:
        self.limiter = RateLimiter(interval)

    def __call__(self, event: ClusterEvent) -> None:
        if isinstance(event, PollFailure):
            self.limiter.log(
                log, logging.WARNING, (event.topology, "poll", event.reason),
                "[%s] discovery failed, keeping the last good answer: %s",
                event.topology, event.reason,
            )
        elif isinstance(event, DisconnectError):
            self.limiter.log(
                log, logging.WARNING, (event.topology, "disconnect", event.node, event.reason),
                "[%s] cannot disconnect %s: %s", event.topology, event.node, event.reason,
            )
        elif isinstance(event, TopologyCrashed):
            self.limiter.log(
                log, logging.ERROR, (event.topology, "crash", event.reason),
                "[%s] topology crashed (%s), restarting in %.1f s",
                event.topology, event.reason, event.restart_in,
            )
        elif isinstance(event, DatagramDropped):
            log.debug("[%s] dropped datagram from %s: %s", event.topology, event.sender, event.reason)
