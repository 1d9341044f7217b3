"""Erlang's ``global`` with beamlink nodes among real OTP 25/27/29 (and Elixir) nodes:
``global:sync()`` returns, names registered on either side are seen on the other, names go when their process dies
or their node leaves, clashes are resolved, and a cluster of two Erlang nodes and a Python node
syncs again after a disconnect and reconnect (with OTP's prevent_overlapping_partitions)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beamlink.etf import Atom, Pid, encode
from beamlink.node import Node
from beamlink.node.kernel.globalname.vocabulary import pid_order
from tests.node.interop import COOKIE, start_erl, term
from tests.support import wait
from tests.support.erlang import ErlPeer, ErlRuntime, free_port, host_runtime, start_peer
from tests.support.fixtures import PeerFactory, _epmd_hygiene, erl_runtime, peers
from tests.support.nodes import idle, python_nodes

pytestmark = pytest.mark.interop
__all__ = ["_epmd_hygiene", "erl_runtime", "peers"]

SYNC = 20.0  # bound on every global:sync() (it never returned before this module existed)


async def erl_sync(erl: ErlPeer) -> None:
    assert await erl.aeval("global:sync()", timeout=SYNC) == "ok"


async def eventually(peer: ErlPeer, expr: str, expected: str, timeout: float = SYNC) -> None:
    """Evaluate ``expr`` on ``peer`` until its ``~w`` text is ``expected`` (bounded)."""
    async def check() -> bool:
        return await peer.aeval(expr) == expected

    await wait.eventually(check, timeout, interval=0.05, what=f"{expr} on {peer.name} is {expected}")


async def test_sync_and_names_both_ways(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    label = erl_runtime.label
    port = free_port()
    async with python_nodes(COOKIE, port, f"pyg_{label}@127.0.0.1") as (node,):
        erl = await start_erl(peers, erl_runtime, f"erlg_{label}@127.0.0.1", epmd_port=port)
        assert await erl.aeval(f"net_kernel:connect_node('{node.name}')") == "true"
        await erl_sync(erl)
        await node.global_sync(SYNC)

        # Erlang -> Python
        await erl.aeval("Holder = spawn(fun() -> receive stop -> ok end end)")
        assert await erl.aeval("global:register_name(erl_name, Holder)") == "yes"
        holder = await term(erl, "Holder")
        assert await node.global_whereis("erl_name") == holder
        assert Atom("erl_name") in node.global_names()
        # Python -> Erlang
        py_proc = node.spawn(idle)
        assert await node.global_register("py_name", py_proc)
        assert await term(erl, "global:whereis_name(py_name)") == py_proc.pid
        assert sorted(await term(erl, "global:registered_names()")) == [
            Atom("erl_name"),
            Atom("py_name"),
        ]
        # a taken name is refused on both sides
        assert await erl.aeval("global:register_name(py_name, self())") == "no"
        assert not await node.global_register("erl_name", node.spawn(idle))
        # messages through global:send reach the Python process
        receiver = node.spawn(lambda p: p.receive())
        assert await node.global_register("py_inbox", receiver)
        await erl.aeval('global:send(py_inbox, {hello, <<"world">>})')
        assert await asyncio.wait_for(receiver.wait(), SYNC) == Atom("normal")
        # cleanup: a dead Python process, an Erlang unregister, a dead Erlang process
        py_proc.close(Atom("shutdown"))
        await eventually(erl, "global:whereis_name(py_name)", "undefined")
        assert await erl.aeval("global:unregister_name(erl_name)") == "ok"
        assert await node.global_whereis("erl_name") is None
        await erl.aeval("H2 = spawn(fun() -> receive stop -> ok end end)")
        assert await erl.aeval("global:register_name(erl_two, H2)") == "yes"
        assert await node.global_whereis("erl_two") is not None
        await erl.aeval("H2 ! stop")
        for _ in range(200):
            if await node.global_whereis("erl_two") is None:
                break
            await asyncio.sleep(0.05)
        assert await node.global_whereis("erl_two") is None
        # Python unregister, seen by Erlang; global RPC into the Python node
        await node.global_unregister("py_inbox")
        assert await term(erl, "global:registered_names()") == []
        assert await term(erl, f"rpc:call('{node.name}', global, whereis_name, [nobody])") == Atom(
            "undefined"
        )
        await erl_sync(erl)


async def test_sync_with_two_python_nodes(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    label = erl_runtime.label
    port = free_port()
    async with python_nodes(COOKIE, port, f"pya_{label}@127.0.0.1", f"pyb_{label}@127.0.0.1") as (a, b):
        erl = await start_erl(peers, erl_runtime, f"erl2g_{label}@127.0.0.1", epmd_port=port)
        for py in (a, b):
            assert await erl.aeval(f"net_kernel:connect_node('{py.name}')") == "true"
        await erl_sync(erl)
        # global connects the Python nodes to each other (full mesh) and syncs them
        assert await node_sees(a, b.name) and await node_sees(b, a.name)
        for py in (a, b):
            await py.global_sync(SYNC)
        await erl_sync(erl)
        assert sorted(await term(erl, "nodes()")) == sorted([a.name, b.name])
        on_a = a.spawn(idle)
        assert await a.global_register("from_a", on_a)
        assert await b.global_whereis("from_a") == on_a.pid
        assert await term(erl, "global:whereis_name(from_a)") == on_a.pid
        await erl.aeval("global:register_name(from_erl, spawn(fun() -> receive _ -> ok end end))")
        assert await a.global_whereis("from_erl") is not None
        assert await b.global_whereis("from_erl") is not None
        # a Python node that leaves takes its names with it
        await a.stop()
        await eventually(erl, "global:whereis_name(from_a)", "undefined")
        assert await b.global_whereis("from_a") is None
        await erl_sync(erl)


async def node_sees(node: Node, other: Atom) -> bool:
    for _ in range(200):
        if other in node.nodes():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_two_erlang_nodes_and_python_resync_after_reconnect(
    erl_runtime: ErlRuntime, peers: PeerFactory
) -> None:
    label = erl_runtime.label
    port = free_port()
    async with python_nodes(COOKIE, port, f"pyr_{label}@127.0.0.1") as (node,):
        e1 = await start_erl(peers, erl_runtime, f"e1_{label}@127.0.0.1", epmd_port=port)
        e2 = await start_erl(peers, erl_runtime, f"e2_{label}@127.0.0.1", epmd_port=port)
        assert await e1.aeval(f"net_kernel:connect_node('{e2.name}')") == "true"
        assert await e1.aeval(f"net_kernel:connect_node('{node.name}')") == "true"
        await erl_sync(e1)
        # e2 meets the Python node through global (new_nodes, then sync_others)
        await eventually(e2, f"lists:member('{node.name}', nodes())", "true")
        await erl_sync(e2)
        await node.global_sync(SYNC)
        py_proc = node.spawn(idle)
        assert await node.global_register("py_svc", py_proc)
        await e2.aeval("global:register_name(e2_svc, spawn(fun() -> receive _ -> ok end end))")

        # the Python node drops e1: prevent_overlapping_partitions breaks the triangle
        assert await node.disconnect(e1.name)
        await asyncio.sleep(1.0)
        for erl in (e1, e2):
            await erl_sync(erl)
        # reconnect everything and check that all three agree again
        assert await e1.aeval(f"net_kernel:connect_node('{node.name}')") == "true"
        assert await e1.aeval(f"net_kernel:connect_node('{e2.name}')") == "true"
        assert await e2.aeval(f"net_kernel:connect_node('{node.name}')") == "true"
        for erl in (e1, e2):
            await erl_sync(erl)
        await node.global_sync(SYNC)
        for erl in (e1, e2):
            await eventually(erl, "lists:sort(global:registered_names())", "[e2_svc,py_svc]")
            assert await term(erl, "global:whereis_name(py_svc)") == py_proc.pid
        assert sorted(node.global_names()) == [Atom("e2_svc"), Atom("py_svc")]
        # the Python node leaves for good: the Erlang nodes still sync and drop its name
        await node.stop()
        for erl in (e1, e2):
            await erl_sync(erl)
            await eventually(erl, "global:registered_names()", "[e2_svc]")


async def test_clash_resolved_when_partitions_merge(
    erl_runtime: ErlRuntime, peers: PeerFactory
) -> None:
    label = erl_runtime.label
    port = free_port()
    # 'a...' < 'z...': the Erlang node's pid wins, random_exit_name kills the Python one
    async with python_nodes(COOKIE, port, f"zpy_{label}@127.0.0.1") as (node,):
        erl = await start_erl(peers, erl_runtime, f"aerl_{label}@127.0.0.1", epmd_port=port)
        await erl.aeval("W = spawn(fun() -> receive _ -> ok end end)")
        assert await erl.aeval("global:register_name(clash, W)") == "yes"
        loser = node.spawn(idle)
        assert await node.global_register("clash", loser)
        assert await erl.aeval(f"net_kernel:connect_node('{node.name}')") == "true"
        await erl_sync(erl)
        assert await asyncio.wait_for(loser.wait(), SYNC) == Atom("killed")
        winner = await term(erl, "W")
        assert await term(erl, "global:whereis_name(clash)") == winner
        for _ in range(200):
            if await node.global_whereis("clash") == winner:
                break
            await asyncio.sleep(0.05)
        assert await node.global_whereis("clash") == winner


async def test_hidden_python_node_is_left_out(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    label = erl_runtime.label
    port = free_port()
    name = f"pyh_{label}@127.0.0.1"
    async with python_nodes(COOKIE, port, name, hidden=[name]) as (node,):
        erl = await start_erl(peers, erl_runtime, f"erlh_{label}@127.0.0.1", epmd_port=port)
        assert await erl.aeval(f"net_kernel:connect_node('{node.name}')") == "true"
        assert await term(erl, "nodes()") == []
        await erl_sync(erl)
        assert node.global_server.sessions == {} and node.global_server.known == {}


async def test_elixir_global(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    label = erl_runtime.label
    port = free_port()
    async with python_nodes(COOKIE, port, f"pyex_{label}@127.0.0.1") as (node,):
        ex = await start_erl(
            peers, erl_runtime, f"ex_{label}@127.0.0.1", epmd_port=port, elixir=True
        )
        assert await ex.aeval(f"Node.connect(:'{node.name}')") == "true"
        assert await ex.aeval(":global.sync()", timeout=SYNC) == "ok"
        py_proc = node.spawn(idle)
        assert await node.global_register("py_agent", py_proc)
        assert await term(ex, ":global.whereis_name(:py_agent)") == py_proc.pid
        await ex.aeval("{:ok, agent} = Agent.start(fn -> 1 end)")
        assert await ex.aeval(":global.register_name(:ex_agent, agent)") == "yes"
        assert await node.global_whereis("ex_agent") == await term(ex, "agent")


_PIDS = st.lists(
    st.builds(
        Pid,
        st.sampled_from([Atom("a@h"), Atom("b@h"), Atom("py@127.0.0.1"), Atom("zz@127.0.0.2")]),
        st.integers(0, 2**28 - 1),
        st.integers(0, 2**15),
        st.integers(0, 2**32 - 1),
    ),
    min_size=2,
    max_size=30,
)


@pytest.fixture(scope="module")
def sorter(request: pytest.FixtureRequest) -> ErlPeer:
    peer = start_peer(host_runtime(), "pidsort@127.0.0.1", COOKIE)
    request.addfinalizer(peer.stop)
    return peer


@settings(max_examples=40)
@given(pids=_PIDS)
def test_pid_order_is_erlang_term_order(sorter: ErlPeer, pids: list[Pid]) -> None:
    """Both lockers sort their pids into one lock id: the order must be BEAM's exactly."""
    hexed = encode(pids).hex()
    res = sorter.eval_result(f'lists:sort(binary_to_term(binary:decode_hex(<<"{hexed}">>)))')
    assert res.ok, res.text
    assert res.term() == sorted(pids, key=pid_order)
