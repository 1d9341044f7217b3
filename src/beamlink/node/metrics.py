"""Prometheus metrics of a running node: a collector that reads the node's counters at scrape
time (served over HTTP by ``beamlink.web.metrics``).

Nothing here runs per message: the connection layer and the runtime bump plain integers
(`ConnectionStats`, the runtime's ``delivered_remote``...), and `NodeCollector.collect` turns them into metric
families when Prometheus scrapes. ``collect`` may run on a thread other than the event loop's
(the HTTP server's), so it only reads: integers, lengths of containers, and lists copied in one
step (atomic under the GIL), never a container the event loop could change while it is iterated.

Labels are bounded: directions, reasons and kinds are fixed sets; ``peer`` labels exist only
for the peers connected right now (their counters start at 0 with each new connection, which
Prometheus treats as a counter reset); node-wide totals keep counting across connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from beamlink._version import __version__

if TYPE_CHECKING:
    from beamlink.node.node import Node

PREFIX = "beamlink"


def _visibility(hidden: bool) -> str:
    return "hidden" if hidden else "visible"


class NodeCollector(Collector):
    """The metrics of one `Node`; register it: ``registry.register(NodeCollector(node))``."""

    def __init__(self, node: Node, prefix: str = PREFIX) -> None:
        self.node = node
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        yield from self._node()
        yield from self._connections()
        yield from self._traffic()
        yield from self._processes()
        yield from self._rpc()
        yield from self._epmd()
        yield from self._event_loop()
        yield from self._workers()

    def _name(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def _gauge(self, name: str, help_: str, value: float) -> GaugeMetricFamily:
        """A gauge with one unlabelled sample."""
        gauge = GaugeMetricFamily(self._name(name), help_)
        gauge.add_metric([], value)
        return gauge

    def _counter(self, name: str, help_: str, value: float) -> CounterMetricFamily:
        """A counter with one unlabelled sample."""
        counter = CounterMetricFamily(self._name(name), help_)
        counter.add_metric([], value)
        return counter

    def _node(self) -> Iterator[Metric]:
        node = self.node
        info = InfoMetricFamily(self._name("node"), "This node: name, beamlink version, hidden.")
        info.add_metric(
            [],
            {"name": str(node.name), "version": __version__, "hidden": str(node.hidden).lower()},
        )
        yield info
        yield self._gauge(
            "node_creation", "The creation in this node's pids and references.", node.creation
        )

    def _connections(self) -> Iterator[Metric]:
        manager = self.node.manager
        stats = manager.stats
        connected = GaugeMetricFamily(
            self._name("connected_nodes"), "Nodes connected now.", labels=["visibility"]
        )
        connections = manager.connections()
        hidden = sum(1 for conn in connections if conn.info is not None and conn.info.hidden)
        connected.add_metric(["visible"], len(connections) - hidden)
        connected.add_metric(["hidden"], hidden)
        yield connected
        nodeups = CounterMetricFamily(
            self._name("nodeup"), "Connections that came up.", labels=["visibility"]
        )
        for is_hidden, count in list(stats.nodeups.items()):
            nodeups.add_metric([_visibility(is_hidden)], count)
        yield nodeups
        nodedowns = CounterMetricFamily(
            self._name("nodedown"),
            "Connections that went down, by reason (closed, tick_timeout, protocol_error, "
            "disconnected, replaced, shutdown).",
            labels=["reason"],
        )
        for reason, count in sorted(stats.nodedowns.items()):
            nodedowns.add_metric([reason], count)
        yield nodedowns
        attempts = CounterMetricFamily(
            self._name("connection_attempts"),
            "Connection attempts: dials (out) and accepted sockets (in).",
            labels=["direction"],
        )
        for direction, count in list(stats.attempts.items()):
            attempts.add_metric([direction], count)
        yield attempts
        failures = CounterMetricFamily(
            self._name("handshake_failures"),
            "Failed connection attempts by direction and reason (bad_cookie, not_allowed, "
            "timeout, unresolved, connection_refused, malformed, ...).",
            labels=["direction", "reason"],
        )
        for (direction, reason), count in sorted(stats.handshake_failures.items()):
            failures.add_metric([direction, reason], count)
        yield failures

    def _traffic(self) -> Iterator[Metric]:
        manager = self.node.manager
        totals = manager.stats.traffic
        peers = [(conn.peer, conn.traffic) for conn in manager.connections()]
        for field, name, what in (
            ("bytes_in", "received_bytes", "Bytes received from other nodes"),
            ("bytes_out", "sent_bytes", "Bytes sent to other nodes"),
            ("frames_in", "received_frames", "Distribution messages received"),
            ("frames_out", "sent_frames", "Distribution messages sent"),
        ):
            yield self._counter(
                f"dist_{name}", f"{what} (all connections, ever).", getattr(totals, field)
            )
            per_peer = CounterMetricFamily(
                self._name(f"dist_peer_{name}"),
                f"{what}, per connected peer (its current connection).",
                labels=["peer"],
            )
            for peer, traffic in peers:
                per_peer.add_metric([str(peer)], getattr(traffic, field))
            yield per_peer

    def _processes(self) -> Iterator[Metric]:
        node = self.node
        processes = node.processes()
        delivered = CounterMetricFamily(
            self._name("messages_delivered"),
            "Messages put in a local process's mailbox, from other nodes (remote) or this one.",
            labels=["source"],
        )
        delivered.add_metric(["remote"], node.delivered_remote)
        delivered.add_metric(["local"], node.delivered_local)
        yield delivered
        yield self._counter(
            "messages_dropped",
            "Messages to a local pid, name or alias that does not exist.",
            node.dropped,
        )
        depths = [len(proc.mailbox) for proc in processes]
        for name, help_, value in (
            ("processes", "Live processes.", len(processes)),
            ("registered_names", "Locally registered names.", len(node.registered())),
            ("mailbox_depth_max", "Messages queued in the fullest mailbox.", max(depths, default=0)),
            ("mailbox_messages", "Messages queued in all mailboxes.", sum(depths)),
            ("global_names", "Names in the global name table.", len(node.global_server.names)),
        ):
            yield self._gauge(name, help_, value)

    def _rpc(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            self._name("rpc_calls"),
            "RPC calls served by kind (call, cast) and outcome (return, throw, exit, error).",
            labels=["kind", "result"],
        )
        for (kind, result), count in sorted(self.node.rpc_server.served.items()):
            calls.add_metric([kind, result], count)
        yield calls

    def _epmd(self) -> Iterator[Metric]:
        registration = self.node.registration
        if registration is None:
            return
        embedded = registration.embedded
        creation = registration.creation
        for name, help_, value in (
            ("epmd_registered", "1 while registered with EPMD.", int(creation is not None)),
            (
                "epmd_embedded_owner",
                "1 when this process runs the host's (embedded) EPMD.",
                int(embedded is not None and embedded.serving),
            ),
        ):
            yield self._gauge(name, help_, value)
        if creation is not None:
            yield self._gauge(
                "epmd_creation", "The creation of the current EPMD registration.", creation
            )
        yield self._counter(
            "epmd_reregistrations",
            "Registrations after EPMD dropped the node.",
            self.node.epmd_reregistrations,
        )


    def _workers(self) -> Iterator[Metric]:
        executor = self.node.executor
        for name, help_, value in (
            ("workers", "Worker threads synchronous user code may run in at once.", executor.workers),
            ("worker_processes", "Worker processes for cpu_bound functions.", executor.processes),
            (
                "worker_calls_busy",
                "Synchronous calls running in a worker or waiting for one.",
                executor.busy,
            ),
        ):
            yield self._gauge(name, help_, value)
        yield self._counter(
            "worker_calls",
            "Synchronous calls that finished in the worker pool.",
            executor.completed,
        )

    def _event_loop(self) -> Iterator[Metric]:
        watchdog = self.node.manager.watchdog
        if watchdog is None:
            return
        stats = watchdog.stats
        lag = HistogramMetricFamily(
            self._name("event_loop_lag_seconds"),
            "How late the event loop ran a timer, sampled every quarter of the stall threshold.",
        )
        lag.add_metric([], stats.cumulative(), sum_value=stats.sum)
        yield lag
        for name, help_, value in (
            ("event_loop_lag_last_seconds", "The latest event loop lag observed.", stats.last),
            ("event_loop_lag_max_seconds", "The largest event loop lag since start.", stats.max),
            (
                "event_loop_stall_threshold_seconds",
                "Lag from which a stall is counted and logged.",
                watchdog.threshold,
            ),
        ):
            yield self._gauge(name, help_, value)
        for name, help_, value in (
            ("event_loop_stalls", "Event loop lags at or above the stall threshold.", stats.stalls),
            (
                "dist_stall_ticks",
                "Ticks the watchdog thread wrote to peers while the event loop was stalled.",
                stats.ticks,
            ),
        ):
            yield self._counter(name, help_, value)
