"""Pytest fixtures shared by every suite: OTP runtimes, real erl/elixir peers, EPMD hygiene."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.erlang import (
    RUNTIME_LABELS,
    ErlPeer,
    ErlRuntime,
    epmd_running,
    kill_epmd,
    runtime,
    start_peer,
)


@pytest.fixture(scope="session", autouse=True)
def _epmd_hygiene() -> Iterator[None]:
    """A plain ``erl -name`` starts Debian's epmd; stop it at the end if none ran before."""
    was_running = epmd_running()
    yield
    if not was_running and epmd_running():
        kill_epmd()


@pytest.fixture(params=RUNTIME_LABELS)
def erl_runtime(request: pytest.FixtureRequest) -> ErlRuntime:
    """Each OTP runtime of ``RUNTIME_LABELS`` in turn: OTP 25 (host), 27 (trixie), 29 (sid chroot)."""
    return runtime(request.param)


class PeerFactory:
    """Starts real erl/elixir nodes for one test and stops them all afterwards."""

    def __init__(self) -> None:
        self.started: list[ErlPeer] = []

    def start(self, rt: ErlRuntime, name: str, cookie: str = "beamlinktest", **kw: Any) -> ErlPeer:
        peer = start_peer(rt, name, cookie, **kw)
        self.started.append(peer)
        return peer

    def stop_all(self) -> None:
        for peer in reversed(self.started):
            peer.stop()
        self.started.clear()


@pytest.fixture
def peers() -> Iterator[PeerFactory]:
    """Factory of real Erlang/Elixir peers, stopped at teardown."""
    factory = PeerFactory()
    yield factory
    factory.stop_all()
