"""Node metrics: `NodeCollector` values after real traffic between Python nodes over TCP, failed
handshakes of every kind (wrong cookie, not allowed, unknown node, refused port, timeout,
garbage bytes), processes and mailboxes, RPC outcomes, EPMD state, HTTP serving is tested in tests/web."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from beamlink import __version__
from beamlink.epmd import register
from beamlink.etf import Atom
from beamlink.node import Node
from beamlink.node.metrics import NodeCollector
from tests.support.erlang import free_port
from tests.support.wait import eventually

pytestmark = pytest.mark.timeout(60)

COOKIE = "metricstest"
A = "ma@127.0.0.1"
B = "mb@127.0.0.1"
# Every reason a handshake failure can be counted under (connection.manager.failure_reason).
REASONS = {
    "malformed", "oversized", "unexpected", "bad_name", "name_mismatch", "missing_flags",
    "bad_cookie", "refused", "sfalse", "old_peer", "not_allowed", "timeout",
    "connection_refused", "closed", "socket_error", "other", "unresolved",
}


class Scraper:
    """A node's collector in its own registry, read like Prometheus reads it."""

    def __init__(self, node: Node) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(NodeCollector(node))

    def __call__(self, metric: str, /, **labels: str) -> float:
        value = self.registry.get_sample_value(metric, labels)
        return 0.0 if value is None else value

    def samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {
            tuple(sorted(s.labels.items())): s.value
            for family in self.registry.collect()
            for s in family.samples
            if s.name == name
        }


@pytest.fixture
async def epmd_port() -> int:
    return free_port()


@pytest.fixture
async def node_a(epmd_port: int) -> AsyncIterator[Node]:
    async with Node.start(
        A, COOKIE, epmd_port=epmd_port, listen_host="127.0.0.1", handshake_timeout=1.0
    ) as node:
        yield node


async def test_traffic_nodeup_nodedown_and_delivery(node_a: Node, epmd_port: int) -> None:
    a = Scraper(node_a)
    received: list[object] = []

    async def sink(proc: object) -> None:
        while True:
            received.append(await proc.receive())  # type: ignore[attr-defined]

    node_a.spawn(sink, name="sink")
    node_b = await Node.start(B, COOKIE, epmd_port=epmd_port, listen_host="127.0.0.1")
    b = Scraper(node_b)
    try:
        assert await node_b.connect(A)
        for i in range(50):
            node_b.send(("sink", A), (Atom("n"), i))
        await eventually(lambda: len(received) == 50)
        assert a("beamlink_connected_nodes", visibility="visible") == 1
        assert a("beamlink_connected_nodes", visibility="hidden") == 0
        assert a("beamlink_nodeup_total", visibility="visible") == 1
        assert a("beamlink_connection_attempts_total", direction="in") == 1
        assert b("beamlink_connection_attempts_total", direction="out") == 1
        assert a("beamlink_messages_delivered_total", source="remote") >= 50
        frames_in = a("beamlink_dist_peer_received_frames_total", peer=B)
        assert frames_in >= 50
        assert a("beamlink_dist_received_frames_total") >= frames_in
        # What one side sent the other received, byte for byte (handshake and ticks included).
        await eventually(
            lambda: b("beamlink_dist_peer_sent_bytes_total", peer=A)
            == a("beamlink_dist_peer_received_bytes_total", peer=B)
        )
        assert b("beamlink_dist_peer_sent_frames_total", peer=A) == frames_in
        assert a("beamlink_dist_received_bytes_total") >= a(
            "beamlink_dist_peer_received_bytes_total", peer=B
        )
        total_before = a("beamlink_dist_received_bytes_total")
        await node_b.disconnect(A)
        await eventually(lambda: a("beamlink_connected_nodes", visibility="visible") == 0)
        assert a("beamlink_nodedown_total", reason="closed") == 1
        assert b("beamlink_nodedown_total", reason="disconnected") == 1
        # The peer's own series went with its connection; the node-wide totals stay.
        assert a.samples("beamlink_dist_peer_received_bytes_total") == {}
        assert a("beamlink_dist_received_bytes_total") == total_before
    finally:
        await node_b.stop()
    assert a("beamlink_handshake_failures_total", direction="in", reason="bad_cookie") == 0


