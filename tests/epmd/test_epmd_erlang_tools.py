"""The embedded EPMD as real Erlang tools see it: ``erl -name`` registers with it (OTP 25, 27 and 29),
``net_adm:names/0`` and ``erl_epmd:port_please/2`` read it, ``epmd -names`` lists it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess

import pytest

from beamlink.epmd import EmbeddedEpmd, port_please, register
from tests.epmd.helpers import wait_until_unregistered
from tests.support.erlang import RUNTIME_LABELS, ErlPeer, runtime, start_peer
from tests.support.require import require_tool

pytestmark = pytest.mark.interop


async def start_erl(label: str, name: str, epmd_port: int) -> ErlPeer:
    """An ``erl -name`` node registered with the EPMD on ``epmd_port`` (never starting one)."""
    rt = runtime(label)
    return await asyncio.to_thread(
        start_peer,
        rt,
        f"{name}@127.0.0.1",
        "epmdtest",
        extra_args=("-start_epmd", "false"),
        env={"ERL_EPMD_PORT": str(epmd_port)},
    )


@pytest.mark.parametrize("label", RUNTIME_LABELS)
async def test_erl_registers_with_the_embedded_epmd(
    label: str, embedded_epmd: EmbeddedEpmd
) -> None:
    port = embedded_epmd.port
    python_node = await register("pynode", 4321, epmd_port=port)
    peer = await start_erl(label, f"erl{label}", port)
    try:
        [entry] = [e for e in embedded_epmd.registered() if e.node.name == f"erl{label}"]
        assert await peer.aeval("erlang:system_info(creation)") == str(entry.creation)
        assert entry.node.highest_version == 6
        assert entry.creation >= 4
        listed = await peer.aeval(
            "{ok, L} = net_adm:names(), lists:sort([{list_to_atom(N), P} || {N, P} <- L])"
        )
        assert listed == f"[{{erl{label},{entry.node.port}}},{{pynode,4321}}]"
        assert await peer.aeval('erl_epmd:port_please("pynode", "127.0.0.1")') == "{port,4321,6}"
        assert await peer.aeval('erl_epmd:port_please("nosuch", "127.0.0.1")') == "noport"
        erl_address = await port_please("127.0.0.1", f"erl{label}", epmd_port=port)
        assert erl_address == entry.node
    finally:
        await asyncio.to_thread(peer.stop)
        await python_node.close()
    await wait_until_unregistered(f"erl{label}", port)


async def test_epmd_names_lists_the_embedded_registrations(embedded_epmd: EmbeddedEpmd) -> None:
    epmd = require_tool("epmd")
    port = embedded_epmd.port
    registrations = [await register(n, p, epmd_port=port) for n, p in (("one", 5101), ("two", 5102))]
    for argv, env in (
        ([epmd, "-port", str(port), "-names"], dict(os.environ)),
        ([epmd, "-names"], dict(os.environ, ERL_EPMD_PORT=str(port))),
    ):
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
        text = out.decode()
        assert re.search(rf"up and running on port {port}\b", text), text
        assert "name one at port 5101" in text and "name two at port 5102" in text
    for registration in registrations:
        await registration.close()
