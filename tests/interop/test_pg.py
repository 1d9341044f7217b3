"""Erlang's ``pg`` with beamlink nodes among real OTP 25/27 (and Elixir) nodes: membership seen
both ways (multi-join included), ``pg:monitor``/``pg:monitor_scope`` on Erlang and Python
monitors seeing the other side, a process crash, a node stop and a SIGKILL, churn while nodes
come and go, and a partition that heals."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from beamlink.etf import Atom, Pid
from beamlink.node import Node, Process
from tests.node.interop import COOKIE, start_erl, term
from tests.support import wait
from tests.support.erlang import ErlPeer, ErlRuntime, free_port
from tests.support.fixtures import PeerFactory, _epmd_hygiene, erl_runtime, peers
from tests.support.nodes import idle, python_nodes

pytestmark = pytest.mark.interop
__all__ = ["_epmd_hygiene", "erl_runtime", "peers"]

JOBS = Atom("jobs")
CONVERGE = 30.0


async def start_pg_peer(peers: PeerFactory, rt: ErlRuntime, name: str, port: int, **kw: Any) -> ErlPeer:
    """An Erlang (or Elixir) node running the default ``pg`` scope."""
    peer = await start_erl(peers, rt, name, epmd_port=port, **kw)
    start = ":pg.start(:pg)" if peer.elixir else "pg:start(pg)"
    assert (await peer.aeval(start)).startswith("{ok,")
    return peer


def srt(pids: list[Pid]) -> list[str]:
    return sorted(map(repr, pids))


async def erl_members(peer: ErlPeer, group: str = "jobs", local: bool = False) -> list[str]:
    fn = "get_local_members" if local else "get_members"
    expr = f":pg.{fn}({group})" if peer.elixir else f"pg:{fn}({group})"
    return srt(await term(peer, expr))


async def converge(
    nodes: list[Node], erls: list[ErlPeer], expected: list[Pid], group: Any = JOBS
) -> None:
    want = srt(expected)
    erl_group = f":{group}" if erls and erls[0].elixir else str(group)

    async def check() -> bool:
        if any(srt(n.pg.get_members(group)) != want for n in nodes):
            return False
        return all([await erl_members(e, erl_group) == want for e in erls])

    await wait.eventually(check, CONVERGE, interval=0.1, what=f"every node sees {group} = {want}")


async def test_membership_both_ways_and_monitors(
    erl_runtime: ErlRuntime, peers: PeerFactory
) -> None:
    label = erl_runtime.label
    port = free_port()
    async with python_nodes(COOKIE, port, f"pypg_{label}@127.0.0.1") as (node,):
        node.pg  # noqa: B018 -- start the default scope before the Erlang node connects
        erl = await start_pg_peer(peers, erl_runtime, f"erlpg_{label}@127.0.0.1", port)
        await erl.aeval("{MRef, []} = pg:monitor(jobs), {SRef, _} = pg:monitor_scope()")
        py_mon = node.pg.monitor(JOBS)
        assert await erl.aeval(f"net_kernel:connect_node('{node.name}')") == "true"

        # Python joins (twice for one process): Erlang sees both memberships and its monitors fire
        worker = node.spawn(idle)
        node.pg.join(JOBS, [worker, worker])
        await converge([node], [erl], [worker.pid, worker.pid])
        joined = await term(erl, "receive {MRef, join, jobs, P} -> P after 10000 -> timeout end")
        assert joined == [worker.pid, worker.pid]
        scope_joined = await term(
            erl, "receive {SRef, join, jobs, P2} -> P2 after 10000 -> timeout end"
        )
        assert scope_joined == [worker.pid, worker.pid]
        assert await erl_members(erl, local=True) == []

        # Erlang joins: Python sees them, its monitor too
        await erl.aeval("E = spawn(fun() -> receive stop -> ok end end), ok = pg:join(jobs, [E, E])")
        e = await term(erl, "E")
        await converge([node], [erl], [worker.pid, worker.pid, e, e])
        assert (await py_mon.next(10)).pids == (worker.pid, worker.pid)  # its own join first
        event = await py_mon.next(10)
        assert (event.action, event.pids) == ("join", (e, e))
        assert node.pg.get_local_members(JOBS) == [worker.pid, worker.pid]
        assert JOBS in node.pg.which_groups()

        # One Python leave, then a crash of the Python process: Erlang's monitor sees both
        assert node.pg.leave(JOBS, worker)
        left = await term(erl, "receive {MRef, leave, jobs, L} -> L after 10000 -> timeout end")
        assert left == [worker.pid]
        worker.close("crash")
        left = await term(erl, "receive {MRef, leave, jobs, L2} -> L2 after 10000 -> timeout end")
        assert left == [worker.pid]
        await converge([node], [erl], [e, e])

        # An Erlang process crash: Python loses both its memberships
        await erl.aeval("exit(E, kill)")
        await converge([node], [erl], [])
        events = [await py_mon.next(10) for _ in range(4)]  # worker left twice, then e twice
        assert [(ev.action, ev.pids) for ev in events] == [
            *[("leave", (worker.pid,))] * 2,
            *[("leave", (e,))] * 2,
        ]
        py_mon.close()

        # Binary and tuple groups as Erlang writes them
        worker2 = node.spawn(idle)
        node.pg.join("room:lobby", worker2)
        node.pg.join((Atom("job"), 7), worker2)

        async def both_seen() -> bool:
            both = await term(erl, '{pg:get_members(<<"room:lobby">>), pg:get_members({job, 7})}')
            return bool(both == ([worker2.pid], [worker2.pid]))

        await wait.eventually(both_seen, CONVERGE, interval=0.1)
        # Erlang sends to the group; the Python member receives
        await erl.aeval('[P ! {job, 1} || P <- pg:get_members(<<"room:lobby">>)]')
        assert await worker2.mailbox.receive(timeout=10) == (Atom("job"), 1)


@pytest.mark.parametrize("how", ["stop", "sigkill"])
async def test_node_stop_and_sigkill(erl_runtime: ErlRuntime, peers: PeerFactory, how: str) -> None:
    label = erl_runtime.label
    port = free_port()
    async with python_nodes(COOKIE, port, f"pyd_{how}_{label}@127.0.0.1") as (node,):
        node.pg  # noqa: B018
        erl = await start_pg_peer(peers, erl_runtime, f"erld_{how}_{label}@127.0.0.1", port)
        assert await erl.aeval(f"net_kernel:connect_node('{node.name}')") == "true"
        await erl.aeval(
            "Ps = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, 5)], "
            "ok = pg:join(jobs, Ps)"
        )
        erl_pids = await term(erl, "Ps")
        mine = node.spawn(idle)
        node.pg.join(JOBS, mine)
        await converge([node], [erl], [*erl_pids, mine.pid])
        if how == "stop":
            await asyncio.to_thread(erl.stop)
        else:
            erl.proc.kill()
            await asyncio.to_thread(erl.proc.wait, 10)
        await converge([node], [], [mine.pid])
        assert node.pg.which_groups() == [JOBS]


async def test_partition_heals(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    label = erl_runtime.label
    port = free_port()
    async with python_nodes(COOKIE, port, f"pyp_{label}@127.0.0.1") as (node,):
        node.pg  # noqa: B018
        erl = await start_pg_peer(peers, erl_runtime, f"erlp_{label}@127.0.0.1", port)
        assert await erl.aeval(f"net_kernel:connect_node('{node.name}')") == "true"
        await erl.aeval("A = spawn(fun() -> receive stop -> ok end end), ok = pg:join(jobs, A)")
        a = await term(erl, "A")
        p1 = node.spawn(idle)
        node.pg.join(JOBS, p1)
        await converge([node], [erl], [a, p1.pid])

        assert await erl.aeval(f"erlang:disconnect_node('{node.name}')") == "true"
        await converge([node], [], [p1.pid])
        assert await erl_members(erl) == srt([a])
        # both sides change while apart
        p2 = node.spawn(idle)
        node.pg.join(JOBS, p2)
        node.pg.leave(JOBS, p1)
        await erl.aeval("B = spawn(fun() -> receive stop -> ok end end), ok = pg:join(jobs, B)")
        b = await term(erl, "B")
        assert await node.connect(erl.name)  # heals from the Python side
        await converge([node], [erl], [a, b, p2.pid])


async def test_churn(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    """Members join, leave and crash on two Python and two Erlang nodes while one node of each
    kind comes and goes; every surviving node ends up with the same view."""
    label = erl_runtime.label
    port = free_port()
    rng = random.Random(15)
    async with python_nodes(COOKIE, port, f"pyc_{label}@127.0.0.1") as (py,):
        py.pg  # noqa: B018
        erl = await start_pg_peer(peers, erl_runtime, f"erlc_{label}@127.0.0.1", port)
        assert await erl.aeval(f"net_kernel:connect_node('{py.name}')") == "true"
        await erl.aeval(
            "Spawn = fun() -> spawn(fun() -> receive stop -> ok end end) end, "
            "LeaveOne = fun() -> case pg:get_local_members(jobs) of "
            "[L | _] -> pg:leave(jobs, L); [] -> ok end end, "
            "KillOne = fun() -> case pg:get_local_members(jobs) of "
            "[K | _] -> exit(K, kill); [] -> ok end end"
        )
        mine: list[Process] = []
        for round_ in range(3):
            async with python_nodes(COOKIE, port, f"pyc{round_}_{label}@127.0.0.1") as (guest,):
                guest.pg.join(JOBS, [guest.spawn(idle) for _ in range(3)])
                assert await guest.connect(erl.name)
                erl2 = await start_pg_peer(
                    peers, erl_runtime, f"erlc{round_}_{label}@127.0.0.1", port
                )
                await erl2.aeval(
                    f"net_kernel:connect_node('{py.name}'), "
                    "ok = pg:join(jobs, [spawn(fun() -> receive stop -> ok end end) || _ <- [1,2]])"
                )
                for _ in range(12):
                    op = rng.choice(["pyjoin", "pyleave", "pycrash", "erljoin", "erlleave", "erlcrash"])
                    if op.startswith("py") and (op == "pyjoin" or not mine):
                        proc = py.spawn(idle)
                        mine.append(proc)
                        py.pg.join(JOBS, proc)
                    elif op == "pyleave":
                        py.pg.leave(JOBS, mine.pop(rng.randrange(len(mine))))
                    elif op == "pycrash":
                        mine.pop(rng.randrange(len(mine))).close("crash")
                    elif op == "erljoin":
                        await erl.aeval("ok = pg:join(jobs, Spawn())")
                    elif op == "erlleave":
                        await erl.aeval("LeaveOne()")
                    else:
                        await erl.aeval("KillOne()")
                    await asyncio.sleep(rng.random() / 20)
                if round_ % 2:
                    erl2.proc.kill()
                else:
                    await asyncio.to_thread(erl2.stop)
            # the guest Python node stopped with the block, the second Erlang node is gone
            erl_local = await term(erl, "pg:get_local_members(jobs)")
            await converge([py], [erl], [*py.pg.get_local_members(JOBS), *erl_local])
        assert srt(py.pg.get_local_members(JOBS)) == srt([p.pid for p in mine])


async def test_elixir_named_scope(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    """An Elixir node runs its own scope (as Phoenix.PubSub does); Python joins it and Elixir
    sends to the members it lists."""
    label = erl_runtime.label
    port = free_port()
    async with python_nodes(COOKIE, port, f"pyex_{label}@127.0.0.1") as (node,):
        scope = node.pg_scope("Elixir.MyApp.Workers")
        ex = await start_erl(
            peers, erl_runtime, f"expg_{label}@127.0.0.1", epmd_port=port, elixir=True
        )
        assert (await ex.aeval(":pg.start(MyApp.Workers)")).startswith("{ok,")
        assert await ex.aeval(f":net_kernel.connect_node(:'{node.name}')") == "true"
        got: asyncio.Queue[Any] = asyncio.Queue()

        async def worker(proc: Process) -> None:
            while True:
                got.put_nowait(await proc.receive())

        workers = [node.spawn(worker) for _ in range(3)]
        scope.join("workers", workers)  # an Elixir binary group: "workers"

        async def listed() -> bool:
            return await ex.aeval(':pg.get_members(MyApp.Workers, "workers") |> length') == "3"

        await wait.eventually(listed, CONVERGE, interval=0.1)
        await ex.aeval(
            'for p <- :pg.get_members(MyApp.Workers, "workers"), do: send(p, {:job, node()})'
        )
        ex_name = Atom(f"expg_{label}@127.0.0.1")
        for _ in workers:
            assert await asyncio.wait_for(got.get(), 10) == (Atom("job"), ex_name)
        await ex.aeval("me = self(); :ok = :pg.join(MyApp.Workers, \"workers\", me)")
        me = await term(ex, "me")
        await wait.eventually(lambda: me in scope.get_members("workers"), CONVERGE)
