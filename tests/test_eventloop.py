"""beamlink.eventloop: uvloop when installed and wanted, asyncio's loop otherwise; a node on
uvloop talks to a real Erlang node (calls both ways, which read and write through its transports)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from beamlink import GenServer, Node, eventloop
from beamlink.etf import Atom
from tests.support.erlang import host_runtime
from tests.support.fixtures import PeerFactory


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_is_kept_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, "asyncio")
    assert eventloop.loop_name() == "asyncio"
    assert eventloop.run(loop_module()).startswith("asyncio")


def test_a_bad_choice_says_what_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, "fast")
    with pytest.raises(ValueError, match="auto, asyncio or uvloop"):
        eventloop.loop_name()


def test_uvloop_is_used_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.delenv(eventloop.ENV, raising=False)
    assert eventloop.loop_name() == "uvloop"
    assert eventloop.run(loop_module()).startswith("uvloop")


class Echo(GenServer):
    name = "uv_echo"

    def handle_call(self, request: Any, from_: Any) -> Any:
        return request


def test_a_node_on_uvloop_serves_and_makes_calls(
    monkeypatch: pytest.MonkeyPatch, peers: PeerFactory
) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.setenv(eventloop.ENV, "uvloop")
    peer = peers.start(host_runtime(), "uvpeer@127.0.0.1")

    async def main() -> tuple[str, str, Any]:
        async with Node.start("uvpy@127.0.0.1", cookie="beamlinktest") as node:
            await Echo.start(node)
            answer = await peer.aeval(
                f"[gen_server:call({{uv_echo, '{node.name}'}}, N) || N <- lists:seq(1, 200)]"
            )
            nodes = await node.call((Atom("application_controller"), Atom(peer.name)),
                                    Atom("which_applications"), timeout=10)
            return await loop_module(), answer, nodes

    module, answer, apps = eventloop.run(main())
    assert module.startswith("uvloop")
    assert answer == "[" + ",".join(str(n) for n in range(1, 201)) + "]"
    assert Atom("kernel") in [app for app, _description, _version in apps]
