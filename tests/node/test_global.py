"""Erlang's ``global`` between beamlink nodes over real TCP (no Erlang needed): sync, name
registration, cleanup on process exit and node loss, clash resolution when partitions merge, and a
``global_name_server`` that survives garbage."""

from __future__ import annotations

import asyncio
import random
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beamlink.etf import Atom, Export, Pid
from beamlink.node import Node, UnknownName
from beamlink.node.genserver import GEN_CALL, GEN_CAST
from beamlink.node.kernel.globalname.resolve import resolve_method
from beamlink.node.kernel.globalname.vocabulary import (
    GNS,
    PROTOCOL_VSN,
    global_name,
    locker_lock_id,
    pid_order,
    random_sleep_seconds,
)
from tests.support import wait
from tests.support.erlang import free_port
from tests.support.nodes import idle, python_nodes

COOKIE = "globaltest"
SYNC_TIMEOUT = 20.0


def cluster(*names: str, hidden: tuple[str, ...] = ()) -> AbstractAsyncContextManager[list[Node]]:
    """Python nodes ``<name>@127.0.0.1`` (those in ``hidden`` hidden) sharing one (embedded) EPMD
    port; all stopped at the end."""
    return python_nodes(
        COOKIE,
        free_port(),
        *(f"{name}@127.0.0.1" for name in names),
        hidden=[f"{name}@127.0.0.1" for name in hidden],
    )


async def eventually(check: Any, timeout: float = SYNC_TIMEOUT) -> None:
    """``tests.support.wait.eventually`` with this module's sync timeout."""
    await wait.eventually(check, timeout)


async def test_two_python_nodes_sync_and_share_names() -> None:
    async with cluster("ga", "gb") as (a, b):
        assert await a.connect(b.name)
        await a.global_sync(SYNC_TIMEOUT)
        await b.global_sync(SYNC_TIMEOUT)
        assert a.global_server.synced == [b.name]
        assert b.global_server.known == {a.name: PROTOCOL_VSN}

        server = a.spawn(idle)
        assert await a.global_register("svc", server)
        assert await b.global_whereis("svc") == server.pid
        assert b.global_names() == [Atom("svc")]
        # taken name, and a pid that already has a name
        assert not await b.global_register("svc", b.spawn(idle))
        assert not await b.global_register(("other", 1), server.pid)
        # any term is a name
        other = b.spawn(idle)
        assert await b.global_register((Atom("job"), [1, 2]), other)
        assert await a.global_whereis((Atom("job"), [1, 2])) == other.pid
        # global_send reaches the holder; an unknown name raises
        receiver = b.spawn(lambda p: p.receive())
        assert await b.global_register("inbox", receiver)
        assert b.global_send("inbox", Atom("hello")) == receiver.pid
        assert await receiver.wait() == Atom("normal")
        with pytest.raises(UnknownName):
            a.global_send("nobody", Atom("x"))

        await b.global_unregister("svc")
        assert await a.global_whereis("svc") is None
        await b.global_unregister("never_registered")
        await a.global_re_register("svc", other)
        assert await b.global_whereis("svc") == other.pid


async def test_name_goes_when_its_process_dies_or_its_node_leaves() -> None:
    async with cluster("gc", "gd") as (c, d):
        assert await c.connect(d.name)
        await c.global_sync(SYNC_TIMEOUT)
        worker = d.spawn(idle)
        assert await d.global_register("worker", worker)
        assert await c.global_whereis("worker") == worker.pid
        worker.close(Atom("shutdown"))
        await eventually(lambda: "worker" not in [str(n) for n in c.global_names()])
        assert await d.global_whereis("worker") is None

        survivor = d.spawn(idle)
        assert await d.global_register("survivor", survivor)
        assert await c.global_whereis("survivor") == survivor.pid
        assert await c.disconnect(d.name)
        await eventually(lambda: c.global_names() == [])
        assert c.global_server.known == {}
        # reconnecting syncs again and brings the name back
        assert await c.connect(d.name)
        await c.global_sync(SYNC_TIMEOUT)
        await eventually(lambda: c.global_server.where(Atom("survivor")) == survivor.pid)


async def test_third_node_learns_everything_through_one_connection() -> None:
    async with cluster("ge", "gf", "gg") as (e, f, g):
        assert await e.connect(f.name)
        await e.global_sync(SYNC_TIMEOUT)
        assert await e.global_register("first", e.spawn(idle))
        # g only dials f: global makes g and e meet (sync_others) and share names
        assert await g.connect(f.name)
        await g.global_sync(SYNC_TIMEOUT)
        await eventually(lambda: e.name in g.nodes())
        await g.global_sync(SYNC_TIMEOUT)
        await eventually(lambda: g.global_server.where(Atom("first")) is not None)
        for node in (e, f, g):
            await node.global_sync(SYNC_TIMEOUT)
            assert sorted(node.global_server.known) == sorted(
                n.name for n in (e, f, g) if n is not node
            )
        assert await g.global_register("second", g.spawn(idle))
        for node in (e, f):
            assert node.global_server.where(Atom("second")) is not None


