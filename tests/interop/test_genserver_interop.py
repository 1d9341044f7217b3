"""GenServer interop with real OTP 25 / 27 / 29 and Elixir nodes: Erlang ``gen_server:call`` and
Elixir ``GenServer.call`` into a Python server, Python calls into an Erlang gen_server and an
Elixir GenServer, casts and plain messages both ways, and calls that must fail at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from beamlink.etf import Atom, Pid
from beamlink.node.genserver import NOREPLY, CallError, CallTimeout, From, GenServer
from tests.rpc.peers import compiled, python_node, start_peer
from tests.support.erlang import ErlRuntime
from tests.support.fixtures import PeerFactory

pytestmark = pytest.mark.interop
A = Atom

ELIXIR_STACK = (
    "defmodule BlStack do use GenServer; "
    "def init(s), do: {:ok, s}; "
    "def handle_call(:pop, _from, [h | t]), do: {:reply, h, t}; "
    "def handle_call(:all, _from, s), do: {:reply, s, s}; "
    "def handle_cast({:push, x}, s), do: {:noreply, [x | s]}; "
    "def handle_info(x, s), do: {:noreply, [{:info, x} | s]} end; "
    "{:ok, pid} = GenServer.start(BlStack, [], name: :bl_stack); pid"
)


class Store(GenServer):
    """A key-value server: calls read and write, casts write, plain messages are kept."""

    name = "pystore"

    def init(self) -> None:
        self.data: dict[Any, Any] = {}
        self.infos: list[Any] = []
        self.parked: From | None = None

    async def handle_call(self, request: Any, from_: From) -> Any:
        match request:
            case (tag, key, value) if tag == A("put"):
                self.data[key] = value
                return A("ok")
            case (tag, key) if tag == A("get"):
                return self.data.get(key, A("undefined"))
            case tag if tag == A("whoami"):
                return self.pid
            case tag if tag == A("infos"):
                return self.infos
            case tag if tag == A("park"):
                self.parked = from_
                return NOREPLY
            case tag if tag == A("crash"):
                raise RuntimeError("asked to crash")
        return (A("unknown"), request)

    def handle_cast(self, msg: Any) -> None:
        if msg == A("unpark") and self.parked is not None:
            self.reply(self.parked, A("unparked"))
        else:
            _, key, value = msg
            self.data[key] = value

    def handle_info(self, msg: Any) -> None:
        self.infos.append(msg)


async def test_erlang_calls_python_genserver(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    async with python_node() as node:
        server = await Store.start(node)
        peer = await start_peer(peers, erl_runtime, "gscaller")
        dest = f"{{pystore, '{node.name}'}}"
        assert await peer.aeval(f"gen_server:call({dest}, {{put, k, <<\"v\">>}})") == "ok"
        assert await peer.aeval(f"gen_server:call({dest}, {{get, k}}, 5000)") == "<<118>>"
        assert await peer.aeval(f"gen_server:cast({dest}, {{put, c, [1 | 2]}})") == "ok"
        assert await peer.aeval(f"{dest} ! {{hello, self()}}, ok") == "ok"
        assert await peer.aeval(f"gen_server:call({dest}, {{get, c}})") == "[1|2]"
        infos = await peer.aeval(f"[H || {{hello, H}} <- gen_server:call({dest}, infos)] =:= [self()]")
        assert infos == "true"
        assert await peer.aeval(f"P = gen_server:call({dest}, whoami), gen_server:call(P, {{get, k}})") == "<<118>>"
        assert await peer.aeval("node(P)") == f"'{node.name}'"
        # a reply that comes later, from a cast
        await peer.aeval(f"Parent = self(), spawn(fun() -> Parent ! {{parked, gen_server:call({dest}, park)}} end), ok")
        await asyncio.sleep(0.1)
        assert await peer.aeval(f"gen_server:cast({dest}, unpark), receive {{parked, X}} -> X after 5000 -> timeout end") == "unparked"
        # a missing name fails at once, a crash carries the Python exception
        start = time.monotonic()
        text = await peer.aeval(f"catch gen_server:call({{nobody, '{node.name}'}}, x, 30000)")
        assert text.startswith("{'EXIT',{noproc,") and time.monotonic() - start < 10
        text = await peer.aeval(f"catch gen_server:call({dest}, crash)")
        assert text.startswith("{'EXIT',{{python_exception,<<")
        assert not server.proc.is_alive


async def test_elixir_calls_python_genserver(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    async with python_node() as node:
        await Store.start(node)
        peer = await start_peer(peers, erl_runtime, "excaller", elixir=True)
        dest = f'{{:pystore, :"{node.name}"}}'
        assert await peer.aeval(f"GenServer.call({dest}, {{:put, :k, 42}})") == "ok"
        assert await peer.aeval(f"GenServer.cast({dest}, {{:put, :j, 43}})") == "ok"
        assert await peer.aeval(f"{{GenServer.call({dest}, {{:get, :k}}), GenServer.call({dest}, {{:get, :j}}, 5000)}}") == "{42,43}"
        text = await peer.aeval(f"try do GenServer.call({{:nobody, :\"{node.name}\"}}, :x) catch :exit, r -> r end")
        assert text.startswith("{noproc,")


async def test_python_calls_erlang_genserver(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    async with python_node() as node:
        with compiled(erl_runtime, "bl_server") as code:
            peer = await start_peer(peers, erl_runtime, "gsserver", code_dir=code)
            await peer.aeval("bl_server:start(erlsrv)")
        dest = (A("erlsrv"), A(peer.name))
        assert await node.call(dest, (A("echo"), [1, b"two", A("three")])) == [1, b"two", A("three")]
        node.cast(dest, A("c1"))
        node.send(dest, A("i1"))
        assert await node.call(dest, A("history")) == [(A("cast"), A("c1")), (A("info"), A("i1"))]
        pid = await node.rpc(peer.name, "erlang", "whereis", [A("erlsrv")])
        assert isinstance(pid, Pid)
        assert await node.call(pid, (A("echo"), 7)) == 7
        with pytest.raises(CallTimeout):
            await node.call(dest, (A("sleep"), 500), timeout=0.1)
        start = time.monotonic()
        with pytest.raises(CallError) as info:
            await node.call((A("nobody"), A(peer.name)), A("x"), timeout=30)
        assert info.value.reason == A("noproc") and time.monotonic() - start < 10
        with pytest.raises(CallError) as info:
            await node.call(dest, A("crash"), timeout=30)
        assert info.value.reason == A("crashed")
        with pytest.raises(CallError) as info:
            await node.call(pid, A("history"), timeout=30)
        assert info.value.reason == A("noproc")


async def test_python_calls_elixir_genserver(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    async with python_node() as node:
        peer = await start_peer(peers, erl_runtime, "exserver", elixir=True)
        await peer.aeval(ELIXIR_STACK)
        dest = (A("bl_stack"), A(peer.name))
        node.cast(dest, (A("push"), 1))
        node.cast(dest, (A("push"), b"two"))
        assert await node.call(dest, A("pop")) == b"two"
        node.send(dest, A("ping"))
        assert await node.call(dest, A("all")) == [(A("info"), A("ping")), 1]


async def test_call_fails_when_the_connection_is_lost(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    async with python_node() as node:
        with compiled(erl_runtime, "bl_server") as code:
            peer = await start_peer(peers, erl_runtime, "gslost", code_dir=code)
            await peer.aeval("bl_server:start(erlsrv)")
        call = asyncio.ensure_future(node.call((A("erlsrv"), A(peer.name)), (A("sleep"), 30000), timeout=60))
        await asyncio.sleep(0.5)
        await node.disconnect(peer.name)
        with pytest.raises(CallError) as info:
            await asyncio.wait_for(call, 20)
        assert info.value.reason == A("noconnection")
