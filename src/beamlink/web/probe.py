"""The beamlink side of the dashboard: ``snapshot()``, called over RPC, answers only on beamlink.

A dashboard calls ``rpc:call(Node, 'beamlink.web.probe', snapshot, [])`` on every node it watches.
A beamlink node returns the JSON text (a binary) of its figures; an Erlang or Elixir node answers
``error:undef``, which is how the dashboard tells the two apart (see docs/dashboard.md). The
function only reads: the node's public API, its Prometheus collector (`NodeCollector`) and the
process's memory.

Two things the node does not keep are recorded here, bounded: the last nodedown reason per peer
(from the moment this module first serves the node, or from ``record_node``), and the latest cluster
events of the topologies handed to ``record_cluster`` (discovery errors and connects, for the
dashboard's event log). Both run on the node's event loop.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from beamlink import __version__

if TYPE_CHECKING:
    from beamlink.node.netkernel import NodeEvent
    from beamlink.node.node import Node

#: Nodedown reasons kept per node (the most recent peers win).
MAX_DOWNS = 50
#: Cluster events kept per node.
MAX_EVENTS = 100

_IMPORTED = time.time()


@dataclass
class _Record:
    """What one node remembers for the dashboard."""

    downs: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    seq: int = 0
    unsubscribe: list[Callable[[], None]] = field(default_factory=list)

    def on_node_event(self, event: NodeEvent) -> None:
        if event.kind != "nodedown":
            return
        peer = str(event.node)
        self.downs.pop(peer, None)
        reason = str(event.reason) if event.reason is not None else "unknown"
        self.downs[peer] = {"reason": reason, "detail": event.detail, "at": time.time()}
        while len(self.downs) > MAX_DOWNS:
            self.downs.pop(next(iter(self.downs)))

    def on_cluster_event(self, event: Any) -> None:
        kind = type(event).__name__
        if kind in ("PollOk", "DatagramDropped", "DisconnectOk"):
            return  # routine, or too chatty for a log a human reads
        self.seq += 1
        text = ", ".join(
            f"{key} {value}" for key, value in vars(event).items()
            if key not in ("topology", "duration")
        )
        self.events.append({"seq": self.seq, "at": time.time(), "topology": event.topology,
                            "kind": kind, "text": text,
                            "error": kind in ("PollFailure", "ConnectError", "DisconnectError",
                                              "TopologyCrashed")})


_records: dict[str, _Record] = {}


def record_node(node: Node) -> _Record:
    """Start remembering ``node``'s nodedown reasons (idempotent); forgotten when it stops."""
    key = str(node.name)
    record = _records.get(key)
    if record is None:
        record = _records[key] = _Record()
        record.unsubscribe.append(node.monitor_nodes(record.on_node_event))
    return record


def record_cluster(node: Node, cluster: Any) -> Callable[[], None]:
    """Remember the latest events of ``cluster`` (a `beamlink.cluster.topology.Cluster`) running
    on ``node``; returns the function that stops and forgets (call it when the node stops)."""
    record = record_node(node)
    record.unsubscribe.append(cluster.subscribe(record.on_cluster_event))

    def forget() -> None:
        gone = _records.pop(str(node.name), None)
        if gone is not None:
            for unsubscribe in gone.unsubscribe:
                unsubscribe()

    return forget


def process_started() -> float:
    """When this OS process started (Unix time); when this module was imported elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        ticks = int(fields[19])  # field 22, starttime, in clock ticks after boot
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


def memory_bytes() -> int:
    """The resident memory of this process (its peak where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _metrics(node: Node) -> dict[str, list[tuple[dict[str, str], float]]]:
    from beamlink.node.metrics import NodeCollector

    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in NodeCollector(node).collect():
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _one(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float | None:
    found = samples.get(f"beamlink_{name}")
    return found[0][1] if found else None


def describe(node: Node) -> dict[str, Any]:
    """The figures of ``node`` as a JSON-ready dict (what ``snapshot`` sends)."""
    record = record_node(node)
    samples = _metrics(node)
    visible = {str(n) for n in node.nodes()}
    peers = []
    per_peer: dict[str, dict[str, float]] = {}
    for metric, key in (("received_frames", "msgs_in"), ("sent_frames", "msgs_out"),
                        ("received_bytes", "bytes_in"), ("sent_bytes", "bytes_out")):
        for labels, value in samples.get(f"beamlink_dist_peer_{metric}_total", []):
            per_peer.setdefault(labels["peer"], {})[key] = value
    for peer in node.nodes(hidden=True):
        name = str(peer)
        peers.append({"name": name, "hidden": name not in visible, "state": "up",
                      **per_peer.get(name, {})})
    totals = {key: _one(samples, f"dist_{metric}_total") or 0
              for metric, key in (("received_frames", "msgs_in"), ("sent_frames", "msgs_out"),
                                  ("received_bytes", "bytes_in"), ("sent_bytes", "bytes_out"))}
    lag_last = _one(samples, "event_loop_lag_last_seconds")
    lag_max = _one(samples, "event_loop_lag_max_seconds")
    return {
        "name": str(node.name),
        "kind": "python",
        "version": f"beamlink {__version__}, Python {sys.version.split()[0]}",
        "hidden": node.hidden,
        "uptime": max(0.0, time.time() - process_started()),
        "processes": len(node.processes()),
        "registered": sorted(str(name) for name in node.registered()),
        "memory": memory_bytes(),
        "totals": totals,
        "peers": peers,
        "downs": record.downs,
        "loop_lag": None if lag_last is None else {"last": lag_last, "max": lag_max},
        "events": list(record.events),
    }


def snapshot() -> bytes:
    """The calling node's figures as JSON text; read-only. Erlang nodes have no such function."""
    from beamlink.node import current_node

    return json.dumps(describe(current_node())).encode()
