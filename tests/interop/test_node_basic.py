"""A beamlink Node among real OTP 25/27/29 and Elixir nodes: ping both ways, node lists, nodedown on
both sides, embedded and real EPMD, fixed-port mode, wrong cookie, a SIGSTOPped peer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator

import pytest

from beamlink.etf import Atom
from beamlink.node import Node
from tests.node.interop import COOKIE, start_erl, term
from tests.support.erlang import ErlRuntime, free_port, no_epmd_args, real_epmd
from tests.support.fixtures import PeerFactory, _epmd_hygiene, erl_runtime, peers

pytestmark = pytest.mark.interop
__all__ = ["_epmd_hygiene", "erl_runtime", "peers"]


@contextlib.asynccontextmanager
async def python_node(name: str, epmd_mode: str, **kw: object) -> AsyncIterator[tuple[Node, int]]:
    """A Python node with a private EPMD port: ``embedded`` (the node runs EPMD) or ``real``."""
    if epmd_mode == "real":
        with real_epmd() as port:
            async with Node.start(
                name, COOKIE, epmd_port=port, listen_host="127.0.0.1", **kw
            ) as node:  # type: ignore[arg-type]
                yield node, port
    else:
        port = free_port()
        async with Node.start(name, COOKIE, epmd_port=port, listen_host="127.0.0.1", **kw) as node:  # type: ignore[arg-type]
            yield node, port


@pytest.mark.parametrize("epmd_mode", ["embedded", "real"])
async def test_ping_both_ways_and_node_lists(
    erl_runtime: ErlRuntime, peers: PeerFactory, epmd_mode: str
) -> None:
    label = erl_runtime.label
    async with python_node(f"py_{label}@127.0.0.1", epmd_mode) as (node, port):
        erl = await start_erl(peers, erl_runtime, f"erl_{label}@127.0.0.1", epmd_port=port)
        assert await erl.aeval(f"net_adm:ping('{node.name}')") == "pong"
        assert await term(erl, "nodes()") == [node.name]
        assert node.nodes() == [Atom(erl.name)]
        assert await node.ping(erl.name)
        other = await start_erl(peers, erl_runtime, f"erl2_{label}@127.0.0.1", epmd_port=port)
        assert await node.ping(other.name)
        assert sorted(node.nodes()) == sorted([Atom(erl.name), Atom(other.name)])
        assert await node.ping(f"nobody_{label}@127.0.0.1") is False
        assert await term(erl, f"rpc:call('{node.name}', erlang, node, [])") == node.name
        assert await node.rpc(erl.name, "erlang", "node", []) == Atom(erl.name)


async def test_disconnect_from_either_side_gives_nodedown_on_both(
    erl_runtime: ErlRuntime, peers: PeerFactory
) -> None:
    label = erl_runtime.label
    async with python_node(f"pyd_{label}@127.0.0.1", "embedded") as (node, port):
        erl = await start_erl(peers, erl_runtime, f"erld_{label}@127.0.0.1", epmd_port=port)
        await erl.aeval("ok = net_kernel:monitor_nodes(true, [nodedown_reason])")
        async with node.monitor_nodes() as events:
            for initiator in ("erlang", "python"):
                assert await node.connect(erl.name)
                up = await events.next(10)
                assert (up.kind, up.node) == ("nodeup", Atom(erl.name))
                assert (
                    await term(erl, "receive {nodeup, N, _} -> N after 10000 -> timeout end")
                    == node.name
                )
                if initiator == "erlang":
                    assert await erl.aeval(f"erlang:disconnect_node('{node.name}')") == "true"
                else:
                    assert await node.disconnect(erl.name)
                down = await events.next(10)
                assert (down.kind, down.node) == ("nodedown", Atom(erl.name))
                assert down.reason == Atom(
                    "connection_closed" if initiator == "erlang" else "disconnect"
                )
                got = await term(erl, "receive {nodedown, N, _} -> N after 10000 -> timeout end")
                assert got == node.name
                assert node.nodes() == []
                assert await term(erl, "nodes()") == []


async def test_elixir_node_connect_and_list(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    label = erl_runtime.label
    async with python_node(f"pyx_{label}@127.0.0.1", "embedded") as (node, port):
        ex = await start_erl(
            peers, erl_runtime, f"ex_{label}@127.0.0.1", epmd_port=port, elixir=True
        )
        assert await ex.aeval(f"Node.connect(:'{node.name}')") == "true"
        assert await term(ex, "Node.list()") == [node.name]
        assert node.nodes() == [Atom(ex.name)]
        assert await node.ping(ex.name)


async def test_two_python_nodes_and_hidden_node(peers: PeerFactory) -> None:
    async with (
        python_node("pya@127.0.0.1", "embedded") as (a, port),
        Node.start("pyb@127.0.0.1", COOKIE, epmd_port=port, listen_host="127.0.0.1") as b,
        Node.start(
            "pyh@127.0.0.1", COOKIE, epmd_port=port, hidden=True, listen_host="127.0.0.1"
        ) as h,
    ):
        assert await a.ping(b.name) and await b.ping(a.name)
        assert a.nodes() == [b.name] and b.nodes() == [a.name]
        assert await h.connect(a.name)
        assert a.nodes() == [b.name]
        assert sorted(a.nodes(hidden=True)) == sorted([b.name, h.name])
        assert h.nodes() == [] and h.nodes(hidden=True) == [a.name]


async def test_fixed_port_mode_without_epmd(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    port = free_port("127.0.0.2")
    async with Node.start("app@127.0.0.3", COOKIE, dist_port=port) as node:
        assert node.port == port
        erl = await start_erl(
            peers,
            erl_runtime,
            "app@127.0.0.2",
            extra_args=no_epmd_args(port),
        )
        assert await erl.aeval("net_adm:ping('app@127.0.0.3')") == "pong"
        assert node.nodes() == [Atom("app@127.0.0.2")]
        assert await node.disconnect("app@127.0.0.2")
        await asyncio.sleep(0.2)
        assert await node.ping("app@127.0.0.2")
        assert await term(erl, "nodes()") == [Atom("app@127.0.0.3")]


async def test_fixed_port_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port("127.0.0.4")
    monkeypatch.setenv("ERL_DIST_PORT", str(port))
    monkeypatch.setenv("BEAMLINK_NODE", "app@127.0.0.4")
    monkeypatch.setenv("BEAMLINK_COOKIE", COOKIE)
    async with Node.start() as a, Node.start("app@127.0.0.5") as b:
        assert a.name == Atom("app@127.0.0.4") and a.port == port == b.port
        assert await b.ping(a.name)


async def test_wrong_cookie_is_refused_and_node_keeps_serving(
    erl_runtime: ErlRuntime, peers: PeerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    label = erl_runtime.label
    async with python_node(f"pyc_{label}@127.0.0.1", "embedded") as (node, port):
        bad = await start_erl(
            peers, erl_runtime, f"bad_{label}@127.0.0.1", epmd_port=port, cookie="wrong"
        )
        assert await bad.aeval(f"net_adm:ping('{node.name}')") == "pang"
        assert await node.ping(bad.name) is False
        assert node.nodes() == []
        good = await start_erl(peers, erl_runtime, f"good_{label}@127.0.0.1", epmd_port=port)
        assert await good.aeval(f"net_adm:ping('{node.name}')") == "pong"
        assert node.nodes() == [Atom(good.name)]


async def test_sigstopped_peer_is_declared_down(
    erl_runtime: ErlRuntime, peers: PeerFactory
) -> None:
    label = erl_runtime.label
    ticktime = 2.0
    async with python_node(f"pys_{label}@127.0.0.1", "embedded", net_ticktime=ticktime) as (
        node,
        port,
    ):
        erl = await start_erl(peers, erl_runtime, f"stopped_{label}@127.0.0.1", epmd_port=port)
        assert await node.ping(erl.name)
        async with node.monitor_nodes() as events:
            os.kill(erl.proc.pid, signal.SIGSTOP)
            try:
                down = await events.next(timeout=ticktime * 4 + 5)
            finally:
                os.kill(erl.proc.pid, signal.SIGCONT)
        assert (down.kind, down.node, down.reason) == (
            "nodedown",
            Atom(erl.name),
            Atom("net_tick_timeout"),
        )
        assert node.nodes() == []
