"""Node start-up options and the public Node API between two Python nodes over real TCP."""

from __future__ import annotations

import asyncio

import pytest

from beamlink.epmd import NameInUse as EpmdNameInUse
from beamlink.etf import Atom
from beamlink.node import (
    Node,
    NodeEvent,
    Process,
    current_node,
    current_process,
    resolve_dist_port,
    resolve_node_name,
)
from beamlink.settings import SettingsError
from tests.support.erlang import free_port

A = Atom
COOKIE = "nodetest"


def test_name_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BEAMLINK_NODE", raising=False)
    monkeypatch.delenv("RELEASE_NODE", raising=False)
    with pytest.raises(SettingsError, match="set BEAMLINK_NODE or RELEASE_NODE"):
        resolve_node_name()
    monkeypatch.setenv("RELEASE_NODE", "rel@10.0.0.1")
    assert resolve_node_name().full == "rel@10.0.0.1"
    monkeypatch.setenv("BEAMLINK_NODE", "bl@host.example.com")
    assert resolve_node_name().full == "bl@host.example.com"
    assert resolve_node_name("arg@127.0.0.1").full == "arg@127.0.0.1"
    short = resolve_node_name("shorty")
    assert short.name == "shorty" and not short.is_long
    with pytest.raises(SettingsError, match="node name from argument"):
        resolve_node_name("bad name@127.0.0.1")
    monkeypatch.setenv("BEAMLINK_NODE", "bad name@127.0.0.1")
    with pytest.raises(SettingsError, match="node name from env BEAMLINK_NODE"):
        resolve_node_name()


def test_dist_port_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ERL_DIST_PORT", raising=False)
    assert resolve_dist_port() is None
    monkeypatch.setenv("ERL_DIST_PORT", "9100")
    assert resolve_dist_port() == 9100
    assert resolve_dist_port(9200) == 9200
    for bad in ("nope", "0", "65536", "-1"):
        monkeypatch.setenv("ERL_DIST_PORT", bad)
        with pytest.raises(SettingsError, match=r"env ERL_DIST_PORT must be a port number 1\.\.65535"):
            resolve_dist_port()
    with pytest.raises(SettingsError, match="from argument"):
        resolve_dist_port(70000)


async def test_two_nodes_events_links_and_stop() -> None:
    port = free_port()
    events: list[NodeEvent] = []
    async with Node.start("n1@127.0.0.1", COOKIE, epmd_port=port, listen_host="127.0.0.1") as n1:
        unsubscribe = n1.monitor_nodes(events.append)
        n2 = await Node.start("n2@127.0.0.1", COOKIE, epmd_port=port, listen_host="127.0.0.1")
        assert n2.creation != n1.creation or n2.name != n1.name
        got: asyncio.Queue[object] = asyncio.Queue()

        async def server(proc: Process) -> None:
            while True:
                got.put_nowait(await proc.receive())

        n2.spawn(server, name="srv")
        remote = n2.spawn(server)
        with n1.new_process(trap_exit=True) as me:
            me.send(("srv", n2.name), "by name")
            assert await asyncio.wait_for(got.get(), 10) == b"by name"
            me.link(remote.pid)
            ref = me.monitor(remote.pid)
            await asyncio.sleep(0.1)
            assert remote.links == {me.pid: 0}
            await n2.stop()
            await n2.stop()
            exits = {await me.receive(timeout=10), await me.receive(timeout=10)}
            assert exits == {
                (A("EXIT"), remote.pid, A("noconnection")),
                (A("DOWN"), ref, A("process"), remote.pid, A("noconnection")),
            }
        assert [(e.kind, e.node) for e in events] == [("nodeup", n2.name), ("nodedown", n2.name)]
        assert events[1].reason == A("connection_closed")
        unsubscribe()
        assert n1.whereis("net_kernel") is not None
    assert not n1.processes()


async def test_registration_survives_embedded_epmd_takeover() -> None:
    port = free_port()
    owner = await Node.start("own@127.0.0.1", COOKIE, epmd_port=port, listen_host="127.0.0.1")
    survivor = await Node.start("surv@127.0.0.1", COOKIE, epmd_port=port, listen_host="127.0.0.1")
    try:
        await owner.stop()
        async with Node.start(
            "late@127.0.0.1", COOKIE, epmd_port=port, listen_host="127.0.0.1"
        ) as late:
            for _ in range(100):
                if await late.ping(survivor.name):
                    break
                await asyncio.sleep(0.05)
            assert late.nodes() == [survivor.name]
    finally:
        await survivor.stop()


async def test_start_fails_cleanly_on_taken_name() -> None:
    port = free_port()
    async with Node.start("dup@127.0.0.1", COOKIE, epmd_port=port, listen_host="127.0.0.1"):
        with pytest.raises(EpmdNameInUse):
            await Node.start("dup@127.0.0.1", COOKIE, epmd_port=port, listen_host="127.0.0.1")


async def test_current_node_and_process() -> None:
    with pytest.raises(RuntimeError):
        current_node()
    port = free_port()
    async with (
        Node.start("cur1@127.0.0.1", COOKIE, epmd_port=port, listen_host="127.0.0.1") as n1,
        Node.start("cur2@127.0.0.1", COOKIE, epmd_port=port, listen_host="127.0.0.1") as n2,
    ):
        assert current_node() is n2 and current_process() is None
        seen: list[object] = []

        async def body(proc: Process) -> None:
            seen.extend([current_node(), current_process()])

        proc = n1.spawn(body)
        await proc.wait()
        assert seen == [n1, proc]
