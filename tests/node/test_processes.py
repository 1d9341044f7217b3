"""Local processes: spawn, send, names, aliases, links, exits, monitors (one runtime, no network)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from beamlink.etf import Atom, Pid, Reference
from beamlink.node.errors import NameInUse, ProcessExit, ReceiveTimeout, UnknownName
from beamlink.node.runtime import Process, ProcessRuntime

NODE = "py@127.0.0.1"
A = Atom


@pytest.fixture
def rt() -> ProcessRuntime:
    return ProcessRuntime(NODE, 7)


async def idle(proc: Process) -> None:
    await proc.receive(lambda m: m == A("stop"))


async def echo(proc: Process) -> None:
    while True:
        sender, msg = await proc.receive()
        proc.send(sender, (A("echo"), msg))


async def crash(proc: Process, text: str) -> None:
    raise ValueError(text)


async def exit_with(proc: Process, reason: Any) -> None:
    raise ProcessExit(reason)


async def test_pids_carry_node_and_creation(rt: ProcessRuntime) -> None:
    proc = rt.spawn(idle)
    assert proc.pid.node == A(NODE) and proc.pid.creation == 7
    assert proc.node is rt
    assert rt.spawn(idle).pid != proc.pid
    ref = rt.make_ref()
    assert isinstance(ref, Reference) and ref.node == A(NODE) and ref != rt.make_ref()


async def test_send_by_pid_name_tuple_and_echo(rt: ProcessRuntime) -> None:
    server = rt.spawn(echo, name="echo")
    assert server.name == A("echo") and rt.whereis("echo") == server.pid
    assert A("echo") in rt.registered()
    with rt.new_process() as me:
        me.send(server.pid, (me.pid, 1))
        me.send("echo", (me.pid, 2))
        me.send((A("echo"), A(NODE)), (me.pid, 3))
        assert [await me.receive(timeout=2) for _ in range(3)] == [
            (A("echo"), i) for i in (1, 2, 3)
        ]
    assert not me.is_alive and me.exit_reason == A("normal")


async def test_send_to_unknown_local_name_raises_but_tuple_does_not(rt: ProcessRuntime) -> None:
    with pytest.raises(UnknownName):
        rt.send("nobody", 1)
    rt.send(("nobody", NODE), 1)
    rt.send(Pid(A(NODE), 999, 0, 7), 1)


async def test_register_conflicts(rt: ProcessRuntime) -> None:
    first = rt.spawn(idle, name="svc")
    with pytest.raises(NameInUse):
        rt.spawn(idle, name="svc")
    with pytest.raises(NameInUse):
        first.register("other")
    first.send(first.pid, A("stop"))
    await first.wait()
    assert rt.whereis("svc") is None
    assert first.unregister() is False


async def test_exit_reasons_normal_exception_and_process_exit(rt: ProcessRuntime) -> None:
    assert await rt.spawn(exit_with, A("normal")).wait() == A("normal")
    assert await rt.spawn(exit_with, (A("shutdown"), 1)).wait() == (A("shutdown"), 1)
    reason = await rt.spawn(crash, "boom").wait()
    assert reason == (A("python_exception"), b"ValueError", b"boom")


async def test_alias_receives_until_unalias(rt: ProcessRuntime) -> None:
    with rt.new_process() as me:
        alias = me.alias()
        rt.send(alias, "one")
        assert await me.receive(timeout=1) == "one"
        assert me.unalias(alias) and not me.unalias(alias)
        rt.send(alias, "two")
        with pytest.raises(ReceiveTimeout):
            await me.receive(timeout=0.05)


async def test_link_propagates_abnormal_exit_and_ignores_normal(rt: ProcessRuntime) -> None:
    a = rt.spawn(idle)
    b = rt.spawn(idle, link=a)
    assert b.pid in a.links and a.pid in b.links
    c = rt.spawn(exit_with, A("normal"), link=a)
    await c.wait()
    await asyncio.sleep(0)
    assert a.is_alive
    d = rt.spawn(exit_with, A("boom"), link=a)
    assert await d.wait() == A("boom")
    assert await a.wait() == A("boom")
    assert await b.wait() == A("boom")


async def test_trap_exit_turns_signals_into_messages(rt: ProcessRuntime) -> None:
    with rt.new_process(trap_exit=True) as me:
        child = rt.spawn(exit_with, A("normal"), link=me.pid)
        assert await me.receive(timeout=2) == (A("EXIT"), child.pid, A("normal"))
        other = rt.spawn(idle)
        me.exit(other.pid, A("custom"))
        assert await other.wait() == A("custom")
        rt.exit_signal(None, me.pid, A("custom"))
        assert await me.receive(timeout=1) == (A("EXIT"), rt.system_pid, A("custom"))
        rt.exit_signal(None, me.pid, A("kill"))
        assert not me.is_alive and me.exit_reason == A("killed")
        with pytest.raises(ProcessExit):
            await me.receive(timeout=1)


async def test_exit2_normal_is_ignored_unless_sent_to_self(rt: ProcessRuntime) -> None:
    target = rt.spawn(idle)
    rt.exit_signal(None, target.pid, A("normal"))
    assert target.is_alive
    with rt.new_process() as me:
        me.exit(me.pid, A("normal"))
        assert not me.is_alive and me.exit_reason == A("normal")
    target.close(A("done"))
    assert await target.wait() == A("done")


async def test_kill_via_link_is_trappable_kill(rt: ProcessRuntime) -> None:
    with rt.new_process(trap_exit=True) as watcher:
        victim = rt.spawn(idle, link=watcher.pid)
        rt.exit_signal(None, victim.pid, A("kill"))
        assert await victim.wait() == A("killed")
        assert await watcher.receive(timeout=1) == (A("EXIT"), victim.pid, A("killed"))
        linked = rt.spawn(idle, trap_exit=True)
        dier = rt.spawn(exit_with, A("kill"), link=linked)
        await dier.wait()
        assert await linked.receive(timeout=1) == (A("EXIT"), dier.pid, A("kill"))


async def test_link_to_dead_process_gives_noproc(rt: ProcessRuntime) -> None:
    dead = rt.spawn(exit_with, A("normal"))
    await dead.wait()
    with rt.new_process(trap_exit=True) as me:
        me.link(dead.pid)
        assert await me.receive(timeout=1) == (A("EXIT"), dead.pid, A("noproc"))
    with rt.new_process() as plain:
        plain.link(dead.pid)
        assert plain.exit_reason == A("noproc")


async def test_unlink_stops_propagation(rt: ProcessRuntime) -> None:
    a = rt.spawn(idle)
    b = rt.spawn(idle, link=a)
    a.unlink(b.pid)
    assert not a.links and not b.links
    b.close(A("bad"))
    await asyncio.sleep(0)
    assert a.is_alive
    a.close()


async def test_long_link_chain_does_not_recurse(rt: ProcessRuntime) -> None:
    procs = [rt.spawn(idle)]
    for _ in range(3000):
        procs.append(rt.spawn(idle, link=procs[-1]))
    procs[0].close(A("chain"))
    assert all(not p.is_alive and p.exit_reason == A("chain") for p in procs)
    await asyncio.sleep(0)


async def test_monitor_by_pid_and_name_fires_once(rt: ProcessRuntime) -> None:
    target = rt.spawn(idle, name="watched")
    with rt.new_process() as me:
        by_pid = me.monitor(target.pid)
        by_name = me.monitor("watched")
        target.close(A("gone"))
        got = {await me.receive(timeout=1), await me.receive(timeout=1)}
        assert got == {
            (A("DOWN"), by_pid, A("process"), target.pid, A("gone")),
            (A("DOWN"), by_name, A("process"), (A("watched"), A(NODE)), A("gone")),
        }
        with pytest.raises(ReceiveTimeout):
            await me.receive(timeout=0.05)


async def test_monitor_dead_or_unknown_gives_noproc(rt: ProcessRuntime) -> None:
    dead = rt.spawn(exit_with, A("normal"))
    await dead.wait()
    with rt.new_process() as me:
        ref = me.monitor(dead.pid)
        assert await me.receive(timeout=1) == (A("DOWN"), ref, A("process"), dead.pid, A("noproc"))
        ref = me.monitor(("ghost", NODE))
        assert await me.receive(timeout=1) == (
            A("DOWN"),
            ref,
            A("process"),
            (A("ghost"), A(NODE)),
            A("noproc"),
        )


async def test_demonitor_and_flush(rt: ProcessRuntime) -> None:
    target = rt.spawn(idle)
    with rt.new_process() as me:
        ref = me.monitor(target.pid)
        assert me.demonitor(ref) is True
        assert me.demonitor(ref) is False
        assert not target.monitored_by
        ref2 = me.monitor(target.pid)
        target.close(A("x"))
        assert len(me.mailbox) == 1
        me.demonitor(ref2, flush=True)
        assert len(me.mailbox) == 0


async def test_watcher_exit_removes_its_monitors(rt: ProcessRuntime) -> None:
    target = rt.spawn(idle)
    watcher = rt.new_process()
    watcher.monitor(target.pid)
    watcher.close()
    assert not target.monitored_by
    target.close()


async def test_local_spawn_request_with_handler_and_unknown_mfa(rt: ProcessRuntime) -> None:
    async def double(proc: Process, to: Pid, x: int) -> None:
        proc.send(to, x * 2)

    rt.spawn_handlers[(A("m"), A("double"), 2)] = double
    with rt.new_process() as me:
        req = me.spawn_request(NODE, "m", "double", [me.pid, 21], monitor=True)
        tag, rid, ok, pid = await me.receive(timeout=1)
        assert (tag, rid, ok) == (A("spawn_reply"), req, A("ok"))
        assert await me.receive(lambda m: m == 42, timeout=1) == 42
        assert await me.receive(timeout=1) == (A("DOWN"), req, A("process"), pid, A("normal"))
        req = me.spawn_request(NODE, "m", "nope", [1], monitor=True)
        _, _, _, pid = await me.receive(timeout=1)
        down = await me.receive(timeout=1)
        assert down == (
            A("DOWN"),
            req,
            A("process"),
            pid,
            (A("undef"), [(A("m"), A("nope"), [1], [])]),
        )


async def test_cancelling_a_process_task_kills_it(rt: ProcessRuntime) -> None:
    proc = rt.spawn(idle)
    await asyncio.sleep(0)
    assert proc.task is not None
    proc.task.cancel()
    assert await proc.wait() == A("killed")


async def test_remote_targets_without_distribution_get_noconnection(rt: ProcessRuntime) -> None:
    remote = Pid(A("erl@127.0.0.1"), 80, 0, 3)
    with rt.new_process(trap_exit=True) as me:
        ref = me.monitor(remote)
        assert await me.receive(timeout=1) == (
            A("DOWN"),
            ref,
            A("process"),
            remote,
            A("noconnection"),
        )
        me.link(remote)
        assert await me.receive(timeout=1) == (A("EXIT"), remote, A("noconnection"))
        me.send(remote, "dropped")
