"""The loop watchdog: lag statistics, one warning naming what blocked the loop, and ticks written
from its thread while the loop is stalled (between frames: the stream stays well framed).

The scenario is a blocked event loop, so these tests block it on purpose, from a callback they
schedule (`hog`), for a bounded time; everything else awaits with generous timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from beamlink import eventloop
from beamlink.connection import ConnectionManager, LoopWatchdog
from beamlink.connection.watchdog import LAG_BUCKETS, LagStats, Tickable
from beamlink.etf import Atom
from tests.connection.recorder import Recorder

COOKIE = "watchdogcookie"
WATCHDOG_LOGGER = "beamlink.connection.watchdog"


def hog(seconds: float) -> None:
    """The culprit: blocks the thread it runs on (the event loop's, when scheduled there)."""
    time.sleep(seconds)


async def block_loop(seconds: float) -> None:
    """Run `hog` as a loop callback and wait until the loop has run it."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(lambda: (hog(seconds), done.set_result(None)))
    await asyncio.wait_for(done, seconds + 30)


class NoConnections:
    """A watchdog owner with nothing to tick."""

    def connections(self) -> Sequence[Tickable]:
        return []


def stall_warnings(caplog: pytest.LogCaptureFixture, at_least: float) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == WATCHDOG_LOGGER
        and r.levelno == logging.WARNING
        and r.msg.startswith("event loop blocked for %")
        and float(r.args[0]) >= at_least  # type: ignore[index]
    ]


def test_lag_histogram_is_cumulative() -> None:
    stats = LagStats()
    for lag in (0.0005, 0.003, 0.2, 100.0):
        stats.observe(lag)
    pairs = stats.cumulative()
    assert pairs[-1] == ("+Inf", 4)
    assert len(pairs) == len(LAG_BUCKETS) + 1
    assert dict(pairs)["0.001"] == 1 and dict(pairs)["0.25"] == 3 and dict(pairs)["60.0"] == 3
    assert stats.max == 100.0 and stats.last == 100.0 and stats.count == 4


async def test_a_stall_is_measured_and_reported_once_naming_the_culprit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = NoConnections()
    dog = LoopWatchdog.attach(owner, threshold=0.1)
    try:
        with caplog.at_level(logging.WARNING, logger=WATCHDOG_LOGGER):
            await asyncio.sleep(0.3)  # a few beats first
            await block_loop(1.0)
            await asyncio.sleep(0.3)  # the beat after the stall reports it
        warnings = stall_warnings(caplog, at_least=0.5)
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        text = warnings[0].getMessage()
        assert "a callback (no task)" in text
        assert f"{__file__}:" in text and "in hog" in text, text
        assert dog.stats.max >= 0.5 and dog.stats.stalls >= 1
    finally:
        dog.detach(owner)
    assert LoopWatchdog._by_loop.get(asyncio.get_running_loop()) is not dog


async def test_owners_share_one_watchdog_per_loop_with_the_smallest_threshold() -> None:
    first, second = NoConnections(), NoConnections()
    dog = LoopWatchdog.attach(first, threshold=0.5)
    try:
        assert LoopWatchdog.attach(second, threshold=0.2) is dog
        assert dog.threshold == 0.2
        dog.detach(second)
        assert dog.threshold == 0.5
    finally:
        dog.detach(first)
    with pytest.raises(ValueError, match="> 0"):
        LoopWatchdog.attach(first, threshold=0)


async def test_ticks_flow_while_the_loop_is_stalled() -> None:
    ports: dict[Atom, int] = {}

    async def resolve(peer: Atom) -> tuple[str, int]:
        return "127.0.0.1", ports[peer]

    a_rec, b_rec = Recorder(), Recorder()
    a = ConnectionManager(
        local_name="a@127.0.0.1", cookie=COOKIE, creation=1, handler=a_rec, resolver=resolve,
        net_ticktime=2.0,
    )
    b = ConnectionManager(
        local_name="b@127.0.0.1", cookie=COOKIE, creation=2, handler=b_rec, resolver=resolve,
        net_ticktime=2.0,
    )
    try:
        for manager in (a, b):
            ports[manager.local_name] = await manager.listen("127.0.0.1", 0)
        assert await a.connect("b@127.0.0.1")
        await b_rec.wait_for(lambda: b_rec.kinds("up"))
        dog = a.watchdog
        assert dog is not None and dog is b.watchdog
        before = dog.stats.ticks
        (b_side,) = b.connections()
        read_before = b_side.traffic.bytes_in
        await block_loop(3.0)  # longer than net_ticktime: only the watchdog's ticks keep it up
        # both ends ticked every 0.5 s (net_ticktime / 4) during the 3 s stall
        assert dog.stats.ticks - before >= 6
        await asyncio.sleep(0.5)  # the loop reads what arrived meanwhile
        assert b_side.traffic.bytes_in - read_before >= 4 * 3
        assert a.connected_nodes() == [Atom("b@127.0.0.1")]
        assert b.connected_nodes() == [Atom("a@127.0.0.1")]
        await asyncio.sleep(3.0)  # and the connection lives on, ticking normally
        assert not a_rec.kinds("down") and not b_rec.kinds("down")
        assert b_side.is_up
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_an_idle_loop_is_sampled_as_idle(loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # uvloop polls in C: the loop thread's innermost Python frame is then the one running the
    # loop, which must count as idle (a process short of CPU is not a loop blocked by code).
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    monkeypatch.setenv(eventloop.ENV, loop)

    async def sample_while_idle() -> list[Any]:
        owner = NoConnections()
        dog = LoopWatchdog.attach(owner, threshold=30)
        try:
            thread = threading.Thread(target=lambda: (time.sleep(0.2), dog._sample()))
            thread.start()
            await asyncio.sleep(0.6)  # idle; the sample is taken meanwhile
            while thread.is_alive():  # bounded: _sample returns at once
                await asyncio.sleep(0.05)
            return list(dog._samples)
        finally:
            dog.detach(owner)

    samples = eventloop.run(sample_while_idle())
    assert samples and all(culprit.idle for culprit in samples), samples
