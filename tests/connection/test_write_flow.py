"""Writes under flow control: megabytes queued in one loop iteration reach a real Erlang node
whole and in order, handed to the transport a chunk at a time (`DistConnection._flush`), big
binaries uncopied (`FrameWriter.binary_frame`) between small messages."""

from __future__ import annotations

import pytest

from beamlink import Node
from beamlink.connection.protocol import WRITE_CHUNK
from beamlink.etf import Atom
from tests.support.erlang import host_runtime
from tests.support.fixtures import PeerFactory

pytestmark = pytest.mark.interop

COLLECT = """
register(big_rx, spawn(fun() ->
    Loop = fun L(0, Acc) -> receive {From, get} -> From ! lists:reverse(Acc) end;
               L(N, Acc) -> receive <<I, _/binary>> = B -> L(N - 1, [{I, byte_size(B)} | Acc]) end
           end,
    Loop(COUNT, [])
end)), ok
"""


async def test_megabytes_sent_at_once_arrive_whole_and_in_order(peers: PeerFactory) -> None:
    count, size = 60, 1 << 20
    sizes = [size if i % 3 else 10 for i in range(count)]  # small ones between the big ones
    assert sum(sizes) > 8 * WRITE_CHUNK  # far more than one chunk: the transport pauses
    peer = await peers.astart(host_runtime(), "flow_erl@127.0.0.1")
    async with Node.start("flow_py@127.0.0.1", cookie="beamlinktest") as node:
        assert await node.connect(peer.name)
        await peer.aeval(COLLECT.replace("COUNT", str(count)))
        with node.new_process() as me:
            dest = (Atom("big_rx"), Atom(peer.name))
            for i in range(count):  # one loop iteration: all of it queued at once
                me.send(dest, bytes([i]) + bytes(sizes[i] - 1))
            me.send(dest, (me.pid, Atom("get")))
            got = await me.receive(timeout=60)
    assert got == [(i, sizes[i]) for i in range(count)]
