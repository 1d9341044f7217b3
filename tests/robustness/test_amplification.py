"""Decoder amplification (issue 12, item 5), against a live node through a raw socket.

A peer that passed the handshake sends one 64 MiB frame whose message is lists of empty lists:
every input byte would become a 56-byte Python list (about 4.6 GiB in all). The node must drop
the peer with a log line naming the memory budget, its peak memory must grow by about the budget
(plus the frame's own bytes), and its event loop must keep running meanwhile (measured as the
longest gap of a 20 ms timer). A frame of honest data just under the budget is delivered.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import AsyncIterator

import pytest

from beamlink.distribution.control import SEND
from beamlink.distribution.frames import DEFAULT_MAX_TERM_MEMORY
from beamlink.etf import Atom, encode
from beamlink.node import Node
from beamlink.node.runtime import Process
from tests.cluster.conftest import private_epmd
from tests.robustness.hostile import HostilePeer
from tests.robustness.test_hostile_peers import memory, reset_peak_memory

__all__ = ["private_epmd"]

pytestmark = pytest.mark.timeout(180)

COOKIE = "amplification-cookie"
TARGET = "target@127.0.0.1"
HEADER = bytes([131, 68, 0])
FRAME = 64 * 1024 * 1024 - 64  # just under the default max_frame_size
#: The attacker's copy of the frame, the node's receive buffer and its joined frame.
FRAME_COPIES = 3
HEADROOM = 96 * 1024 * 1024
#: Longest loop stall accepted (the goal is under 1 s; this leaves room for a loaded machine).
STALL_LIMIT = 3.0


@pytest.fixture
async def target(private_epmd: int) -> AsyncIterator[Node]:
    async with Node.start(TARGET, COOKIE, epmd_port=private_epmd, listen_host="127.0.0.1") as node:
        yield node


def nil_lists(size: int, sink_control: bytes) -> bytes:
    """A frame of ``size`` bytes: SEND to the sink, then [[[] x 1000] x N] (ends padded)."""
    inner = b"l" + struct.pack(">I", 1000) + b"j" * 1000 + b"j"
    head = HEADER + sink_control
    count = (size - len(head) - 6) // len(inner)
    body = head + b"l" + struct.pack(">I", count) + inner * count + b"j"
    return struct.pack(">I", len(body)) + body


class StallMeter:
    """The longest gap between ticks of a 20 ms timer on the running loop."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            self.longest = max(self.longest, now - last - 0.02)
            last = now

    def stop(self) -> float:
        self._task.cancel()
        return self.longest


async def test_a_64_mib_frame_of_empty_lists_is_refused_within_the_budget(
    target: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="beamlink")
    received: list[object] = []
    sink = target.spawn(_collect, received, name="sink").pid
    control = encode((SEND, Atom(""), sink))[1:]
    frame = nil_lists(FRAME, control)
    reset_peak_memory()
    before = memory("VmRSS")
    peer = await HostilePeer.connect(TARGET, target.port, COOKIE, name="evil@127.0.0.1")
    meter = StallMeter()
    await peer.send(frame)
    del frame
    assert await peer.wait_closed_by_node(60.0), "the node kept the connection"
    await asyncio.sleep(0.1)
    stall = meter.stop()
    growth = memory("VmHWM") - before
    logging.getLogger(__name__).info(
        "64 MiB frame of empty lists: longest loop stall %.2f s, peak memory +%.0f MiB",
        stall, growth / 2**20,
    )
    assert any(
        "needs more than the memory budget" in r.getMessage() and "evil@127.0.0.1" in r.getMessage()
        for r in caplog.records
    ), "no log line names the memory budget"
    assert growth < DEFAULT_MAX_TERM_MEMORY + FRAME_COPIES * FRAME + HEADROOM
    assert stall < STALL_LIMIT, f"the event loop stalled for {stall:.2f} s"
    assert received == []
    await peer.close()


async def test_honest_data_under_the_budget_is_delivered(target: Node) -> None:
    received: list[object] = []
    sink = target.spawn(_collect, received, name="sink").pid
    message = [(Atom("row"), i, b"payload") for i in range(200_000)]  # ~4 MiB, ~40 MiB decoded
    data = HEADER + encode((SEND, Atom(""), sink))[1:] + encode(message)[1:]
    assert len(data) > DEFAULT_MAX_TERM_MEMORY // 80  # decoded with the budget's bookkeeping
    peer = await HostilePeer.connect(TARGET, target.port, COOKIE, name="honest@127.0.0.1")
    await peer.send(struct.pack(">I", len(data)) + data)
    for _ in range(600):
        if received:
            break
        await asyncio.sleep(0.05)
    assert received == [message]
    assert not peer.closed_by_node
    await peer.close()


async def _collect(proc: Process, into: list[object]) -> None:
    while True:
        into.append(await proc.receive())
