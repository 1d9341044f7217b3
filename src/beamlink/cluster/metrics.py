"""Prometheus metrics for the cluster layer, fed by cluster events.

``ClusterMetrics(registry)`` is an event subscriber: ``cluster.subscribe(ClusterMetrics())``.
Counters are labelled by topology (and result/reason); durations are histograms in seconds.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from beamlink.cluster.events import (
    ClusterEvent,
    ConnectError,
    ConnectOk,
    DatagramDropped,
    DisconnectError,
    DisconnectOk,
    PollFailure,
    PollOk,
    TopologyCrashed,
)


class ClusterMetrics:
    """Counters and histograms of connects, disconnects, polls, dropped datagrams and crashes."""

    def __init__(self, registry: CollectorRegistry = REGISTRY, prefix: str = "beamlink_cluster") -> None:
        self.connects = Counter(
            f"{prefix}_connects", "Connect attempts.", ["topology", "result"], registry=registry
        )
        self.disconnects = Counter(
            f"{prefix}_disconnects", "Disconnects of vanished nodes.", ["topology", "result"], registry=registry
        )
        self.connect_seconds = Histogram(
            f"{prefix}_connect_seconds", "Duration of connect attempts.", ["topology"], registry=registry
        )
        self.polls = Counter(f"{prefix}_polls", "Discovery rounds.", ["topology", "result"], registry=registry)
        self.poll_seconds = Histogram(
            f"{prefix}_poll_seconds", "Duration of discovery.", ["topology"], registry=registry
        )
        self.discovered = Gauge(
            f"{prefix}_discovered_nodes", "Nodes in the last good answer.", ["topology"], registry=registry
        )
        self.dropped = Counter(
            f"{prefix}_dropped_datagrams", "Rejected gossip datagrams.", ["topology", "reason"], registry=registry
        )
        self.crashes = Counter(f"{prefix}_topology_crashes", "Topology restarts.", ["topology"], registry=registry)

    def __call__(self, event: ClusterEvent) -> None:
        topology = event.topology
        if isinstance(event, ConnectOk | ConnectError):
            result = "ok" if isinstance(event, ConnectOk) else "error"
            self.connects.labels(topology, result).inc()
            self.connect_seconds.labels(topology).observe(event.duration)
        elif isinstance(event, DisconnectOk | DisconnectError):
            result = "ok" if isinstance(event, DisconnectOk) else "error"
            self.disconnects.labels(topology, result).inc()
        elif isinstance(event, PollOk):
            self.polls.labels(topology, "ok").inc()
            self.poll_seconds.labels(topology).observe(event.duration)
            self.discovered.labels(topology).set(event.discovered)
        elif isinstance(event, PollFailure):
            self.polls.labels(topology, "error").inc()
            self.poll_seconds.labels(topology).observe(event.duration)
        elif isinstance(event, DatagramDropped):
            self.dropped.labels(topology, event.reason).inc()
        elif isinstance(event, TopologyCrashed):
            self.crashes.labels(topology).inc()
