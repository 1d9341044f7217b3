"""Delivery of received frames in batches: a failing handler loses only its own message."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from beamlink.connection import ConnectionManager
from beamlink.distribution import control
from beamlink.etf import Atom, Pid
from tests.connection.recorder import Recorder

COOKIE = "deliverycookie"


class Picky(Recorder):
    """Records messages but raises on the message ``bad``."""

    def on_message(self, peer: Atom, control_msg: tuple[Any, ...], message: Any) -> None:
        if message == Atom("bad"):
            raise RuntimeError("handler refuses this message")
        super().on_message(peer, control_msg, message)


@contextlib.asynccontextmanager
async def connected(a_rec: Recorder, b_rec: Recorder) -> AsyncIterator[ConnectionManager]:
    """Managers ``a@127.0.0.1`` and ``b@127.0.0.1`` recording into ``a_rec``/``b_rec``, ``a``
    connected to ``b``; yields ``a``; both closed afterwards."""
    ports: dict[Atom, int] = {}

    async def resolve(peer: Atom) -> tuple[str, int]:
        return "127.0.0.1", ports[peer]

    a = ConnectionManager(
        local_name="a@127.0.0.1", cookie=COOKIE, creation=1, handler=a_rec, resolver=resolve
    )
    b = ConnectionManager(
        local_name="b@127.0.0.1", cookie=COOKIE, creation=2, handler=b_rec, resolver=resolve
    )
    try:
        for manager in (a, b):
            ports[manager.local_name] = await manager.listen("127.0.0.1", 0)
        assert await a.connect("b@127.0.0.1")
        yield a
    finally:
        await a.close()
        await b.close()


async def test_a_failing_message_does_not_drop_the_rest_of_its_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a_rec, b_rec = Recorder(), Picky()
    async with connected(a_rec, b_rec) as a:
        peer = Atom("b@127.0.0.1")
        to = Pid(peer, 1, 0, 2)
        sent = [Atom("bad") if i % 10 == 3 else i for i in range(60)]
        with caplog.at_level(logging.ERROR, logger="beamlink.connection.manager"):
            for message in sent:  # one loop iteration: one write, delivered in few batches
                assert a.send(peer, control.send(to), message)
            expected = [m for m in sent if m != Atom("bad")]
            await b_rec.wait_for(lambda: len(b_rec.messages) >= len(expected))
        assert [m for _p, _c, m in b_rec.messages] == expected
        failures = [r for r in caplog.records if "handler failed" in r.getMessage()]
        assert len(failures) == sent.count(Atom("bad"))
        assert a.send(peer, control.send(to), "after")  # the connection is still up
        await b_rec.wait_for(lambda: len(b_rec.messages) == len(expected) + 1)


async def test_the_first_message_of_an_iteration_is_written_at_once() -> None:
    """A message is written in the step that sends it (with the frames queued before it); the
    rest of that loop iteration's frames wait for one write at the next; order is kept."""
    a_rec, b_rec = Recorder(), Recorder()
    async with connected(a_rec, b_rec) as a:
        peer = Atom("b@127.0.0.1")
        (conn,) = a.connections()
        await asyncio.sleep(0.1)  # past the handshake's own writes
        me, to = Pid(Atom("a@127.0.0.1"), 1, 0, 1), Pid(peer, 1, 0, 2)
        written = conn.traffic.bytes_out
        assert a.send(peer, control.link(me, to))  # a signal alone waits for the flush
        assert conn.traffic.bytes_out == written
        assert a.send(peer, control.send(to), 1)  # the first message: out now, after the link
        after_first = conn.traffic.bytes_out
        assert after_first > written
        assert a.send(peer, control.send(to), 2)  # the rest of the iteration: one write later
        assert a.send(peer, control.send(to), 3)
        assert conn.traffic.bytes_out == after_first
        await asyncio.sleep(0)
        assert conn.traffic.bytes_out > after_first
        await b_rec.wait_for(lambda: len(b_rec.messages) == 4)
        assert [c[0] for _p, c, _m in b_rec.messages] == [control.LINK] + [control.SEND] * 3
        assert [m for _p, _c, m in b_rec.messages[1:]] == [1, 2, 3]


async def test_a_lone_message_in_each_iteration_is_written_at_once() -> None:
    """The flush queued after an eager write runs even with nothing left to write: it ends the
    iteration, so the next iteration's first message is written at once again."""
    a_rec, b_rec = Recorder(), Recorder()
    async with connected(a_rec, b_rec) as a:
        peer = Atom("b@127.0.0.1")
        (conn,) = a.connections()
        await asyncio.sleep(0.1)  # past the handshake's own writes
        to = Pid(peer, 1, 0, 2)
        for i in range(3):
            written = conn.traffic.bytes_out
            assert a.send(peer, control.send(to), i)
            assert conn.traffic.bytes_out > written, f"message {i} waited for a later flush"
            await asyncio.sleep(0)  # the next loop iteration
        await b_rec.wait_for(lambda: len(b_rec.messages) == 3)
        assert [m for _p, _c, m in b_rec.messages] == [0, 1, 2]
