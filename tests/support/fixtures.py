"""Pytest fixtures shared by every suite: OTP runtimes, real erl/elixir peers, EPMD hygiene."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
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


def _epmd_daemons(cwd: str) -> set[int]:
    """Pids of the ``epmd`` processes started from ``cwd`` (their environment's PWD)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() != "epmd":
                continue
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"PWD={cwd}".encode() in env:
            found.add(int(proc.name))
    return found


@pytest.fixture(scope="session", autouse=True)
def _epmd_hygiene() -> Iterator[None]:
    """A plain ``erl -name`` starts Debian's epmd (on the ERL_EPMD_PORT it was given) when none
    answers: stop every epmd this session's tests started, and the default one if none ran before.
    Only epmd processes started from this directory count, so other sessions' stay."""
    was_running = epmd_running()
    cwd = os.getcwd()
    before = _epmd_daemons(cwd)
    yield
    for pid in _epmd_daemons(cwd) - before:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
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

    async def astart(
        self, rt: ErlRuntime, name: str, cookie: str = "beamlinktest", **kw: Any
    ) -> ErlPeer:
        """`start` without blocking the event loop: the erl boots in a thread while the loop
        keeps serving (the test's node may be the EPMD the peer registers with)."""
        return await asyncio.to_thread(self.start, rt, name, cookie, **kw)

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