@pytest.mark.parametrize(
    ("method", "loser_gets"),
    [
        ("random_exit_name", "killed"),
        ("random_notify_name", "conflict"),
        ("notify_all_name", "both"),
    ],
)
async def test_clash_when_partitions_merge(method: str, loser_gets: str) -> None:
    async with cluster("gh", "gi") as (h, i):
        on_h = h.spawn(lambda p: p.receive())
        on_i = i.spawn(lambda p: p.receive())
        assert await h.global_register("clash", on_h, method)
        assert await i.global_register("clash", on_i, method)
        assert await h.connect(i.name)
        await h.global_sync(SYNC_TIMEOUT)
        await i.global_sync(SYNC_TIMEOUT)
        # the pid on the node with the smaller name (gh) wins
        if loser_gets == "killed":
            assert await asyncio.wait_for(on_i.wait(), SYNC_TIMEOUT) == Atom("killed")
            await eventually(lambda: i.global_server.where(Atom("clash")) == on_h.pid)
            assert h.global_server.where(Atom("clash")) == on_h.pid
        elif loser_gets == "conflict":
            assert await asyncio.wait_for(on_i.wait(), SYNC_TIMEOUT) == Atom("normal")
            assert on_i.exit_reason == Atom("normal")
            assert h.global_server.where(Atom("clash")) == on_h.pid
            await eventually(lambda: i.global_server.where(Atom("clash")) == on_h.pid)
        else:
            await eventually(lambda: not on_h.is_alive and not on_i.is_alive)
            await eventually(
                lambda: (
                    h.global_server.where(Atom("clash")) is None
                    and i.global_server.where(Atom("clash")) is None
                )
            )


async def test_hidden_node_never_syncs() -> None:
    async with cluster("gj", "gk", hidden=("gk",)) as (j, k):
        assert await k.connect(j.name)
        assert k.name in j.nodes(hidden=True)
        await j.global_sync(SYNC_TIMEOUT)  # nothing to wait for
        await asyncio.sleep(0.5)
        assert j.global_server.sessions == {} and k.global_server.sessions == {}
        assert j.global_server.known == {} and k.global_server.known == {}


async def test_garbage_to_global_name_server_is_dropped() -> None:
    rng = random.Random(7)
    async with cluster("gl", "gm") as (node_l, node_m):
        assert await node_l.connect(node_m.name)
        await node_l.global_sync(SYNC_TIMEOUT)
        shapes: list[Any] = [
            Atom("x"),
            42,
            b"\x00",
            (),
            (Atom("init_connect"),),
            (GEN_CAST, 1),
            (GEN_CAST, (Atom("init_connect"), Atom("v"), 5, ())),
            (GEN_CAST, (Atom("init_connect"), (8, 1), Atom("gl@127.0.0.1"), (1, 2, 3, 4))),
            (GEN_CAST, (Atom("exchange"), 1, 2, 3, 4)),
            (GEN_CAST, (Atom("resolved"), 1, 2, 3, 4, 5, 6)),
            (GEN_CAST, (Atom("new_nodes"), 1, [(1, 2)], 3, 4, 5)),
            (GEN_CAST, (Atom("lock_set"), 1, True, [], 4)),
            (GEN_CALL, (Pid(node_l.name, 999, 0, 1), 1), (Atom("register"), 1, 2, 3)),
            (GEN_CALL, (Pid(node_l.name, 999, 0, 1), 1), (Atom("set_lock"), 5)),
            (Atom("lost_connection"), 1, 2, 3, 4),
            (Atom("DOWN"), 1, 2, 3, 4),
        ]
        for _ in range(200):
            msg = rng.choice(shapes)
            if rng.random() < 0.3:
                msg = (msg, rng.randbytes(rng.randrange(5)))
            node_m.send((GNS, node_l.name), msg)
        await asyncio.sleep(0.3)
        assert node_l.global_server.proc.is_alive
        assert await node_m.global_register("after_garbage", node_m.spawn(idle))
        assert node_l.global_server.where(Atom("after_garbage")) is not None


@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**15),
            st.integers(0, 2**28 - 1),
            st.sampled_from(["a@h", "b@h", "py@127.0.0.1"]),
            st.integers(0, 2**32 - 1),
        ),
        min_size=2,
        max_size=2,
    )
)
def test_lock_id_is_symmetric(parts: list[tuple[int, int, str, int]]) -> None:
    p1, p2 = (Pid(Atom(n), i, s, c) for s, i, n, c in parts)
    assert locker_lock_id(p1, p2) == locker_lock_id(p2, p1)
    assert locker_lock_id(p1, p2)[1] == sorted([p1, p2], key=pid_order)


def test_small_helpers() -> None:
    assert global_name("abc") == Atom("abc") and global_name(b"abc") == b"abc"
    assert resolve_method("random_notify_name") == Export(
        Atom("global"), Atom("random_notify_name"), 3
    )
    with pytest.raises(ValueError):
        resolve_method("whatever")
    assert all(0 < random_sleep_seconds(t) <= 8 for t in range(12))