async def test_handshake_failures_by_reason(node_a: Node, epmd_port: int) -> None:
    a = Scraper(node_a)
    async with Node.start(
        "wrong@127.0.0.1", "not-the-cookie", epmd_port=epmd_port, listen_host="127.0.0.1"
    ) as wrong:
        w = Scraper(wrong)
        assert not await wrong.connect(A)
        await eventually(
            lambda: a("beamlink_handshake_failures_total", direction="in", reason="bad_cookie") == 1
        )
        assert w("beamlink_handshake_failures_total", direction="out", reason="bad_cookie") == 1

    node_a.manager.allow = lambda name: name != Atom(B)
    async with Node.start(B, COOKIE, epmd_port=epmd_port, listen_host="127.0.0.1") as node_b:
        b = Scraper(node_b)
        assert not await node_b.connect(A)
        assert a("beamlink_handshake_failures_total", direction="in", reason="not_allowed") == 1
        assert b("beamlink_handshake_failures_total", direction="out", reason="not_allowed") == 1
    node_a.manager.allow = None

    assert not await node_a.connect("ghost@127.0.0.1")
    assert a("beamlink_handshake_failures_total", direction="out", reason="unresolved") == 1

    closed_port = free_port()
    registration = await register("dead", closed_port, epmd_port=epmd_port)
    try:
        assert not await node_a.connect("dead@127.0.0.1")
    finally:
        await registration.close()
    assert a("beamlink_handshake_failures_total", direction="out", reason="connection_refused") == 1

    # A socket that never speaks: the handshake times out (handshake_timeout=1.0).
    reader, writer = await asyncio.open_connection("127.0.0.1", node_a.port)
    try:
        await eventually(
            lambda: a("beamlink_handshake_failures_total", direction="in", reason="timeout") == 1
        )
        assert await asyncio.wait_for(reader.read(1), 5) == b""
    finally:
        writer.close()
    assert a("beamlink_connection_attempts_total", direction="out") == 2
    assert a("beamlink_connection_attempts_total", direction="in") == 3
    assert a("beamlink_nodeup_total", visibility="visible") == 0


async def test_garbage_handshakes_count_one_bounded_failure_each(node_a: Node) -> None:
    a = Scraper(node_a)
    rng = random.Random(7)
    sent = 12
    for i in range(sent):
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        if i % 3 == 0:  # a plausible length prefix, then noise
            garbage = len(garbage).to_bytes(2, "big") + garbage
        reader, writer = await asyncio.open_connection("127.0.0.1", node_a.port)
        try:
            writer.write(garbage)
            await writer.drain()
            # Keep the socket open until the node gives up on it (error or timeout).
            while await asyncio.wait_for(reader.read(4096), 10):
                pass
        finally:
            writer.close()
    await eventually(
        lambda: sum(a.samples("beamlink_handshake_failures_total").values()) == sent
    )
    for labels in a.samples("beamlink_handshake_failures_total"):
        reason = dict(labels)["reason"]
        assert dict(labels)["direction"] == "in" and reason in REASONS
    assert a("beamlink_connection_attempts_total", direction="in") == sent
    assert a("beamlink_dist_received_bytes_total") > 0


async def test_processes_mailboxes_and_local_delivery(node_a: Node) -> None:
    a = Scraper(node_a)
    base_processes = a("beamlink_processes")
    base_names = a("beamlink_registered_names")
    idle = asyncio.Event()

    async def wait(proc: object) -> None:
        await idle.wait()

    procs = [node_a.spawn(wait) for _ in range(3)]
    node_a.spawn(wait, name="named")
    for i in range(7):
        node_a.send(procs[0].pid, i)
    node_a.send(procs[1].pid, "one")
    assert a("beamlink_processes") == base_processes + 4
    assert a("beamlink_registered_names") == base_names + 1
    assert a("beamlink_mailbox_depth_max") == 7
    assert a("beamlink_mailbox_messages") == 8
    assert a("beamlink_messages_delivered_total", source="local") == 8
    idle.set()
    await asyncio.gather(*(p.task for p in procs if p.task is not None))
    await eventually(lambda: a("beamlink_processes") == base_processes)
    node_a.send(procs[0].pid, "late")
    node_a.send(("nobody", A), "late")
    assert a("beamlink_messages_dropped_total") == 2
    assert a("beamlink_mailbox_depth_max") == 0


