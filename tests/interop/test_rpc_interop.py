"""RPC both ways between a Python node and real OTP 25 / 27 / 29 nodes (and another Python node):
exact round trip of thousands of terms, exceptions, timeouts, lost connections, casts, rex, and a
10 MB binary each way."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time

import pytest

from beamlink.etf import Atom
from beamlink.node import Node, rpc
from tests.rpc import sample_module
from tests.rpc.peers import SAMPLE, compiled, python_node, start_peer
from tests.support.erlang import ErlPeer, ErlRuntime
from tests.support.fixtures import PeerFactory

pytestmark = pytest.mark.interop
A = Atom
TEN_MB = 10 * 1024 * 1024


_fresh = itertools.count()


async def matches(peer: ErlPeer, expr: str, pattern: str) -> None:
    """Evaluate ``expr`` on ``peer`` and check its value against the Erlang ``pattern``."""
    n = next(_fresh)
    text = await peer.aeval(f"case ({expr}) of {pattern} -> matched; Other{n} -> {{nomatch, Other{n}}} end")
    assert text == "matched", text


async def caught(peer: ErlPeer, expr: str) -> str:
    """``{Class, Reason}`` of the exception ``expr`` raises on ``peer`` (shell bindings persist,
    so every catch uses fresh variable names)."""
    n = next(_fresh)
    return await peer.aeval(f"try {expr} of V{n} -> {{returned, V{n}}} catch C{n}:R{n} -> {{C{n}, R{n}}} end")


async def test_exact_round_trip_of_generated_terms(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    async with python_node("rt") as node:
        with compiled(erl_runtime, "bl_roundtrip") as code:
            peer = await start_peer(peers, erl_runtime, "rt_erl", code_dir=code)
            checked, bad = (
                await peer.aeval_result(f"bl_roundtrip:run('{node.name}', 3000, 17)", timeout=240)
            ).term()
    assert bad == [], f"{len(bad)} terms changed on the way, first ones: {bad[:3]!r}"
    assert checked > 3000


async def test_erlang_calls_python(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    async with python_node() as node:
        peer = await start_peer(peers, erl_runtime, "caller")
        py = f"'{node.name}'"
        assert await peer.aeval(f"rpc:call({py}, erlang, node, [])") == py
        assert await peer.aeval(f"rpc:call({py}, erlang, nodes, [])") == f"['{peer.name}']"
        assert await peer.aeval(f"rpc:call({py}, '{SAMPLE}', add, [40, 2])") == "42"
        assert await peer.aeval(f"erpc:call({py}, '{SAMPLE}', slow_add, [1, 2, 0.01])") == "3"
        assert await peer.aeval(f"rpc:call({py}, 'os.path', join, [\"a\", \"b\"])") == "<<97,47,98>>"
        # exceptions: rpc's badrpc forms and erpc's exception classes
        await matches(
            peer,
            f"rpc:call({py}, '{SAMPLE}', fail, [<<\"bad\">>])",
            "{badrpc, {'EXIT', {{python_exception, <<\"ValueError\">>, <<\"bad\">>},"
            " [{'tests.rpc.sample_module', fail, 1, [{file, _}, {line, _}]} | _]}}}",
        )
        await matches(
            peer,
            f"try erpc:call({py}, '{SAMPLE}', fail, [<<\"x\">>]) catch Cf:Rf -> {{Cf, Rf}} end",
            "{error, {exception, {python_exception, <<\"ValueError\">>, <<\"x\">>}, [_ | _]}}",
        )
        assert await peer.aeval(f"rpc:call({py}, nomod_beamlink, f, [1])") == "{badrpc,{'EXIT',{undef,[{nomod_beamlink,f,[1],[]}]}}}"
        assert await peer.aeval(f"catch erpc:call({py}, '{SAMPLE}', throw, [t])") == "t"
        assert await peer.aeval(f"rpc:call({py}, '{SAMPLE}', exit_with, [bye])") == "{badrpc,{'EXIT',bye}}"
        assert await caught(peer, f"erpc:call({py}, '{SAMPLE}', exit_with, [bye])") == "{exit,{exception,bye}}"
        assert await peer.aeval(f"rpc:call({py}, '{SAMPLE}', slow_add, [1, 2, 5], 200)") == "{badrpc,timeout}"
        # casts
        sample_module.RECORDED.clear()
        assert await peer.aeval(f"erpc:cast({py}, '{SAMPLE}', record, [one])") == "ok"
        assert await peer.aeval(f"rpc:cast({py}, '{SAMPLE}', record, [two])") == "true"
        for _ in range(200):
            if len(sample_module.RECORDED) == 2:
                break
            await asyncio.sleep(0.01)
        assert sorted(sample_module.RECORDED) == [A("one"), A("two")]
        # rex: the features probe and the message form non-BEAM callers use
        assert await peer.aeval(
            f"{{rex, {py}}} ! {{self(), features_request}}, receive {{features_reply, N, F}} -> {{N, F}} after 5000 -> timeout end"
        ) == f"{{{py},[erpc]}}"
        assert await peer.aeval(
            f"{{rex, {py}}} ! {{self(), {{call, '{SAMPLE}', add, [1, 2], user}}}}, receive {{rex, R}} -> R after 5000 -> timeout end"
        ) == "3"
        assert await peer.aeval(f"rpc:block_call({py}, '{SAMPLE}', add, [2, 2])") == "4"


async def test_allow_list_refuses_other_modules(peers: PeerFactory, erl_runtime: ErlRuntime) -> None:
    async with python_node(rpc_allow=["tests.rpc.*"]) as node:
        peer = await start_peer(peers, erl_runtime, "limited")
        py = f"'{node.name}'"
        assert await peer.aeval(f"rpc:call({py}, '{SAMPLE}', add, [1, 1])") == "2"
        assert await peer.aeval(f"rpc:call({py}, os, getcwd, [])") == "{badrpc,{'EXIT',{undef,[{os,getcwd,[],[]}]}}}"
        assert await peer.aeval(f"rpc:call({py}, erlang, node, [])") == py


async def test_python_calls_erlang(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    async with python_node() as node:
        peer = await start_peer(peers, erl_runtime, "callee")
        erl = peer.name
        assert await node.rpc(erl, "erlang", "node", []) == A(erl)
        assert await node.rpc(erl, "lists", "reverse", [[1, A("a"), b"b"]]) == [b"b", A("a"), 1]
        with pytest.raises(rpc.RemoteException) as info:
            await node.rpc(erl, "erlang", "error", [A("boom")])
        assert (info.value.class_, info.value.reason) == (A("error"), A("boom"))
        assert info.value.stack[0][:2] == (A("erlang"), A("error"))
        with pytest.raises(rpc.RemoteException) as info:
            await node.rpc(erl, "erlang", "throw", [A("ball")])
        assert (info.value.class_, info.value.reason) == (A("throw"), A("ball"))
        with pytest.raises(rpc.RemoteException) as info:
            await node.rpc(erl, "erlang", "exit", [A("gone")])
        assert (info.value.class_, info.value.reason) == (A("exit"), A("gone"))
        with pytest.raises(rpc.RemoteException) as info:
            await node.rpc(erl, "no_such_module", "f", [])
        assert info.value.reason == A("undef")
        with pytest.raises(rpc.RpcTimeout):
            await node.rpc(erl, "timer", "sleep", [5000], timeout=0.2)
        # a cast that sends back to a registered Python process
        with node.new_process(name="inbox") as inbox:
            node.rpc_cast(erl, "erlang", "send", [(A("inbox"), node.name), A("hello")])
            assert await inbox.receive(timeout=10) == A("hello")


async def test_rpc_to_unreachable_node_and_lost_connection(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    async with python_node() as node:
        start = time.monotonic()
        with pytest.raises(rpc.NoConnection):
            await node.rpc("nobody_here@127.0.0.1", "erlang", "node", [], timeout=30)
        assert time.monotonic() - start < 20
        peer = await start_peer(peers, erl_runtime, "lost")
        call = asyncio.ensure_future(node.rpc(peer.name, "timer", "sleep", [30000], timeout=60))
        await asyncio.sleep(0.5)
        await node.disconnect(peer.name)
        with pytest.raises(rpc.NoConnection):
            await asyncio.wait_for(call, 20)


async def test_python_to_python_rpc() -> None:
    async with python_node("pa") as a, python_node("pb") as b:
        assert await a.rpc(b.name, SAMPLE, "add", [1, 2]) == 3
        assert await a.rpc(b.name, "copy", "copy", [[A("x"), {1: b"y"}]]) == [A("x"), {1: b"y"}]
        with pytest.raises(rpc.RemoteException) as info:
            await a.rpc(b.name, SAMPLE, "fail", [b"nope"])
        assert info.value.reason == (A("python_exception"), b"ValueError", b"nope")
        assert await b.rpc(a.name, "erlang", "node", []) == a.name


async def test_ten_megabyte_binary_both_ways(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    async with python_node("big") as node:
        peer = await start_peer(peers, erl_runtime, "big_erl")
        py = f"'{node.name}'"
        expr = (
            f"B = crypto:strong_rand_bytes({TEN_MB}), "
            f"R = rpc:call({py}, copy, copy, [{{B, [B]}}], 60000), {{R =:= {{B, [B]}}, erlang:md5(B)}}"
        )
        same, _ = (await peer.aeval_result(expr, timeout=120)).term()
        assert same is True
        blob = bytes(range(256)) * (TEN_MB // 256)
        assert await node.rpc(peer.name, "erlang", "byte_size", [blob], timeout=60) == TEN_MB
        back = await node.rpc(peer.name, "binary", "copy", [blob[:1024], TEN_MB // 1024], timeout=60)
        assert back == blob[:1024] * (TEN_MB // 1024)


async def test_node_rpc_methods_exist_on_node() -> None:
    assert inspect.iscoroutinefunction(Node.rpc) and inspect.iscoroutinefunction(Node.call)
    assert callable(Node.rpc_cast) and callable(Node.cast) and callable(rpc.cast)
