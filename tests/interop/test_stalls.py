"""Blocking code versus real OTP 25/27 peers at ``net_ticktime`` 4 s: a Python process that blocks
the event loop for 10 s (``time.sleep`` inside its coroutine) must not get the node declared down,
must be named in exactly one warning, and messages the peer sent meanwhile arrive in order.

The blocking is the scenario: the code under test (a process on the node) does it deliberately;
the test itself only awaits, with timeouts far above the 10 s stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from beamlink.etf import Atom
from beamlink.node import Node, NodeEvent, Process
from tests.node.interop import COOKIE, start_erl, term
from tests.support.erlang import ErlPeer, ErlRuntime, free_port
from tests.support.fixtures import PeerFactory, _epmd_hygiene, erl_runtime, peers

pytestmark = pytest.mark.interop
__all__ = ["_epmd_hygiene", "erl_runtime", "peers"]

TICKTIME = 4.0
STALL = 10.0
WATCHDOG_LOGGER = "beamlink.connection.watchdog"
# Erlang: a process collecting nodedown events, asked with {get, Pid}.
ERL_DOWN_WATCHER = (
    "DownWatcher = spawn(fun() -> ok = net_kernel:monitor_nodes(true), "
    "Watch = fun W(Acc) -> receive {get, P} -> P ! {downs, Acc}, W(Acc); "
    "{nodedown, N} -> W([N | Acc]); _ -> W(Acc) end end, Watch([]) end)"
)
ERL_DOWNS = "DownWatcher ! {get, self()}, receive {downs, Downs} -> Downs after 5000 -> timeout end"


@contextlib.asynccontextmanager
async def stall_setup(
    rt: ErlRuntime, peers: PeerFactory, prefix: str, **node_options: Any
) -> AsyncIterator[tuple[Node, ErlPeer, list[NodeEvent]]]:
    """A Python node and an erl peer, both at net_ticktime 4 s, connected, watching nodedowns."""
    suffix = f"{rt.label}_{secrets.token_hex(2)}"
    port = free_port()
    async with Node.start(
        f"{prefix}_py_{suffix}@127.0.0.1", COOKIE, epmd_port=port, listen_host="127.0.0.1",
        net_ticktime=TICKTIME, **node_options,
    ) as node:
        erl = await start_erl(
            peers, rt, f"{prefix}_erl_{suffix}@127.0.0.1", epmd_port=port,
            extra_args=("-kernel", "net_ticktime", str(int(TICKTIME))),
        )
        assert await erl.aeval(f"net_adm:ping('{node.name}')") == "pong"
        await erl.aeval(ERL_DOWN_WATCHER)
        events: list[NodeEvent] = []
        unsubscribe = node.monitor_nodes(events.append)
        try:
            yield node, erl, events
        finally:
            unsubscribe()


async def blocker(proc: Process, seconds: float) -> None:
    """User code doing it wrong: a blocking call inside a coroutine (stalls the whole loop)."""
    time.sleep(seconds)


async def test_a_loop_blocked_for_10s_keeps_the_node_up_and_messages_in_order(
    erl_runtime: ErlRuntime, peers: PeerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    count = 120
    async with stall_setup(erl_runtime, peers, "stall") as (node, erl, events):
        received: list[Any] = []

        async def sink(proc: Process) -> None:
            while True:
                received.append(await proc.receive())

        node.spawn(sink, name="sink")
        # The peer starts sending after 0.5 s and sends for about 1.7 s (a few seconds on a loaded
        # machine): all of it during the 10 s stall.
        await erl.aeval(
            f"{{Sender, SenderRef}} = spawn_monitor(fun() -> timer:sleep(500), "
            f"[begin {{sink, '{node.name}'}} ! {{n, I}}, timer:sleep(10) end "
            f"|| I <- lists:seq(1, {count})] end)"
        )
        with caplog.at_level(logging.WARNING, logger=WATCHDOG_LOGGER):
            started = time.monotonic()
            stalled = node.spawn(blocker, STALL)
            await asyncio.wait_for(stalled.wait(), STALL + 60)
            assert time.monotonic() - started >= STALL
            # The sender finished while the loop was blocked.
            assert await erl.aeval(
                "receive {'DOWN', SenderRef, process, Sender, R} -> R after 0 -> running end"
            ) == "normal"
            deadline = time.monotonic() + 30
            while len(received) < count and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(2 * TICKTIME)  # past another full tick period on both sides
        assert received == [(Atom("n"), i) for i in range(1, count + 1)]
        assert await term(erl, ERL_DOWNS) == []
        assert await term(erl, "nodes()") == [node.name]
        assert [e for e in events if e.kind == "nodedown"] == []
        assert node.nodes() == [Atom(erl.name)]
        warnings = [
            r for r in caplog.records
            if r.name == WATCHDOG_LOGGER and r.levelno == logging.WARNING
            and r.msg.startswith("event loop blocked for %")
            and float(r.args[0]) >= STALL / 2  # type: ignore[index]
        ]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        text = warnings[0].getMessage()
        assert f"{__file__}:" in text and "in blocker" in text, text
        assert "by task \"beamlink process Pid(" in text, text  # the asyncio task running it