async def test_rpc_outcomes_and_epmd_state(node_a: Node, epmd_port: int) -> None:
    a = Scraper(node_a)
    assert a("beamlink_epmd_registered") == 1
    assert a("beamlink_epmd_embedded_owner") == 1
    assert a("beamlink_epmd_creation") == node_a.creation == a("beamlink_node_creation")
    assert a("beamlink_epmd_reregistrations_total") == 0
    assert a("beamlink_node_info", name=A, hidden="false", version=__version__) == 1
    async with Node.start(B, COOKIE, epmd_port=epmd_port, listen_host="127.0.0.1") as node_b:
        b = Scraper(node_b)
        assert b("beamlink_epmd_embedded_owner") == 0
        assert b("beamlink_epmd_registered") == 1
        assert await node_b.rpc(A, "math", "sqrt", [16.0]) == 4.0
        with pytest.raises(Exception, match="ValueError"):
            await node_b.rpc(A, "math", "sqrt", [-1.0])
        with pytest.raises(Exception, match="undef"):
            await node_b.rpc(A, "no_such_module_here", "f", [])
        node_b.rpc_cast(A, "math", "sqrt", [1.0])
        await eventually(lambda: a("beamlink_rpc_calls_total", kind="cast", result="return") == 1)
    assert a("beamlink_rpc_calls_total", kind="call", result="return") == 1
    assert a("beamlink_rpc_calls_total", kind="call", result="error") == 2


async def test_fixed_port_node_has_no_epmd_metrics() -> None:
    async with Node.start("fixed@127.0.0.1", COOKIE, dist_port=free_port()) as node:
        scraper = Scraper(node)
        assert scraper.samples("beamlink_epmd_registered") == {}
        assert scraper("beamlink_connected_nodes", visibility="visible") == 0


def _hog(seconds: float) -> None:
    time.sleep(seconds)  # the stall under test, run as a loop callback on purpose


async def test_event_loop_lag_and_stalls(node_a: Node) -> None:
    a = Scraper(node_a)
    assert a("beamlink_event_loop_stall_threshold_seconds") == 0.1
    await eventually(lambda: a("beamlink_event_loop_lag_seconds_count") > 0)
    stalls = a("beamlink_event_loop_stalls_total")
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(lambda: (_hog(0.5), done.set_result(None)))
    await asyncio.wait_for(done, 30)
    await eventually(lambda: a("beamlink_event_loop_stalls_total") > stalls)
    assert a("beamlink_event_loop_lag_max_seconds") >= 0.3
    assert a("beamlink_event_loop_lag_seconds_bucket", le="+Inf") == a(
        "beamlink_event_loop_lag_seconds_count"
    )
    assert a("beamlink_event_loop_lag_seconds_bucket", le="0.1") < a(
        "beamlink_event_loop_lag_seconds_count"
    )
    assert a("beamlink_dist_stall_ticks_total") == 0  # no peers connected


async def test_worker_pool(node_a: Node) -> None:
    a = Scraper(node_a)
    assert a("beamlink_workers") == 64 and a("beamlink_worker_processes") == 0
    done = a("beamlink_worker_calls_total")
    gate = threading.Event()
    call = asyncio.ensure_future(node_a.executor.call(gate.wait, 30))
    await eventually(lambda: a("beamlink_worker_calls_busy") == 1)
    gate.set()
    assert await asyncio.wait_for(call, 30) is True
    assert a("beamlink_worker_calls_busy") == 0
    assert a("beamlink_worker_calls_total") == done + 1
