"""ConnectionManager against real Erlang nodes (OTP 25 host erl, OTP 27 and 29 chroots), without EPMD.

Erlang runs with ``-start_epmd false -erl_epmd_port P``: it listens on P on 127.0.0.2 and dials
every peer on port P, so our manager listens on 127.0.0.1:P and resolves peers to
``(their host, P)``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import Any

import pytest

from beamlink.connection import TICK_TIMEOUT, ConnectionManager
from beamlink.distribution import control
from beamlink.etf import Atom, Pid
from tests.connection.recorder import Recorder
from tests.support.erlang import ErlPeer, ErlRuntime, free_port, no_epmd_args
from tests.support.fixtures import PeerFactory

pytestmark = pytest.mark.interop

COOKIE = "beamlinktest"
PY = "py@127.0.0.1"
ERL = "erl@127.0.0.2"


async def start_erl(
    peers: PeerFactory,
    rt: ErlRuntime,
    port: int,
    *,
    cookie: str = COOKIE,
    ticktime: int | None = None,
    hidden: bool = False,
) -> ErlPeer:
    args = list(no_epmd_args(port))
    if ticktime is not None:
        args += ["-kernel", "net_ticktime", str(ticktime)]
    if hidden:
        args.append("-hidden")
    # In a thread: the test's event loop keeps serving while the erl boots.
    return await peers.astart(rt, ERL, cookie, extra_args=tuple(args))


async def start_manager(
    port: int,
    *,
    cookie: str = COOKIE,
    hidden: bool = False,
    net_ticktime: float = 60.0,
    name: str = PY,
) -> tuple[ConnectionManager, Recorder]:
    recorder = Recorder()

    async def resolve(peer: Atom) -> tuple[str, int]:
        return str(peer).split("@", 1)[1], port

    manager = ConnectionManager(
        local_name=name,
        cookie=cookie,
        creation=int(time.time()) & 0xFFFFFFFF,
        handler=recorder,
        resolver=resolve,
        hidden=hidden,
        net_ticktime=net_ticktime,
    )
    await manager.listen("127.0.0.1", port)
    return manager, recorder


async def test_erlang_dials_us_and_exchanges_messages(
    peers: PeerFactory, erl_runtime: ErlRuntime
) -> None:
    port = free_port()
    manager, rec = await start_manager(port)
    try:
        erl = await start_erl(peers, erl_runtime, port)
        started = time.monotonic()
        assert await erl.aeval(f"net_kernel:connect_node('{PY}')") == "true"
        elapsed = time.monotonic() - started
        logging.getLogger(__name__).info("erl -> py connect_node took %.1f ms", elapsed * 1000)
        await rec.wait_for(lambda: Atom(ERL) in manager.connected_nodes())
        assert await erl.aeval("nodes()") == f"['{PY}']"
        info = manager.peer_info(ERL)
        assert info is not None and not info.hidden and not info.initiated

        # Erlang -> Python: a registered send arrives as REG_SEND with its message.
        await erl.aeval(f"{{some_name, '{PY}'}} ! {{hello, <<\"world\">>, 42}}")

        def to_some_name() -> list[Any]:
            return [
                m
                for _, c, m in rec.messages
                if c[0] == control.REG_SEND and c[3] == Atom("some_name")
            ]

        await rec.wait_for(to_some_name)
        assert to_some_name() == [(Atom("hello"), b"world", 42)]

        # Python -> Erlang: REG_SEND to a registered Erlang process.
        await erl.aeval("register(inbox, self())")
        sender = Pid(Atom(PY), 1, 0, manager.creation)
        assert manager.send(
            Atom(ERL), control.reg_send(sender, Atom("inbox")), (Atom("hi"), [1, 2])
        )
        got = await erl.aeval("receive M -> M after 5000 -> timeout end")
        assert got == "{hi,[1,2]}"
    finally:
        await manager.close()


async def test_we_dial_erlang(peers: PeerFactory, erl_runtime: ErlRuntime) -> None:
    port = free_port()
    manager, rec = await start_manager(port)
    try:
        erl = await start_erl(peers, erl_runtime, port)
        started = time.monotonic()
        assert await manager.connect(ERL)
        elapsed = time.monotonic() - started
        logging.getLogger(__name__).info("py -> erl connect took %.1f ms", elapsed * 1000)
        assert rec.kinds("up") == [Atom(ERL)]
        assert await erl.aeval("nodes()") == f"['{PY}']"
        info = manager.peer_info(ERL)
        assert info is not None and info.initiated
    finally:
        await manager.close()


async def test_hidden_python_node_is_in_nodes_hidden(
    peers: PeerFactory, erl_runtime: ErlRuntime
) -> None:
    port = free_port()
    manager, _rec = await start_manager(port, hidden=True)
    try:
        erl = await start_erl(peers, erl_runtime, port)
        assert await manager.connect(ERL)
        assert await erl.aeval("nodes()") == "[]"
        assert await erl.aeval("nodes(hidden)") == f"['{PY}']"
        assert manager.connected_nodes() == []
        assert manager.connected_nodes(visible_only=False) == [Atom(ERL)]
    finally:
        await manager.close()


async def test_wrong_cookie_both_directions(
    peers: PeerFactory, erl_runtime: ErlRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    manager, rec = await start_manager(port, cookie="not-the-cookie")
    try:
        erl = await start_erl(peers, erl_runtime, port)
        with caplog.at_level(logging.WARNING, logger="beamlink.connection"):
            assert await erl.aeval(f"net_kernel:connect_node('{PY}')") == "false"
            assert await erl.aeval(f"net_kernel:connect_node('{PY}')") == "false"
            assert not await manager.connect(ERL)
        refused = [
            r for r in caplog.records if "refused connection from erl@127.0.0.2" in r.message
        ]
        assert len(refused) == 1, [r.message for r in caplog.records]
        assert "wrong cookie" in refused[0].message
        assert any("connection to erl@127.0.0.2" in r.message for r in caplog.records)
        assert rec.events == []
        assert await erl.aeval("nodes(connected)") == "[]"

        # The manager keeps serving: a right-cookie Python peer still connects.
        other, _other_rec = await start_manager(
            free_port(), cookie="not-the-cookie", name="other@127.0.0.1"
        )
        try:

            async def to_py(peer: Atom) -> tuple[str, int]:
                return "127.0.0.1", port

            other.resolver = to_py
            assert await other.connect(PY)
        finally:
            await other.close()
    finally:
        await manager.close()


async def test_sigstopped_erlang_is_declared_down(
    peers: PeerFactory, erl_runtime: ErlRuntime
) -> None:
    ticktime = 4.0
    port = free_port()
    manager, rec = await start_manager(port, net_ticktime=ticktime)
    erl = await start_erl(peers, erl_runtime, port, ticktime=int(ticktime))
    try:
        assert await manager.connect(ERL)
        await asyncio.sleep(ticktime * 1.5)
        assert manager.connected_nodes() == [Atom(ERL)], "ticks must keep an idle link up"
        os.kill(erl.proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        await rec.wait_for(lambda: rec.kinds("down"), timeout=ticktime * 3)
        detected = time.monotonic() - stopped
        reason = next(r for k, _, r in rec.events if k == "down")
        assert reason.kind == TICK_TIMEOUT
        assert ticktime * 0.75 <= detected <= ticktime * 1.25 + 1.0, detected
    finally:
        os.kill(erl.proc.pid, signal.SIGCONT)
        await manager.close()


async def test_disconnect_from_either_side(peers: PeerFactory, erl_runtime: ErlRuntime) -> None:
    port = free_port()
    manager, rec = await start_manager(port)
    try:
        erl = await start_erl(peers, erl_runtime, port)
        await erl.aeval("net_kernel:monitor_nodes(true)")
        assert await manager.connect(ERL)
        assert await erl.aeval("receive {nodeup, N} -> N after 5000 -> timeout end") == f"'{PY}'"
        assert await manager.disconnect(ERL)
        assert rec.kinds("down") == [Atom(ERL)]
        assert await erl.aeval("receive {nodedown, N} -> N after 5000 -> timeout end") == f"'{PY}'"

        assert await erl.aeval(f"net_kernel:connect_node('{PY}')") == "true"
        await rec.wait_for(lambda: len(rec.kinds("up")) == 2)
        assert await erl.aeval(f"erlang:disconnect_node('{PY}')") == "true"
        await rec.wait_for(lambda: len(rec.kinds("down")) == 2)
        assert manager.connected_nodes() == []
    finally:
        await manager.close()


@pytest.mark.parametrize("name", [PY, "a_py@127.0.0.1"], ids=["python-wins", "erlang-wins"])
async def test_simultaneous_connect_with_erlang_ends_with_one_connection(
    peers: PeerFactory, erl_runtime: ErlRuntime, name: str
) -> None:
    """Both sides dial at the same wall-clock moment; the greater name keeps its own attempt
    (``py@`` > ``erl@`` > ``a_py@``), both calls return true, one connection results."""
    port = free_port()
    manager, rec = await start_manager(port, name=name)
    try:
        erl = await start_erl(peers, erl_runtime, port)
        await erl.aeval("net_kernel:monitor_nodes(true)")
        for offset_ms in (0, 1, -1, 3, -3, 0):
            at_ms = int(time.time() * 1000) + 300
            erl_connect = asyncio.create_task(
                erl.aeval(
                    f"timer:sleep(max(0, {at_ms} - erlang:system_time(millisecond))),"
                    f" net_kernel:connect_node('{name}')"
                )
            )
            await asyncio.sleep(max(0.0, (at_ms + offset_ms) / 1000 - time.time()))
            assert await manager.connect(ERL)
            assert await erl_connect == "true"
            nodeup = "receive {nodeup, N} -> N after 5000 -> timeout end"
            assert await erl.aeval(nodeup) == f"'{name}'"
            await asyncio.sleep(0.1)
            assert await erl.aeval("receive M -> M after 0 -> none end") == "none"
            assert await erl.aeval("nodes()") == f"['{name}']"
            assert manager.connected_nodes() == [Atom(ERL)]
            assert rec.kinds("down") == [Atom(ERL)] * (len(rec.kinds("up")) - 1)
            assert await manager.disconnect(ERL)
            nodedown = "receive {nodedown, N} -> N after 5000 -> timeout end"
            assert await erl.aeval(nodedown) == f"'{name}'"
    finally:
        await manager.close()
