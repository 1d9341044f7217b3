"""Shared set-up of the RPC/GenServer interop suites: a Python node serving the test modules, and
real erl/elixir peers with the test's Erlang modules compiled by their own runtime."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from beamlink.node import Node
from tests.rpc import copy_module
from tests.support.erlang import ErlPeer, ErlRuntime
from tests.support.fixtures import PeerFactory

COOKIE = "beamlinktest"
ERL_DIR = Path(__file__).parent / "erl"
SAMPLE = "tests.rpc.sample_module"


def unique(prefix: str) -> str:
    """A node name no other test uses: ``prefix_<random>@127.0.0.1``."""
    return f"{prefix}_{secrets.token_hex(3)}@127.0.0.1"


@contextlib.asynccontextmanager
async def python_node(prefix: str = "py", **kwargs: object) -> AsyncIterator[Node]:
    """A started Python node serving ``copy`` (the round-trip module); stopped on exit."""
    node = await Node.start(unique(prefix), cookie=COOKIE, **kwargs)  # type: ignore[arg-type]
    node.rpc_server.resolver.modules["copy"] = copy_module
    try:
        yield node
    finally:
        await node.stop()


@contextlib.contextmanager
def compiled(rt: ErlRuntime, *modules: str) -> Iterator[str]:
    """Compile ``tests/rpc/erl/<module>.erl`` with ``rt``; yields the -pa dir as ``rt`` sees it."""
    with rt.tempdir() as (host_dir, rt_dir):
        for module in modules:
            rt.compile(ERL_DIR / f"{module}.erl", (host_dir, rt_dir))
        yield rt_dir


async def start_peer(
    peers: PeerFactory, rt: ErlRuntime, prefix: str, *, code_dir: str | None = None, elixir: bool = False
) -> ErlPeer:
    """Start a peer without blocking the loop (the Python node may be the EPMD it registers with)."""
    extra = ("-pa", code_dir) if code_dir else ()
    return await peers.astart(rt, unique(prefix), COOKIE, extra_args=extra, elixir=elixir)
