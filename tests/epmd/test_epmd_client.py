"""The asyncio client against Debian's real ``epmd`` and against the embedded one (same tests)."""

from __future__ import annotations

import asyncio

import pytest

from beamlink.epmd import (
    EpmdUnavailable,
    NameInUse,
    NodeNotFound,
    names,
    port_please,
    register,
)
from beamlink.epmd.protocol import NODE_TYPE_HIDDEN, NODE_TYPE_NORMAL
from tests.epmd.helpers import free_port, wait_until_unregistered


async def test_register_lookup_names_unregister(epmd_port: int) -> None:
    registration = await register("alpha", 5001, epmd_port=epmd_port)
    assert registration.creation >= 4
    assert not registration.closed
    assert ("alpha", 5001) in await names(epmd_port=epmd_port)
    node = await port_please("127.0.0.1", "alpha", epmd_port=epmd_port)
    assert (node.port, node.node_type, node.protocol) == (5001, NODE_TYPE_NORMAL, 0)
    assert (node.highest_version, node.lowest_version, node.name, node.extra) == (6, 5, "alpha", b"")
    await registration.close()
    assert registration.closed
    await wait_until_unregistered("alpha", epmd_port)
    with pytest.raises(NodeNotFound, match="no node named 'alpha'"):
        await port_please("127.0.0.1", "alpha", epmd_port=epmd_port)


async def test_duplicate_live_name_is_refused(epmd_port: int) -> None:
    first = await register("dup", 5002, epmd_port=epmd_port)
    with pytest.raises(NameInUse, match="refused to register 'dup'"):
        await register("dup", 5003, epmd_port=epmd_port)
    assert dict(await names(epmd_port=epmd_port))["dup"] == 5002
    await first.close()


async def test_creation_increments_per_registration_of_a_name(epmd_port: int) -> None:
    creations = []
    for _ in range(3):
        registration = await register("again", 5004, epmd_port=epmd_port)
        creations.append(registration.creation)
        await registration.close()
        await wait_until_unregistered("again", epmd_port)
    assert creations[1] == creations[0] + 1 or creations[1] == 4
    assert creations[2] == creations[1] + 1


async def test_v5_node_gets_16_bit_creation_in_1_to_3(epmd_port: int) -> None:
    registration = await register(
        "old", 5005, epmd_port=epmd_port, highest_version=5, lowest_version=5
    )
    assert registration.creation in (1, 2, 3)
    await registration.close()


async def test_hidden_node_type_and_extra_are_kept(epmd_port: int) -> None:
    registration = await register("shy", 5006, hidden=True, extra=b"xtra", epmd_port=epmd_port)
    node = await port_please("127.0.0.1", "shy", epmd_port=epmd_port)
    assert node.node_type == NODE_TYPE_HIDDEN and node.hidden
    assert node.extra == b"xtra"
    await registration.close()


async def test_registration_socket_closing_drops_the_name(epmd_port: int) -> None:
    registration = await register("drop", 5007, epmd_port=epmd_port)
    registration._writer.transport.abort()
    await asyncio.wait_for(registration.wait_closed(), 5)
    await wait_until_unregistered("drop", epmd_port)


async def test_erl_epmd_port_env_is_honoured(
    epmd_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERL_EPMD_PORT", str(epmd_port))
    registration = await register("envy", 5008)
    assert ("envy", 5008) in await names()
    assert (await port_please("127.0.0.1", "envy")).port == 5008
    await registration.close()


async def test_many_names_are_listed(epmd_port: int) -> None:
    registrations = [await register(f"n{i}", 6000 + i, epmd_port=epmd_port) for i in range(20)]
    listed = dict(await names(epmd_port=epmd_port))
    assert all(listed[f"n{i}"] == 6000 + i for i in range(20))
    for registration in registrations:
        await registration.close()


async def test_no_epmd_means_a_clear_unavailable_error() -> None:
    port = free_port()
    with pytest.raises(EpmdUnavailable, match=f"no EPMD at 127.0.0.1:{port}.*ERL_EPMD_PORT"):
        await names(epmd_port=port)
    with pytest.raises(EpmdUnavailable):
        await register("x", 1, epmd_port=port)
    with pytest.raises(EpmdUnavailable):
        await port_please("127.0.0.1", "x", epmd_port=port)


async def test_silent_peer_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(EpmdUnavailable, match=r"did not answer within 0\.3 s"):
            await names(epmd_port=port, timeout=0.3)
        with pytest.raises(EpmdUnavailable, match="did not answer"):
            await register("x", 1, epmd_port=port, timeout=0.3)
    finally:
        server.close()
        await server.wait_closed()


async def test_invalid_names_are_refused_before_sending() -> None:
    with pytest.raises(ValueError, match=r"1\.\.255"):
        await register("", 1, epmd_port=free_port())
    with pytest.raises(ValueError, match="control character"):
        await port_please("127.0.0.1", "a\nb", epmd_port=free_port())
