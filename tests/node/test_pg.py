"""pg scopes between beamlink nodes over real TCP (no Erlang needed): the Python API, monitors,
a crash, a node stop, a disconnect that heals, named scopes and a scope that survives garbage."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from beamlink.etf import Atom, Pid
from beamlink.node import Node, Process
from beamlink.node.kernel.pg import PgEvent
from tests.support import wait
from tests.support.erlang import free_port
from tests.support.nodes import idle, python_nodes

COOKIE = "pgtest"
JOBS = Atom("jobs")


def cluster(*names: str) -> AbstractAsyncContextManager[list[Node]]:
    """Python nodes ``<name>@127.0.0.1`` sharing one (embedded) EPMD port; all stopped at the end."""
    return python_nodes(COOKIE, free_port(), *(f"{name}@127.0.0.1" for name in names))


def members(node: Node, group: Any = JOBS, scope: str | None = None) -> list[Pid]:
    pg = node.pg if scope is None else node.pg_scope(scope)
    return sorted(pg.get_members(group), key=repr)


async def converge(nodes: list[Node], expected: list[Pid], group: Any = JOBS) -> None:
    want = sorted(expected, key=repr)
    await wait.eventually(
        lambda: all(members(n, group) == want for n in nodes),
        20.0,
        what=f"every node sees {group!r} = {want}",
    )


async def test_api_on_one_node() -> None:
    async with cluster("pg_one") as (node,):
        a, b = node.spawn(idle), node.spawn(idle)
        node.pg.join("room", a)  # a str group is an Erlang binary
        node.pg.join(JOBS, [a.pid, b])
        node.pg.join(JOBS, a)
        assert node.pg.get_members(b"room") == [a.pid]
        assert node.pg.get_members(JOBS) == [a.pid, a.pid, b.pid]
        assert node.pg.get_local_members(JOBS) == [a.pid, a.pid, b.pid]
        assert sorted(map(repr, node.pg.which_groups())) == sorted(map(repr, [b"room", JOBS]))
        assert node.pg.leave(JOBS, a) is True
        assert node.pg.get_members(JOBS) == [a.pid, b.pid]
        assert node.pg.leave("nothing", a) is False
        node.pg.join((Atom("job"), 1), a)  # tuples, lists, maps: any term
        node.pg.join([1, 2], a)
        assert node.pg.get_members((Atom("job"), 1)) == [a.pid]
        assert node.pg.get_members([1, 2]) == [a.pid]
        with pytest.raises(ValueError, match="on its own node"):
            node.pg.join(JOBS, Pid(Atom("other@host"), 1, 0, 1))
        assert node.whereis("pg") == node.pg.pid
        assert node.pg_scope("other").pid != node.pg.pid
        b.close()
        await wait.eventually(lambda: node.pg.get_members(JOBS) == [a.pid], 5.0)


async def test_membership_monitors_crash_stop_and_heal() -> None:
    async with cluster("pg_a", "pg_b", "pg_c") as (a, b, c):
        for node in (a, b, c):
            assert node.pg.pid  # start the default scope everywhere
        assert await a.connect(b.name) and await a.connect(c.name) and await b.connect(c.name)
        pa, pb, pc = a.spawn(idle), b.spawn(idle), c.spawn(idle)
        scope_mon = a.pg.monitor_scope()
        group_mon = a.pg.monitor(JOBS)
        assert group_mon.members == []
        a.pg.join(JOBS, pa)
        b.pg.join(JOBS, [pb, pb])
        c.pg.join(JOBS, pc)
        await converge([a, b, c], [pa.pid, pb.pid, pb.pid, pc.pid])
        assert await group_mon.next(5) == PgEvent("join", JOBS, (pa.pid,))
        seen = {(await scope_mon.next(5)).pids for _ in range(3)}
        assert seen == {(pa.pid,), (pb.pid, pb.pid), (pc.pid,)}

        pb.close()  # a crash: every membership of the process goes everywhere
        await converge([a, b, c], [pa.pid, pc.pid])

        b_side = b.pg.monitor(JOBS)
        await b.disconnect(a.name)  # a partition: b alone, a and c on the other side
        await b.disconnect(c.name)
        await wait.eventually(lambda: members(b) == [], 10.0, what="b loses a's and c's members")
        pb2 = b.spawn(idle)
        b.pg.join(JOBS, pb2)  # changes on both sides meanwhile
        c.pg.leave(JOBS, pc)
        assert await b.connect(a.name) and await b.connect(c.name)  # heals
        await converge([a, b, c], [pa.pid, pb2.pid])
        leaves = [await b_side.next(5) for _ in range(2)]
        assert {e.pids for e in leaves if e.action == "leave"} == {(pa.pid,), (pc.pid,)}
        b_side.close()

        pc3 = c.spawn(idle)
        c.pg.join(JOBS, pc3)
        await converge([a, b, c], [pa.pid, pb2.pid, pc3.pid])
        await c.stop()  # a node that stops loses its members everywhere
        await converge([a, b], [pa.pid, pb2.pid])
        scope_mon.close()
        group_mon.close()
        with pytest.raises(StopAsyncIteration):
            await group_mon.next(1)


async def test_named_scope_and_broadcast() -> None:
    async with cluster("pg_x", "pg_y") as (x, y):
        assert await x.connect(y.name)
        got: list[Any] = []

        async def worker(proc: Process) -> None:
            while True:
                got.append((proc.pid, await proc.receive()))

        workers = [x.spawn(worker) for _ in range(3)] + [y.spawn(worker) for _ in range(3)]
        for proc in workers:
            proc.node.pg_scope("jobs_scope").join(Atom("w"), proc)
        x.pg_scope("jobs_scope").join(Atom("w"), workers[0])  # joined twice, sent once
        await wait.eventually(
            lambda: len(x.pg_scope("jobs_scope").get_members(Atom("w"))) == 7, 10.0
        )
        assert x.pg.get_members(Atom("w")) == []  # other scope
        assert x.pg_scope("jobs_scope").broadcast(Atom("w"), "hello") == 6
        await wait.eventually(lambda: len(got) == 6, 10.0)
        assert sorted(repr(p) for p, _ in got) == sorted(repr(p.pid) for p in workers)


async def test_scope_survives_garbage() -> None:
    async with cluster("pg_g") as (node,):
        p = node.spawn(idle)
        node.pg.join(JOBS, p)
        me = node.new_process()
        junk: Any
        for junk in [
            "x",
            (Atom("join"), "notapid", JOBS, []),
            (Atom("leave"), me.pid, "notalist", 1),
            (Atom("$gen_cast"), (Atom("sync"), me.pid, "x")),
            (Atom("$gen_call"), (me.pid, node.make_ref()), Atom("monitor")),
            (Atom("discover"),),
        ]:
            me.send(node.pg.pid, junk)
        me.send(node.pg.pid, (Atom("discover"), me.pid))
        reply = await me.receive(timeout=5)  # still answers: its sync
        assert reply[0] == Atom("$gen_cast")
        assert reply[1][2] == [(JOBS, [p.pid])]
        me.close()
