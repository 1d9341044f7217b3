"""Fixtures for the EPMD tests: a real Debian ``epmd`` and an embedded one, both on free
non-default ports bound to 127.0.0.1, each stopped by the test that started it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from beamlink.epmd import EmbeddedEpmd
from tests.epmd.helpers import wait_for_epmd
from tests.support.erlang import epmd_process


@pytest.fixture
def real_epmd_process() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Debian's ``epmd`` on a free port, listening on loopback only; stopped afterwards."""
    with epmd_process() as started:
        yield started


@pytest.fixture
async def real_epmd(real_epmd_process: tuple[int, subprocess.Popen[bytes]]) -> int:
    """The port of a running real ``epmd``."""
    port, _ = real_epmd_process
    await wait_for_epmd(port)
    return port


@pytest.fixture
async def embedded_epmd() -> AsyncIterator[EmbeddedEpmd]:
    """An embedded EPMD on a free port of 127.0.0.1."""
    server = EmbeddedEpmd(port=0, addresses=["127.0.0.1"])
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture(params=["real", "embedded"])
def epmd_port(request: pytest.FixtureRequest) -> int:
    """The port of a real ``epmd``, then of an embedded one: the same tests run on both."""
    if request.param == "real":
        return int(request.getfixturevalue("real_epmd"))
    server: EmbeddedEpmd = request.getfixturevalue("embedded_epmd")
    return server.port


@pytest.fixture
def clean_epmd_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``ERL_EPMD_PORT`` in this test's environment."""
    monkeypatch.delenv("ERL_EPMD_PORT", raising=False)
    assert "ERL_EPMD_PORT" not in os.environ
