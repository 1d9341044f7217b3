"""The reconcile loop of one topology, and the supervisor running every topology of a node.

Theory of operation (one ``Topology``, one asyncio task):

1. Poll: ``strategy.discover()``. A failure emits ``PollFailure`` and the last good answer stays
   in force; a failure is never read as "no nodes", so it never disconnects anyone.
2. Prune (only after a fresh answer, only when pruning is on): nodes this topology connected
   earlier that are missing (neither discovered nor draining) from two fresh answers in a row
   are disconnected, concurrently. The round of grace lets a node that is being scaled down
   leave by itself: disconnecting it while it still talks to the others would make its
   ``global`` report a lost connection, and overlapping-partition prevention would then
   disconnect healthy nodes from each other.
3. Connect every discovered node that is not connected, concurrently, each bounded by
   ``connect_timeout``: one slow peer costs at most that timeout, never a stalled loop. A node
   that dropped but is still discovered is reconnected here on the next round.
4. Sleep ``polling_interval`` (jittered) or until the strategy sets ``wakeup``; then go to 1.
   After a failed poll the next one comes sooner: ``RETRY_INITIAL`` doubling up to the polling
   interval, so a node whose first poll fails (a DNS timeout while many replicas start) does not
   wait a whole interval to join. Rounds run one after the other in this single task, so two
   polls never overlap.

The first poll runs at once on start, so a new node joins every discovered peer within about
one handshake. Until an answer lists the node itself, peers cannot discover it either: nodes
started together (a scale-up) may each have polled before the others were listed (Swarm lists a
task once its health check passed), and would wait a whole interval for each other. So until
the first answer that lists it, for at most ``SETTLE_WINDOW`` (or one interval, if shorter), the
node polls every ``RETRY_INITIAL``: its first poll after being listed connects every peer listed
(and up) before it, and every peer listed after it sees it. A strategy whose answers never list
the node costs those few extra polls at start. ``Cluster`` runs each topology under a supervisor: a crash is logged with its
traceback, reported as ``TopologyCrashed`` and the topology restarted with exponential backoff;
it never propagates to the node. ``Cluster.leave()`` disconnects from everyone on a graceful stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from beamlink.cluster.events import (
    ClusterEvent,
    ClusterLog,
    ConnectError,
    ConnectOk,
    DisconnectError,
    DisconnectOk,
    EventBus,
    PollFailure,
    PollOk,
    TopologyCrashed,
)
from beamlink.cluster.membership import Membership, MembershipOps
from beamlink.cluster.schema import ClusterConfig, TopologyConfig
from beamlink.cluster.strategies import (
    Discovery,
    DiscoveryError,
    Strategy,
    StrategyContext,
    create_strategy,
)

log = logging.getLogger("beamlink.cluster")

RETRY_INITIAL = 0.25  # seconds before the first retry of a failed poll; doubles per failure
SETTLE_WINDOW = 5.0  # seconds of quick polls at most while the answers do not list this node

StrategyFactory = Callable[[TopologyConfig, StrategyContext], Strategy[Any]]


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Topology:
    """The reconcile loop of one named topology (see the module docstring).

    State that must survive a crash of the strategy (the last good answer, the set of nodes
    this topology manages) lives here; the strategy is recreated on every (re)start.
    """

    def __init__(
        self,
        name: str,
        config: TopologyConfig,
        membership: Membership,
        events: EventBus,
        *,
        strategy_factory: StrategyFactory = create_strategy,
    ) -> None:
        self.name = name
        self.config = config
        self.ops = MembershipOps(membership, config.connect, config.disconnect, config.list_nodes)
        self._events = events
        self._strategy_factory = strategy_factory
        self.wakeup = asyncio.Event()
        self.last_good: Discovery | None = None
        self.managed: frozenset[str] = frozenset()
        self.missing: frozenset[str] = frozenset()  # managed, absent from the last fresh answer
        self.polls = 0
        self._polled = asyncio.Condition()

    def _emit(self, event: ClusterEvent) -> None:
        self._events.emit(event)

    def interval(self, failures: int = 0) -> float:
        """The next sleep in seconds: ``polling_interval`` spread by +-``jitter``; after
        ``failures`` failed polls in a row, at most ``RETRY_INITIAL * 2 ** (failures - 1)``."""
        base = self.config.polling_interval / 1000
        if failures:
            base = min(base, RETRY_INITIAL * 2.0 ** min(failures - 1, 64))
        spread = self.config.jitter
        return base * random.uniform(1 - spread, 1 + spread)

    async def run(self) -> None:
        """Create the strategy and reconcile until cancelled; exceptions are crashes."""
        context = StrategyContext(self.name, self.ops.self_name, self._emit, self.wakeup)
        strategy = self._strategy_factory(self.config, context)
        await strategy.start()
        failures = 0
        settle_until = time.monotonic() + min(SETTLE_WINDOW, self.config.polling_interval / 1000)
        try:
            while True:
                failures = 0 if await self.reconcile(strategy) else failures + 1
                delay = self.interval(failures)
                if time.monotonic() < settle_until:
                    if self.last_good is not None and self.ops.self_name in self.last_good.nodes:
                        settle_until = 0.0  # listed: peers find this node from now on
                    else:
                        delay = min(delay, self.interval(1))
                self.wakeup.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), delay)
        finally:
            await strategy.close()

    async def reconcile(self, strategy: Strategy[Any]) -> bool:
        """One round: discover, prune, connect; False when discovery failed."""
        started = time.monotonic()
        fresh: Discovery | None
        try:
            fresh = await strategy.discover()
        except (DiscoveryError, OSError, asyncio.TimeoutError) as exc:
            fresh = None
            self._emit(PollFailure(self.name, time.monotonic() - started, _reason(exc)))
        self_name = self.ops.self_name
        if fresh is not None:
            self.last_good = fresh
            self._emit(
                PollOk(
                    self.name,
                    len(fresh.nodes - {self_name}),
                    len(fresh.draining),
                    time.monotonic() - started,
                )
            )
        answer = self.last_good
        if answer is not None:
            desired = answer.nodes - {self_name}
            connected = await self.ops.list_nodes()
            if fresh is not None and self.config.pruning:
                await self._prune(desired | answer.draining, connected)
            self.managed |= desired
            await self._connect_all(desired - connected)
        async with self._polled:
            self.polls += 1
            self._polled.notify_all()
        return fresh is not None

    async def _prune(self, keep: frozenset[str], connected: frozenset[str]) -> None:
        vanished = self.managed - keep
        due = vanished & self.missing
        failed = await _run_all(self._disconnect, due & connected)
        self.managed = (self.managed - due) | failed
        self.missing = vanished & self.managed

    async def _connect_all(self, nodes: frozenset[str]) -> None:
        await _run_all(self._connect, nodes)

    async def _connect(self, node: str) -> bool:
        timeout = self.config.connect_timeout / 1000
        started = time.monotonic()
        try:
            ok = await asyncio.wait_for(self.ops.connect(node), timeout)
        except asyncio.TimeoutError:
            reason = f"timed out after {timeout:g} s"
            ok = False
        except Exception as exc:
            reason = _reason(exc)
            ok = False
        else:
            reason = "connect refused"
        duration = time.monotonic() - started
        if ok:
            self._emit(ConnectOk(self.name, node, duration))
        else:
            self._emit(ConnectError(self.name, node, duration, reason))
        return ok

    async def _disconnect(self, node: str) -> bool:
        started = time.monotonic()
        try:
            ok = await asyncio.wait_for(
                self.ops.disconnect(node), self.config.connect_timeout / 1000
            )
        except Exception as exc:
            self._emit(DisconnectError(self.name, node, time.monotonic() - started, _reason(exc)))
            return False
        if ok:
            self._emit(DisconnectOk(self.name, node, time.monotonic() - started))
        else:
            self._emit(
                DisconnectError(self.name, node, time.monotonic() - started, "disconnect refused")
            )
        return ok

    async def wait_polls(self, count: int) -> None:
        """Wait until at least ``count`` rounds have completed (for tests and tooling)."""
        async with self._polled:
            await self._polled.wait_for(lambda: self.polls >= count)


async def _run_all(action: Callable[[str], Awaitable[bool]], nodes: frozenset[str]) -> frozenset[str]:
    """Run ``action`` on every node concurrently; the nodes for which it failed."""
    ordered = sorted(nodes)
    results = await asyncio.gather(*(action(node) for node in ordered))
    return frozenset(node for node, ok in zip(ordered, results, strict=True) if not ok)


class Cluster:
    """Runs every topology of a node, each as its own supervised task.

    ``start()`` launches them (each polls at once); ``stop()`` cancels them and, unless
    ``leave=False``, disconnects from every connected node so peers see the leave at once.
    """

    def __init__(
        self,
        membership: Membership,
        config: ClusterConfig | Mapping[str, TopologyConfig],
        *,
        log_events: bool = True,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        strategy_factory: StrategyFactory = create_strategy,
    ) -> None:
        if not isinstance(config, ClusterConfig):
            config = ClusterConfig(dict(config))
        self.membership = membership
        self.config = config
        self.events = EventBus()
        if log_events:
            self.events.subscribe(ClusterLog())
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.topologies: dict[str, Topology] = {
            name: Topology(name, cfg, membership, self.events, strategy_factory=strategy_factory)
            for name, cfg in config.topologies.items()
        }
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def subscribe(self, subscriber: Callable[[ClusterEvent], None]) -> Callable[[], None]:
        """Receive every event of every topology; returns the unsubscribe function."""
        return self.events.subscribe(subscriber)

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def start(self) -> None:
        """Start every topology (idempotent)."""
        for name, topology in self.topologies.items():
            if name not in self._tasks:
                self._tasks[name] = asyncio.create_task(
                    self._supervise(topology), name=f"beamlink-topology-{name}"
                )

    async def _supervise(self, topology: Topology) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await topology.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() - started > self.backoff_max:
                    failures = 0
                delay = min(self.backoff_max, self.backoff_initial * 2**failures)
                delay *= random.uniform(0.5, 1.0)
                failures += 1
                log.error("topology %r crashed", topology.name, exc_info=exc)
                self.events.emit(TopologyCrashed(topology.name, _reason(exc), delay))
                await asyncio.sleep(delay)
            else:
                return

    async def stop(self, *, leave: bool = True, timeout: float = 5.0) -> None:
        """Stop every topology; then, with ``leave``, disconnect from every connected node."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if leave:
            await self.leave(timeout=timeout)

    async def leave(self, *, timeout: float = 5.0) -> None:
        """Disconnect from every connected node concurrently, each bounded by ``timeout``."""

        async def drop(node: str) -> None:
            try:
                await asyncio.wait_for(self.membership.disconnect(node), timeout)
            except Exception as exc:
                log.warning("leave: cannot disconnect %s: %s", node, _reason(exc))

        await asyncio.gather(*(drop(str(n)) for n in list(self.membership.nodes())))
