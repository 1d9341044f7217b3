"""Helpers for node tests against real erl/elixir peers: an isolated EPMD port per test (embedded
in the Python node, or a real ``epmd`` process), peers started without blocking the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.erlang import ErlPeer, ErlRuntime
from tests.support.fixtures import PeerFactory

COOKIE = "beamlinktest"


async def start_erl(
    peers: PeerFactory,
    rt: ErlRuntime,
    name: str,
    *,
    epmd_port: int | None = None,
    cookie: str = COOKIE,
    **kw: Any,
) -> ErlPeer:
    """Start a peer in a thread (the Python node in this loop may be its EPMD)."""
    env = dict(kw.pop("env", {}) or {})
    if epmd_port is not None:
        env["ERL_EPMD_PORT"] = str(epmd_port)
    return await asyncio.to_thread(peers.start, rt, name, cookie, env=env, **kw)


async def term(peer: ErlPeer, expr: str, timeout: float = 30.0) -> Any:
    """Evaluate ``expr`` on ``peer`` and return its value decoded with beamlink's codec."""
    res = await peer.aeval_result(expr, timeout)
    assert res.ok, res.text
    return res.term()
