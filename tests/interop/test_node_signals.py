"""Links, monitors, exit signals, aliases and spawn requests between beamlink processes and real
OTP 25/27/29 processes: both directions, various reasons, trap_exit, noconnection, UNLINK_ID."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from beamlink.etf import Atom, Pid
from beamlink.node import Node, Process, ProcessExit
from tests.node.interop import COOKIE, start_erl, term
from tests.support.erlang import ErlPeer, ErlRuntime, free_port
from tests.support.fixtures import PeerFactory, _epmd_hygiene, erl_runtime, peers

pytestmark = pytest.mark.interop
__all__ = ["_epmd_hygiene", "erl_runtime", "peers"]
A = Atom


@contextlib.asynccontextmanager
async def pair(rt: ErlRuntime, peers: PeerFactory, tag: str) -> AsyncIterator[tuple[Node, ErlPeer]]:
    """A Python node and a connected erl node; the erl shell process traps exits."""
    port = free_port()
    async with Node.start(
        f"py{tag}_{rt.label}@127.0.0.1", COOKIE, epmd_port=port, listen_host="127.0.0.1"
    ) as node:
        erl = await start_erl(peers, rt, f"erl{tag}_{rt.label}@127.0.0.1", epmd_port=port)
        assert await node.ping(erl.name)
        await erl.aeval("process_flag(trap_exit, true)")
        yield node, erl


async def idle(proc: Process) -> None:
    await proc.receive(lambda m: m == A("never"))


async def exit_on_message(proc: Process) -> None:
    reason = await proc.receive()
    if reason == A("raise"):
        raise ValueError("bad value")
    raise ProcessExit(reason)


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (A("normal"), A("normal")),
        ((A("shutdown"), b"bye"), (A("shutdown"), b"bye")),
        (A("raise"), (A("python_exception"), b"ValueError", b"bad value")),
    ],
)
async def test_erlang_monitors_and_links_python_process(
    erl_runtime: ErlRuntime, peers: PeerFactory, order: Any, expected: Any
) -> None:
    async with pair(erl_runtime, peers, "m") as (node, erl):
        proc = node.spawn(exit_on_message, name="target")
        await term(erl, f"erlang:monitor(process, {{target, '{node.name}'}})")
        await term(erl, f"MRef2 = erlang:monitor(process, {{nobody, '{node.name}'}})")
        down2 = await term(
            erl, "receive {'DOWN', MRef2, process, _, R2} -> R2 after 5000 -> timeout end"
        )
        assert down2 == A("noproc")
        node.send(await term(erl, "self()"), proc.pid)
        await term(erl, "PyPid = receive P when is_pid(P) -> P end, link(PyPid)")
        await asyncio.sleep(0.2)
        assert len(proc.links) == 1
        node.send(proc.pid, order)
        assert await proc.wait() == expected
        got = await term(
            erl, "receive {'DOWN', _, process, Who, R} -> {Who, R} after 5000 -> timeout end"
        )
        assert got == ((A("target"), node.name), expected)
        got = await term(erl, "receive {'EXIT', PyPid, R3} -> R3 after 5000 -> timeout end")
        assert got == expected


@pytest.mark.parametrize("trap", [False, True])
@pytest.mark.parametrize("reason", ["normal", "kill_self", "{custom, 1}"])
async def test_python_links_and_monitors_erlang_process(
    erl_runtime: ErlRuntime, peers: PeerFactory, trap: bool, reason: str
) -> None:
    async with pair(erl_runtime, peers, "l") as (node, erl):
        target: Pid = await term(erl, "T = spawn(fun() -> receive {die, R} -> exit(R) end end)")
        proc = node.new_process(trap_exit=trap)
        proc.link(target)
        ref = proc.monitor(target)
        await asyncio.sleep(0.2)
        assert await term(erl, "{links, L} = process_info(T, links), L") == [proc.pid]
        if reason == "kill_self":
            await erl.aeval("exit(T, kill)")
            expected: Any = A("killed")
        else:
            await erl.aeval(f"T ! {{die, {reason}}}")
            expected = A("normal") if reason == "normal" else (A("custom"), 1)
        down = (
            await proc.receive(lambda m: m[0] == A("DOWN"), timeout=10)
            if (trap or expected == A("normal"))
            else None
        )
        if trap:
            assert down == (A("DOWN"), ref, A("process"), target, expected)
            assert await proc.receive(timeout=10) == (A("EXIT"), target, expected)
        elif expected == A("normal"):
            assert down is not None and proc.is_alive
        else:
            assert await proc.wait() == expected
        proc.close()


async def test_erlang_exit2_kill_and_trapped_exit(
    erl_runtime: ErlRuntime, peers: PeerFactory
) -> None:
    async with pair(erl_runtime, peers, "x") as (node, erl):
        trapper = node.spawn(idle, trap_exit=True, name="trapper")
        victim = node.spawn(idle, name="victim")
        node.send(await term(erl, "self()"), (trapper.pid, victim.pid))
        await term(erl, "{Tr, Vi} = receive {A, B} -> {A, B} end, M = monitor(process, Vi)")
        await erl.aeval("exit(Tr, please), exit(Vi, kill)")
        assert await trapper.receive(timeout=10) == (
            A("EXIT"),
            await term(erl, "self()"),
            A("please"),
        )
        assert await victim.wait() == A("killed")
        assert await term(
            erl, "receive {'DOWN', M, process, _, R} -> R after 5000 -> timeout end"
        ) == A("killed")
        trapper.exit(await term(erl, "self()"), A("from_python"))
        assert await term(
            erl, "receive {'EXIT', _, FromPy} -> FromPy after 5000 -> timeout end"
        ) == A("from_python")


async def test_noconnection_on_disconnect(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    async with pair(erl_runtime, peers, "n") as (node, erl):
        target: Pid = await term(erl, "T = spawn(fun() -> receive _ -> ok end end)")
        trapper = node.new_process(trap_exit=True)
        trapper.link(target)
        ref = trapper.monitor(target)
        plain = node.new_process()
        plain.link(target)
        node.send(await term(erl, "self()"), trapper.pid)
        await term(erl, "PyT = receive P -> P end, link(PyT), MR = monitor(process, PyT)")
        await asyncio.sleep(0.2)
        await erl.aeval(f"erlang:disconnect_node('{node.name}')")
        shell = await term(erl, "self()")
        got_py = {await trapper.receive(timeout=10) for _ in range(3)}
        assert got_py == {
            (A("EXIT"), target, A("noconnection")),
            (A("EXIT"), shell, A("noconnection")),
            (A("DOWN"), ref, A("process"), target, A("noconnection")),
        }
        assert await plain.wait() == A("noconnection")
        got = await term(erl, "receive {'EXIT', PyT, R} -> R after 5000 -> timeout end")
        assert got == A("noconnection")
        got = await term(
            erl, "receive {'DOWN', MR, process, _, R2} -> R2 after 5000 -> timeout end"
        )
        assert got == A("noconnection")
        trapper.close()


async def test_unlink_id_protocol_with_erlang(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    async with pair(erl_runtime, peers, "u") as (node, erl):
        # Python unlinks, then at once tells the Erlang process to crash: UNLINK_ID travels
        # before the message, so Erlang has removed the link when it exits.
        target: Pid = await term(erl, "T = spawn(fun() -> receive go -> exit(crash) end end)")
        proc = node.new_process()
        proc.link(target)
        await asyncio.sleep(0.2)
        proc.unlink(target)
        assert proc.links[target] != 0
        proc.send(target, A("go"))
        await asyncio.sleep(0.5)
        assert proc.is_alive and proc.links == {}
        assert await term(erl, "is_process_alive(T)") is False
        # Erlang unlinks a Python process: the link goes on both sides and later exits are not sent.
        py = node.spawn(exit_on_message)
        node.send(await term(erl, "self()"), py.pid)
        await term(erl, "Py = receive P -> P end, link(Py)")
        await asyncio.sleep(0.2)
        assert len(py.links) == 1
        await term(erl, "unlink(Py)")
        await asyncio.sleep(0.2)
        assert py.links == {}
        node.send(py.pid, A("boom"))
        assert await py.wait() == A("boom")
        assert await term(erl, "receive {'EXIT', Py, _} = E -> E after 500 -> none end") == A(
            "none"
        )
        proc.close()


async def test_spawn_requests_both_ways(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    async with pair(erl_runtime, peers, "s") as (node, erl):

        async def greet(proc: Process, to: Pid, text: bytes) -> None:
            proc.send(to, (A("greeting"), text, proc.pid))

        node.spawn_handlers[(A("greeter"), A("run"), 2)] = greet
        got = await term(
            erl,
            f"{{Pid, Ref}} = spawn_monitor('{node.name}', greeter, run, [self(), <<\"hi\">>]), "
            "receive {greeting, T, Pid} -> T after 5000 -> timeout end",
        )
        assert got == b"hi"
        assert await term(
            erl, "receive {'DOWN', Ref, process, Pid, R} -> R after 5000 -> timeout end"
        ) == A("normal")
        got = await term(
            erl,
            f"{{P2, R2}} = spawn_monitor('{node.name}', no_such, function, [x, 1]), "
            "receive {'DOWN', R2, process, P2, Why} -> Why after 5000 -> timeout end",
        )
        assert got == (A("undef"), [(A("no_such"), A("function"), [A("x"), 1], [])])
        with node.new_process() as me:
            req = me.spawn_request(erl.name, "erlang", "send", [me.pid, A("hello")], monitor=True)
            tag, rid, ok, pid = await me.receive(timeout=10)
            assert (tag, rid, ok) == (A("spawn_reply"), req, A("ok")) and pid.node == Atom(erl.name)
            assert await me.receive(lambda m: m == A("hello"), timeout=10) == A("hello")
            assert await me.receive(timeout=10) == (A("DOWN"), req, A("process"), pid, A("normal"))


async def test_alias_send_from_erlang(erl_runtime: ErlRuntime, peers: PeerFactory) -> None:
    async with pair(erl_runtime, peers, "a") as (node, erl):
        with node.new_process() as me:
            alias = me.alias()
            node.send(await term(erl, "self()"), alias)
            await term(erl, "Al = receive A -> A end, Al ! via_alias")
            assert await me.receive(timeout=10) == A("via_alias")
            me.unalias(alias)
            await term(erl, "Al ! dropped")
            await asyncio.sleep(0.3)
            assert len(me.mailbox) == 0
