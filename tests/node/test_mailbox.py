"""Mailbox: ordering, selective receive, timeouts, wake-ups, closing."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beamlink.node.errors import ProcessExit, ReceiveTimeout
from beamlink.node.runtime import Mailbox


async def test_receive_returns_messages_in_order() -> None:
    box = Mailbox()
    for i in range(5):
        box.put(i)
    assert [await box.receive() for _ in range(5)] == [0, 1, 2, 3, 4]


async def test_selective_receive_keeps_skipped_messages_in_order() -> None:
    box = Mailbox()
    for m in ["a", 1, "b", 2, "c"]:
        box.put(m)
    assert await box.receive(lambda m: isinstance(m, int)) == 1
    assert await box.receive(lambda m: isinstance(m, int)) == 2
    assert box.peek() == ["a", "b", "c"]


async def test_receive_waits_for_a_matching_message() -> None:
    box = Mailbox()

    async def feed() -> None:
        for m in ["x", "y", 7]:
            await asyncio.sleep(0.01)
            box.put(m)

    feeder = asyncio.create_task(feed())
    assert await box.receive(lambda m: m == 7, timeout=5) == 7
    await feeder
    assert box.peek() == ["x", "y"]


async def test_timeout_raises_typed_error_and_keeps_queue() -> None:
    box = Mailbox()
    box.put("other")
    with pytest.raises(ReceiveTimeout):
        await box.receive(lambda m: m == "never", timeout=0.05)
    with pytest.raises(ReceiveTimeout):
        await box.receive(lambda m: m == "never", timeout=0)
    assert box.peek() == ["other"]
    assert isinstance(ReceiveTimeout(), TimeoutError)


async def test_non_matching_message_at_deadline_still_times_out() -> None:
    box = Mailbox()
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, box.put, "noise")
    with pytest.raises(ReceiveTimeout):
        await box.receive(lambda m: m == "wanted", timeout=0.05)


async def test_cancelled_receive_leaves_mailbox_usable() -> None:
    box = Mailbox()
    waiting = asyncio.create_task(box.receive())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    box.put(1)
    assert await box.receive(timeout=1) == 1


async def test_close_wakes_waiter_with_process_exit() -> None:
    box = Mailbox()
    waiting = asyncio.create_task(box.receive())
    await asyncio.sleep(0)
    box.close("bye")
    with pytest.raises(ProcessExit) as info:
        await waiting
    assert info.value.reason == "bye"
    box.put(1)
    assert len(box) == 0


async def test_remove_all() -> None:
    box = Mailbox()
    for m in range(10):
        box.put(m)
    assert box.remove_all(lambda m: m % 2 == 0) == 5
    assert box.peek() == [1, 3, 5, 7, 9]


@given(st.lists(st.integers(min_value=0, max_value=9), max_size=40), st.integers(0, 9))
def test_selective_receive_property(messages: list[int], wanted: int) -> None:
    """Receiving every `wanted` first, then the rest, yields both groups in arrival order."""

    async def run() -> tuple[list[int], list[int]]:
        box = Mailbox()
        for m in messages:
            box.put(m)
        first = []
        while True:
            try:
                first.append(await box.receive(lambda m: m == wanted, timeout=0))
            except ReceiveTimeout:
                break
        rest = [await box.receive(timeout=0) for _ in range(len(box))]
        return first, rest

    first, rest = asyncio.run(run())
    assert first == [m for m in messages if m == wanted]
    assert rest == [m for m in messages if m != wanted]
