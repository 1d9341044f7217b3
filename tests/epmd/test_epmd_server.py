"""The embedded EPMD: garbage resistance, registration lifetime, creations, ensure_epmd and
in-process takeover with keep_registered."""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import struct

import pytest

from beamlink.epmd import (
    EmbeddedEpmd,
    EpmdError,
    NameInUse,
    ensure_epmd,
    keep_registered,
    names,
    port_please,
    register,
)
from tests.epmd.helpers import free_port, wait_until_unregistered


async def send_raw(port: int, data: bytes, *, close_write: bool) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        if close_write:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


def garbage(rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 200))
    if kind == 1:  # a plausible length, then junk
        body = bytes([rng.choice([120, 122, 110])]) + rng.randbytes(rng.randrange(0, 40))
        return struct.pack(">H", len(body)) + body
    if kind == 2:  # oversized length that is never completed
        return b"\xff\xff" + rng.randbytes(10)
    if kind == 3:  # unknown request codes
        return b"\x00\x01" + bytes([rng.choice([0, 1, 100, 107, 115, 255])])
    return b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def test_garbage_connections_are_dropped_and_others_keep_being_served(
    embedded_epmd: EmbeddedEpmd, caplog: pytest.LogCaptureFixture
) -> None:
    port = embedded_epmd.port
    keeper = await register("keeper", 7001, epmd_port=port)
    rng = random.Random(1234)
    caplog.set_level(logging.WARNING, logger="beamlink.epmd.server")
    answers = await asyncio.gather(
        *(send_raw(port, garbage(rng), close_write=True) for _ in range(200))
    )
    assert all(answer == b"" for answer in answers)
    assert not keeper.closed
    assert await names(epmd_port=port) == [("keeper", 7001)]
    other = await register("other", 7002, epmd_port=port)
    assert (await port_please("127.0.0.1", "other", epmd_port=port)).port == 7002
    await other.close()
    await keeper.close()
    dropped = [r for r in caplog.records if "dropping" in r.getMessage()]
    assert 1 <= len(dropped) <= 5, "garbage warnings must be rate-limited"


async def test_incomplete_request_times_out() -> None:
    async with EmbeddedEpmd(port=0, addresses=["127.0.0.1"], request_timeout=0.2) as server:
        assert await send_raw(server.port, b"\x00\x10x\x00", close_write=False) == b""
        assert await names(epmd_port=server.port) == []


async def test_bytes_after_alive2_unregister_the_node(embedded_epmd: EmbeddedEpmd) -> None:
    registration = await register("chatty", 7003, epmd_port=embedded_epmd.port)
    registration._writer.write(b"\x00\x01n")
    await asyncio.wait_for(registration.wait_closed(), 5)
    await wait_until_unregistered("chatty", embedded_epmd.port)


async def test_creations_are_32_bit_random_and_skip_0_to_3() -> None:
    creations = []
    for _ in range(2):
        async with EmbeddedEpmd(port=0, addresses=["127.0.0.1"]) as server:
            registration = await register("fresh", 7004, epmd_port=server.port)
            creations.append(registration.creation)
            assert server.registered()[0].creation == registration.creation
            await registration.close()
    assert creations[0] != creations[1], "a new EPMD starts creations at random"
    async with EmbeddedEpmd(port=0, addresses=["127.0.0.1"]) as server:
        server._counters["wrap"] = 0xFFFFFFFF
        registration = await register("wrap", 7005, epmd_port=server.port)
        assert registration.creation == 4
        await registration.close()


async def test_close_drops_every_registration() -> None:
    server = EmbeddedEpmd(port=0, addresses=["127.0.0.1"])
    await server.start()
    registrations = [await register(f"r{i}", 7010 + i, epmd_port=server.port) for i in range(3)]
    await server.close()
    for registration in registrations:
        await asyncio.wait_for(registration.wait_closed(), 5)
    assert not server.serving


async def test_second_server_on_same_port_fails_with_eaddrinuse(
    embedded_epmd: EmbeddedEpmd,
) -> None:
    with pytest.raises(OSError) as info:
        await EmbeddedEpmd(port=embedded_epmd.port, addresses=["127.0.0.1"]).start()
    assert info.value.errno == errno.EADDRINUSE


async def test_ensure_epmd_uses_a_running_real_epmd(real_epmd: int) -> None:
    assert await ensure_epmd(epmd_port=real_epmd) is None


async def test_ensure_epmd_starts_one_when_none_answers() -> None:
    port = free_port()
    server = await ensure_epmd(epmd_port=port, addresses=["127.0.0.1"])
    assert server is not None and server.port == port
    try:
        assert await ensure_epmd(epmd_port=port, addresses=["127.0.0.1"]) is None
        registration = await register("owned", 7020, epmd_port=port)
        assert await names(epmd_port=port) == [("owned", 7020)]
        await registration.close()
    finally:
        await server.close()


async def test_concurrent_ensure_epmd_starts_exactly_one() -> None:
    port = free_port()
    results = await asyncio.gather(
        *(ensure_epmd(epmd_port=port, addresses=["127.0.0.1"]) for _ in range(8))
    )
    started = [server for server in results if server is not None]
    assert len(started) == 1
    await started[0].close()


async def test_ensure_epmd_refuses_a_port_held_by_something_else() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Like a real HTTP server: read the request, answer 400, close.
        await reader.read(64)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    squatter = await asyncio.start_server(http, "127.0.0.1", 0)
    port = squatter.sockets[0].getsockname()[1]
    try:
        with pytest.raises(EpmdError, match="not EPMD"):
            await ensure_epmd(epmd_port=port, addresses=["127.0.0.1"])
    finally:
        squatter.close()
        await squatter.wait_closed()


async def test_default_port_path(clean_epmd_env: None) -> None:
    """Port 4369 without ERL_EPMD_PORT: use the EPMD there, or run ours there briefly."""
    try:
        before = await names(timeout=2)
    except EpmdError:
        before = None
    server = await ensure_epmd(addresses=["127.0.0.1"])
    try:
        if before is not None:
            assert server is None, "an EPMD answers on 4369: it must be used"
        else:
            assert server is not None and server.port == 4369
        registration = await register("beamlink_default_port_test", 7030)
        assert ("beamlink_default_port_test", 7030) in await names()
        await registration.close()
    finally:
        if server is not None:
            await server.close()


async def test_keep_registered_takes_over_in_process() -> None:
    port = free_port()
    changes: list[int] = []
    owner = await keep_registered("owner", 7040, epmd_port=port, addresses=["127.0.0.1"])
    follower = await keep_registered(
        "follower", 7041, epmd_port=port, addresses=["127.0.0.1"], on_change=changes.append
    )
    assert owner.embedded is not None and follower.embedded is None
    first = await follower.wait_registered()
    with pytest.raises(NameInUse):
        await keep_registered("follower", 1, epmd_port=port, addresses=["127.0.0.1"])
    await owner.close()
    try:
        for _ in range(500):
            if changes:
                break
            await asyncio.sleep(0.02)
        second = await follower.wait_registered()
        assert follower.embedded is not None, "the follower now runs the embedded EPMD"
        assert changes == [second] and second != first
        assert await names(epmd_port=port) == [("follower", 7041)]
    finally:
        await follower.close()
    with pytest.raises(EpmdError):
        await names(epmd_port=port)

