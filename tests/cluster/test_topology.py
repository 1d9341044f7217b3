"""Reconcile loop and supervisor against an in-memory membership and a scripted strategy."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator

import pytest

from beamlink.cluster.events import (
    ConnectError,
    ConnectOk,
    DisconnectOk,
    PollFailure,
    PollOk,
    TopologyCrashed,
)
from beamlink.cluster.topology import Cluster
from tests.cluster.support import EventLog, MemoryMembership, Script, ScriptedConfig
from tests.support.wait import eventually

SELF = "app@10.0.0.1"


@contextlib.asynccontextmanager
async def running(cluster: Cluster) -> AsyncIterator[None]:
    """``cluster`` started; stopped at the end without leaving (nobody disconnected)."""
    await cluster.start()
    try:
        yield
    finally:
        await cluster.stop(leave=False)


def make(
    script: Script,
    membership: MemoryMembership,
    *,
    interval: int = 50,
    connect_timeout: int = 2000,
    **options: object,
) -> tuple[Cluster, EventLog]:
    config = ScriptedConfig(
        polling_interval=interval, connect_timeout=connect_timeout, jitter=0.0, **options
    )
    cluster = Cluster(
        membership,
        {"t": config},
        backoff_initial=0.05,
        backoff_max=0.2,
        strategy_factory=script.factory(),
    )
    events = EventLog()
    cluster.subscribe(events)
    return cluster, events


async def test_first_poll_connects_everyone_at_once_and_concurrently() -> None:
    peers = [f"app@10.0.0.{i}" for i in range(2, 22)]
    membership = MemoryMembership(SELF, reachable=set(peers), delays=dict.fromkeys(peers, 0.2))
    script = Script()
    script.set(SELF, *peers)
    cluster, events = make(script, membership, interval=60_000)
    async with running(cluster):
        await cluster.topologies["t"].wait_polls(1)
        assert membership.connected == set(peers)
        assert membership.max_in_flight == len(peers)
        assert membership.count("connect", SELF) == 0
        assert {e.node for e in events.of(ConnectOk)} == set(peers)


async def test_slow_peer_is_bounded_by_connect_timeout() -> None:
    membership = MemoryMembership(
        SELF, reachable={"a@1", "slow@2"}, delays={"slow@2": 30.0, "a@1": 0.0}
    )
    script = Script()
    script.set("a@1", "slow@2")
    cluster, events = make(script, membership, interval=30, connect_timeout=100)
    async with running(cluster):
        await cluster.topologies["t"].wait_polls(3)
        errors = [e for e in events.of(ConnectError) if e.node == "slow@2"]
        assert len(errors) >= 2
        assert "timed out" in errors[0].reason
        assert membership.connected == {"a@1"}


async def test_polls_never_overlap_even_when_discovery_is_slow() -> None:
    membership = MemoryMembership(SELF)
    script = Script(discover_delay=0.1)
    script.set("a@1")
    cluster, _ = make(script, membership, interval=1)
    topology = cluster.topologies["t"]
    async with running(cluster):
        for _ in range(5):
            topology.wakeup.set()
            await asyncio.sleep(0.01)
        await topology.wait_polls(4)
        gaps = [b - a for a, b in zip(script.discover_times, script.discover_times[1:], strict=False)]
        assert all(gap >= 0.09 for gap in gaps)


async def test_dropped_node_still_discovered_is_reconnected() -> None:
    membership = MemoryMembership(SELF, reachable={"a@1", "b@2"})
    script = Script()
    script.set("a@1", "b@2")
    cluster, _ = make(script, membership)
    async with running(cluster):
        await eventually(lambda: membership.connected == {"a@1", "b@2"})
        membership.connected.discard("a@1")
        await eventually(lambda: membership.count("connect", "a@1") >= 2)
        assert "a@1" in membership.connected


async def test_discovery_error_keeps_last_good_answer_and_disconnects_nobody() -> None:
    membership = MemoryMembership(SELF, reachable={"a@1", "b@2"})
    script = Script()
    script.set("a@1", "b@2")
    cluster, events = make(script, membership)
    topology = cluster.topologies["t"]
    async with running(cluster):
        await eventually(lambda: membership.connected == {"a@1", "b@2"})
        script.fail("SERVFAIL")
        polls = topology.polls
        await topology.wait_polls(polls + 3)
        assert membership.count("disconnect") == 0
        failures = events.of(PollFailure)
        assert failures and "SERVFAIL" in failures[-1].reason
        membership.connected.discard("b@2")
        await eventually(lambda: "b@2" in membership.connected)
        assert topology.last_good is not None
        assert topology.last_good.nodes == {"a@1", "b@2"}


async def test_failed_first_poll_is_retried_long_before_the_polling_interval() -> None:
    """A node whose first discovery fails (a DNS timeout while replicas start) joins on a quick
    retry, not one polling interval later; after a good answer the interval applies again."""
    membership = MemoryMembership(SELF, reachable={"a@1"})
    script = Script()
    script.fail("timed out")
    cluster, events = make(script, membership, interval=600_000)
    topology = cluster.topologies["t"]
    async with running(cluster):
        await asyncio.wait_for(topology.wait_polls(2), 30)
        assert membership.connected == set()
        script.set(SELF, "a@1")
        await eventually(lambda: bool(events.of(PollOk)), timeout=30)
        polls = [type(e) for e in events if isinstance(e, (PollOk, PollFailure))]
        assert polls[-1] is PollOk and set(polls[:-1]) == {PollFailure}
        await eventually(lambda: membership.connected == {"a@1"})
        await asyncio.sleep(0.3)
        assert topology.polls == len(polls)


async def test_prune_on_disconnects_vanished_nodes_only_those_it_manages() -> None:
    membership = MemoryMembership(SELF, reachable={"a@1", "b@2"}, connected={"shell@9"})
    script = Script()
    script.set("a@1", "b@2")
    cluster, events = make(script, membership)
    async with running(cluster):
        await eventually(lambda: membership.connected == {"a@1", "b@2", "shell@9"})
        script.set("a@1")
        await eventually(lambda: "b@2" not in membership.connected)
        assert [e.node for e in events.of(DisconnectOk)] == ["b@2"]
        assert "shell@9" in membership.connected
        assert cluster.topologies["t"].managed == {"a@1"}


async def test_vanished_node_gets_one_round_to_leave_by_itself() -> None:
    """Pruning waits for a second answer without the node: one that leaves on its own within
    the round is never disconnected (its global would report the loss to the others)."""
    membership = MemoryMembership(SELF, reachable={"a@1", "b@2", "c@3"})
    script = Script()
    script.set("a@1", "b@2", "c@3")
    cluster, events = make(script, membership)
    topology = cluster.topologies["t"]
    async with running(cluster):
        await eventually(lambda: membership.connected == {"a@1", "b@2", "c@3"})
        script.set("a@1")
        polls = topology.polls
        await topology.wait_polls(polls + 1)
        assert membership.count("disconnect") == 0, "no disconnect after one answer without them"
        membership.connected.discard("c@3")  # c leaves by itself meanwhile
        await eventually(lambda: "b@2" not in membership.connected)
        assert topology.polls >= polls + 2
        assert [e.node for e in events.of(DisconnectOk)] == ["b@2"]
        assert membership.count("disconnect", "c@3") == 0
        assert topology.managed == {"a@1"} and topology.missing == frozenset()


async def test_prune_off_keeps_vanished_nodes() -> None:
    membership = MemoryMembership(SELF, reachable={"a@1", "b@2"})
    script = Script()
    script.set("a@1", "b@2")
    cluster, _ = make(script, membership, prune=False)
    topology = cluster.topologies["t"]
    async with running(cluster):
        await eventually(lambda: membership.connected == {"a@1", "b@2"})
        script.set()
        await topology.wait_polls(topology.polls + 3)
        assert membership.connected == {"a@1", "b@2"}
        assert membership.count("disconnect") == 0


async def test_draining_nodes_are_neither_connected_nor_pruned() -> None:
    membership = MemoryMembership(SELF, reachable={"a@1", "b@2", "c@3"})
    script = Script()
    script.set("a@1", "b@2")
    cluster, _ = make(script, membership)
    topology = cluster.topologies["t"]
    async with running(cluster):
        await eventually(lambda: membership.connected == {"a@1", "b@2"})
        script.set("a@1", draining=("b@2", "c@3"))
        membership.connected.discard("a@1")
        await topology.wait_polls(topology.polls + 3)
        assert membership.connected == {"a@1", "b@2"}
        assert membership.count("connect", "c@3") == 0
        assert membership.count("disconnect") == 0
        membership.connected.discard("b@2")
        await topology.wait_polls(topology.polls + 2)
        assert membership.count("connect", "b@2") == 1


async def test_hooks_replace_membership_operations() -> None:
    membership = MemoryMembership(SELF)
    seen: list[tuple[str, str]] = []
    fake_connected: set[str] = set()

    def connect(m: object, name: str) -> bool:
        assert m is membership
        seen.append(("connect", name))
        fake_connected.add(name)
        return True

    async def disconnect(m: object, name: str) -> None:
        seen.append(("disconnect", name))
        fake_connected.discard(name)

    def list_nodes(m: object) -> set[str]:
        return set(fake_connected)

    script = Script()
    script.set("a@1", "b@2")
    cluster, _ = make(
        script, membership, connect=connect, disconnect=disconnect, list_nodes=list_nodes
    )
    async with running(cluster):
        await eventually(lambda: fake_connected == {"a@1", "b@2"})
        script.set("b@2")
        await eventually(lambda: ("disconnect", "a@1") in seen)
        assert membership.calls == []
        assert seen.count(("connect", "a@1")) == 1


async def test_crash_is_logged_and_restarted_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    membership = MemoryMembership(SELF, reachable={"a@1"})
    script = Script(crash_on_start=3)
    script.set("a@1")
    cluster, events = make(script, membership)
    with caplog.at_level(logging.ERROR, logger="beamlink.cluster"):
        async with running(cluster):
            await eventually(lambda: membership.connected == {"a@1"})
    crashes = events.of(TopologyCrashed)
    assert len(crashes) == 3
    assert crashes[0].restart_in <= crashes[2].restart_in * 2
    assert script.starts == 4
    assert any("boom on start" in (r.exc_text or "") for r in caplog.records)


async def test_unexpected_discover_exception_restarts_and_keeps_state() -> None:
    membership = MemoryMembership(SELF, reachable={"a@1"})
    script = Script()
    script.set("a@1")
    cluster, events = make(script, membership)
    topology = cluster.topologies["t"]
    async with running(cluster):
        await eventually(lambda: membership.connected == {"a@1"})
        script.answer = ZeroDivisionError("bug")
        await eventually(lambda: len(events.of(TopologyCrashed)) >= 2)
        assert script.closes >= 2
        assert topology.last_good is not None and topology.last_good.nodes == {"a@1"}
        assert membership.count("disconnect") == 0
        script.set("a@1")
        await eventually(lambda: len(events.of(PollOk)) >= 2)


async def test_connect_exception_is_an_error_event_not_a_crash() -> None:
    class Exploding(MemoryMembership):
        async def connect(self, name: str) -> bool:
            raise ConnectionRefusedError("nope")

    membership = Exploding(SELF)
    script = Script()
    script.set("a@1")
    cluster, events = make(script, membership)
    async with running(cluster):
        await eventually(lambda: len(events.of(ConnectError)) >= 2)
        assert "ConnectionRefusedError" in events.of(ConnectError)[0].reason
        assert events.of(TopologyCrashed) == []


async def test_stop_leaves_everyone() -> None:
    membership = MemoryMembership(SELF, reachable={"a@1", "b@2"}, connected={"x@3"})
    script = Script()
    script.set("a@1", "b@2")
    cluster, _ = make(script, membership)
    await cluster.start()
    await eventually(lambda: membership.connected == {"a@1", "b@2", "x@3"})
    await cluster.stop()
    assert membership.connected == set()
    assert not cluster.running
    assert script.closes == 1


async def test_subscriber_failure_does_not_disturb_the_loop() -> None:
    membership = MemoryMembership(SELF, reachable={"a@1"})
    script = Script()
    script.set("a@1")
    cluster, _ = make(script, membership)

    def broken(event: object) -> None:
        raise RuntimeError("subscriber bug")

    cluster.subscribe(broken)
    async with running(cluster):
        await eventually(lambda: membership.connected == {"a@1"})


async def test_node_not_yet_listed_polls_quickly_until_it_is() -> None:
    """Nodes started together may each poll before the others are listed (Swarm lists a task
    once healthy): until an answer lists this node, polls come every 0.25 s; from the first
    answer listing it, at the polling interval."""
    membership = MemoryMembership(SELF, reachable={"a@1", "b@2"})
    script = Script()
    script.set("a@1")
    cluster, _ = make(script, membership, interval=600_000)
    topology = cluster.topologies["t"]
    async with running(cluster):
        await asyncio.wait_for(topology.wait_polls(3), 30)
        gaps = [b - a for a, b in itertools.pairwise(script.discover_times)]
        assert all(0.24 <= gap < 60 for gap in gaps)  # 0.25 s, not 600 s
        script.set(SELF, "a@1", "b@2")
        await eventually(lambda: membership.connected == {"a@1", "b@2"}, timeout=30)
        polls = topology.polls
        await asyncio.sleep(2.5)
        assert topology.polls == polls


async def test_answers_never_listing_the_node_slow_down_to_the_interval() -> None:
    membership = MemoryMembership(SELF, reachable={"a@1"})
    script = Script()
    script.set("a@1")
    cluster, _ = make(script, membership, interval=1000)
    topology = cluster.topologies["t"]
    async with running(cluster):
        await asyncio.wait_for(topology.wait_polls(8), 30)
        gaps = [b - a for a, b in itertools.pairwise(script.discover_times)]
        # Every 0.25 s for at most one interval (1 s), then the interval for good.
        assert gaps[0] < 0.75 and all(gap >= 0.95 for gap in gaps[5:])
