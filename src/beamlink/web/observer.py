"""Watches a cluster for the dashboard: polls every node over RPC once a second, keeps rates and
history, and tells subscribers what changed.

The observing node is a hidden node (``beamlink dashboard``'s control node, or one ``beamlink
start --dashboard-port`` starts beside its node), so watching adds no visible connection: it
dials every visible node any watched node reports (as ``observer`` does) and calls, read-only:

- on a beamlink node: ``'beamlink.web.probe':snapshot()`` (all figures in one call);
- on an Erlang/Elixir node, which answers that call with ``undef``: ``erlang:statistics/1``
  (``wall_clock``, ``io``), ``erlang:system_info(process_count)``, ``erlang:registered/0``,
  ``erlang:memory/1``, ``erlang:nodes/1`` and ``net_kernel:node_info/1`` per peer (message counts,
  connection state); ``'Elixir.System':version/0`` once, to tell Elixir from Erlang.

Hidden nodes are shown as the watched nodes report them, never dialled. A node whose connection
drops is marked down at once (the observer's own nodedown), kept ``FORGET_AFTER`` seconds for
the page to fade out, then forgotten. Everything runs on the observing node's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from beamlink.etf import Atom

if TYPE_CHECKING:
    from beamlink.node.netkernel import NodeEvent
    from beamlink.node.node import Node

log = logging.getLogger(__name__)

#: Seconds between polls of every node.
INTERVAL = 1.0
#: Seconds one node may take to answer its poll.
PROBE_TIMEOUT = 3.0
#: Seconds to dial a node that was reported.
CONNECT_TIMEOUT = 3.0
#: Seconds a node that left stays on the page (faded).
FORGET_AFTER = 30.0
#: Seconds of rate history kept (and charted).
HISTORY_SECONDS = 300
#: Topology events kept for a page that connects later.
MAX_EVENTS = 300
#: Updates queued for one page before it is dropped as too slow.
MAX_QUEUED = 50

PROBE_MODULE = "beamlink.web.probe"
RATE_KEYS = ("msgs_in", "msgs_out", "bytes_in", "bytes_out")
UNDEF = Atom("undef")


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _is_undef(exc: BaseException) -> bool:
    """True for the ``error:undef`` of a function the node does not have."""
    reason = getattr(exc, "reason", None)
    return reason == UNDEF or (isinstance(reason, tuple) and bool(reason) and reason[0] == UNDEF)


def rates(prev: dict[str, Any] | None, cur: dict[str, Any], exclude: Iterable[str]) -> dict[str, float]:
    """Per-second rates between two probes of one node.

    A probe holds ``t``, ``totals`` (node-wide counters that never go back; a key may be
    missing) and ``peers`` (per-connection counters, which restart with each connection). A rate
    comes from the totals when present, less the traffic with ``exclude`` (the observer itself);
    else from the peers seen in both probes. Nothing is negative.
    """
    if prev is None or cur["t"] <= prev["t"]:
        return dict.fromkeys(RATE_KEYS, 0.0)
    dt = cur["t"] - prev["t"]
    excluded = set(exclude)
    before = {p["name"]: p for p in prev["peers"]}
    out = {}
    for key in RATE_KEYS:
        per_peer = {}
        for peer in cur["peers"]:
            old = before.get(peer["name"])
            if old is not None and key in peer and key in old:
                per_peer[peer["name"]] = max(0.0, peer[key] - old[key])
        if key in cur["totals"] and key in prev["totals"]:
            delta = max(0.0, cur["totals"][key] - prev["totals"][key])
            delta = max(0.0, delta - sum(v for p, v in per_peer.items() if p in excluded))
        else:
            delta = sum(v for p, v in per_peer.items() if p not in excluded)
        out[key] = delta / dt
    return out


class ClusterObserver:
    """Polls the cluster reachable from ``seeds`` through the hidden ``node``.

    ``snapshot()`` is the whole picture for a page that connects; ``subscribe()`` gives a queue of
    updates (dicts, ``None`` when the observer stops). ``start()`` begins, ``stop()`` ends.
    """

    def __init__(self, node: Node, seeds: Iterable[str], interval: float = INTERVAL) -> None:
        self.node = node
        self.seeds = [str(s) for s in seeds]
        self.interval = interval
        self.views: dict[str, dict[str, Any]] = {}
        self.history: dict[str, deque[list[float]]] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self._probes: dict[str, dict[str, Any]] = {}
        self._kinds: dict[str, str] = {}
        self._versions: dict[str, str] = {}
        self._seen_cluster_events: dict[str, int] = {}
        self._edges: set[tuple[str, str]] = set()
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._pending_events: list[dict[str, Any]] = []
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._unsubscribe: Any = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start polling (on the running loop)."""
        if self._task is None:
            self._unsubscribe = self.node.monitor_nodes(self._on_node_event)
            self._task = asyncio.create_task(self._run(), name="beamlink-dashboard-observer")

    async def stop(self) -> None:
        """Stop polling; every subscriber's queue gets ``None``."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for queue in list(self._queues):
            self._close_queue(queue)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.poll()
            except Exception:  # one bad round must not end the dashboard
                log.exception("dashboard poll failed")
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(),
                                       max(0.05, self.interval - (loop.time() - started)))

    # ------------------------------------------------------------------ subscribers

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue of updates for one page; pass it to `unsubscribe` when the page goes."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(MAX_QUEUED + 1)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._queues.discard(queue)

    def _close_queue(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._queues.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)

    def _publish(self, samples: dict[str, list[float]]) -> None:
        message = {"type": "update", "t": time.time(), "nodes": self.views,
                   "events": self._pending_events, "samples": samples}
        self._pending_events = []
        for queue in list(self._queues):
            if queue.qsize() >= MAX_QUEUED:
                log.info("dashboard: a page fell %d updates behind; dropping it", MAX_QUEUED)
                self._close_queue(queue)
            else:
                queue.put_nowait(message)

    def snapshot(self) -> dict[str, Any]:
        """Everything a page needs to start: nodes, rate history, recent events."""
        return {"type": "snapshot", "t": time.time(), "observer": str(self.node.name),
                "seeds": self.seeds, "nodes": self.views, "events": list(self.events),
                "history": {name: list(points) for name, points in self.history.items()},
                "history_seconds": HISTORY_SECONDS}

    def _event(self, kind: str, node: str, text: str, *, error: bool = False,
               at: float | None = None) -> None:
        self._seq += 1
        event = {"seq": self._seq, "at": at or time.time(), "kind": kind, "node": node,
                 "text": text, "error": error}
        self.events.append(event)
        self._pending_events.append(event)

    # ------------------------------------------------------------------ node events

    def _on_node_event(self, event: NodeEvent) -> None:
        name = str(event.node)
        if event.kind != "nodedown" or name not in self.views:
            return
        self._kinds.pop(name, None)
        self._probes.pop(name, None)
        view = self.views[name]
        if view["state"] == "down":
            return
        reason = str(event.reason) if event.reason is not None else "unknown"
        if event.detail:
            reason = f"{reason}: {event.detail}"
        self._mark_down(name, reason)
        self._publish({})
        self._wake.set()

    def _mark_down(self, name: str, reason: str) -> None:
        view = self.views[name]
        view.update(state="down", down_since=time.time(), down_reason=reason)
        self._event("nodedown", name, f"{name} left ({reason})", error=reason not in
                    ("disconnected", "shutdown", "closed"))
        for edge in [e for e in self._edges if name in e]:
            self._edges.discard(edge)

    # ------------------------------------------------------------------ polling

    async def poll(self) -> None:
        """One round: dial reported nodes, probe every live one, publish the update."""
        me = str(self.node.name)
        now = time.time()
        connected = {str(n) for n in self.node.nodes(hidden=True)}
        targets = set(self.seeds)
        for name, view in self.views.items():
            if view["kind"] != "hidden" and view["state"] != "down":
                targets.add(name)
            if view["state"] != "down":
                targets.update(p["name"] for p in view.get("peers", ()) if not p["hidden"])
        targets.discard(me)
        results = await asyncio.gather(
            *(self._probe(name, name in connected) for name in sorted(targets))
        )
        samples: dict[str, list[float]] = {}
        hidden_seen: dict[str, list[str]] = {}
        edges: set[tuple[str, str]] = set()
        for name, probe in zip(sorted(targets), results, strict=True):
            old = self.views.get(name)
            if probe is None:
                if old is not None and old["state"] != "down" and old["kind"] != "hidden":
                    self._mark_down(name, "unreachable")
                continue
            if old is None or old["state"] == "down":
                self._event("nodeup", name, f"{name} joined ({probe['kind']})")
            rate = rates(self._probes.get(name), probe, (me,))
            self._probes[name] = probe
            self.views[name] = self._view(probe, rate)
            point = [probe["t"], *(rate[k] for k in RATE_KEYS)]
            self.history.setdefault(
                name, deque(maxlen=int(HISTORY_SECONDS / self.interval))).append(point)
            samples[name] = point
            for peer in probe["peers"]:
                if peer["name"] == me:
                    continue
                a, b = sorted((name, peer["name"]))
                edges.add((a, b))
                if peer["hidden"]:
                    hidden_seen.setdefault(peer["name"], []).append(name)
            self._cluster_events(name, probe)
        for name, reporters in hidden_seen.items():
            if name in targets:
                continue
            if name not in self.views or self.views[name]["state"] == "down":
                self._event("nodeup", name, f"hidden node {name} seen by {', '.join(reporters)}")
            self.views[name] = {"name": name, "kind": "hidden", "state": "up", "hidden": True,
                                "peers": [{"name": r, "hidden": True, "state": "up"}
                                          for r in reporters]}
        for name, view in list(self.views.items()):
            if view["kind"] == "hidden" and name not in hidden_seen and view["state"] != "down":
                view.update(state="down", down_since=now, down_reason="no longer reported")
                self._event("nodedown", name, f"hidden node {name} no longer reported")
            if view["state"] == "down" and now - view.get("down_since", now) > FORGET_AFTER:
                del self.views[name]
                self.history.pop(name, None)
        edges = {(a, b) for a, b in edges
                 if "down" not in (self.views.get(a, {}).get("state"),
                                   self.views.get(b, {}).get("state"))}
        for a, b in sorted(edges - self._edges):
            if self._edges or len(self.views) > 1:
                self._event("connect", a, f"{a} \u2194 {b} connected")
        for a, b in sorted(self._edges - edges):
            if a in self.views and b in self.views and "down" not in (
                    self.views[a]["state"], self.views[b]["state"]):
                self._event("disconnect", a, self._lost(a, b), error=True)
        self._edges = edges
        self._publish(samples)

    def _lost(self, a: str, b: str) -> str:
        for x, y in ((a, b), (b, a)):
            down = self.views[x].get("downs", {}).get(y)
            if down:
                return f"{x} lost {y} ({down['reason']})"
        return f"{a} \u2194 {b} disconnected"

    def _cluster_events(self, name: str, probe: dict[str, Any]) -> None:
        seen = self._seen_cluster_events.get(name, 0)
        for event in probe.get("events", ()):
            if event["seq"] > seen:
                self._event("discovery", name, f"[{event['topology']}] {event['kind']} "
                            f"{event['text']}", error=event["error"], at=event["at"])
                seen = event["seq"]
        self._seen_cluster_events[name] = seen

    def _view(self, probe: dict[str, Any], rate: dict[str, float]) -> dict[str, Any]:
        return {
            "name": probe["name"], "kind": probe["kind"], "state": "up",
            "hidden": probe.get("hidden", False), "version": probe.get("version", ""),
            "uptime": probe.get("uptime"), "processes": probe.get("processes"),
            "registered": probe.get("registered", []), "memory": probe.get("memory"),
            "rates": rate, "loop_lag": probe.get("loop_lag"),
            "peers": [{k: p[k] for k in ("name", "hidden", "state") if k in p}
                      for p in probe["peers"] if p["name"] != str(self.node.name)],
            "downs": probe.get("downs", {}),
        }

    async def _probe(self, name: str, connected: bool) -> dict[str, Any] | None:
        """The figures of node ``name``, or None when it cannot be reached or does not answer."""
        if not connected:
            try:
                ok = await asyncio.wait_for(self.node.connect(name), CONNECT_TIMEOUT)
            except asyncio.TimeoutError:
                ok = False
            if not ok:
                return None
        try:
            return await asyncio.wait_for(self._figures(name), PROBE_TIMEOUT)
        except asyncio.TimeoutError:
            log.info("dashboard: %s did not answer within %.0f s", name, PROBE_TIMEOUT)
        except Exception as exc:
            log.info("dashboard: probing %s failed: %s", name, exc)
        return None

    async def _figures(self, name: str) -> dict[str, Any]:
        kind = self._kinds.get(name)
        if kind in (None, "python"):
            from beamlink.node.rpc import RpcError

            try:
                raw = await self.node.rpc(name, PROBE_MODULE, "snapshot", [])
            except RpcError as exc:
                if not _is_undef(exc):
                    raise
            else:
                self._kinds[name] = "python"
                probe: dict[str, Any] = json.loads(bytes(raw))
                probe["t"] = time.monotonic()
                return probe
        return await self._beam_figures(name)

    async def _beam_figures(self, name: str) -> dict[str, Any]:
        rpc = self.node.rpc
        erlang = "erlang"
        if name not in self._kinds:
            release = await rpc(name, erlang, "system_info", [Atom("otp_release")])
            try:
                elixir = _text(await rpc(name, "Elixir.System", "version", []))
            except Exception:
                elixir = ""
            self._kinds[name] = "elixir" if elixir else "erlang"
            self._versions[name] = (f"Elixir {elixir}, " if elixir else "") + f"OTP {_text(release)}"
        (wall, _), processes, registered, memory, visible, hidden, io = await asyncio.gather(
            rpc(name, erlang, "statistics", [Atom("wall_clock")]),
            rpc(name, erlang, "system_info", [Atom("process_count")]),
            rpc(name, erlang, "registered", []),
            rpc(name, erlang, "memory", [Atom("total")]),
            rpc(name, erlang, "nodes", [Atom("visible")]),
            rpc(name, erlang, "nodes", [Atom("hidden")]),
            rpc(name, erlang, "statistics", [Atom("io")]),
        )
        peers = [{"name": str(p), "hidden": False} for p in visible]
        peers += [{"name": str(p), "hidden": True} for p in hidden]
        infos = await asyncio.gather(
            *(rpc(name, "net_kernel", "node_info", [Atom(str(p["name"]))]) for p in peers),
            return_exceptions=True,
        )
        for peer, info in zip(peers, infos, strict=True):
            if isinstance(info, tuple) and len(info) == 2 and info[0] == Atom("ok"):
                fields = {str(k): v for k, v in info[1] if isinstance(k, Atom)}
                peer["state"] = str(fields.get("state", "up"))
                if isinstance(fields.get("in"), int):
                    peer["msgs_in"] = fields["in"]
                if isinstance(fields.get("out"), int):
                    peer["msgs_out"] = fields["out"]
        (_, bytes_in), (_, bytes_out) = io
        return {
            "t": time.monotonic(), "name": name, "kind": self._kinds[name],
            "version": self._versions.get(name, ""), "hidden": False,
            "uptime": wall / 1000, "processes": processes,
            "registered": sorted(str(r) for r in registered), "memory": memory,
            "totals": {"bytes_in": bytes_in, "bytes_out": bytes_out},
            "peers": peers, "loop_lag": None,
        }
