"""Takeover and races between separate OS processes sharing one EPMD port."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from beamlink.epmd import EpmdError, names
from tests.epmd.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


class KeeperProcess:
    """One ``tests.epmd.keeper_node`` process and its JSON event lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def event(self, timeout: float = 15.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert line, f"keeper process exited ({self.proc.returncode})"
        result: dict[str, Any] = json.loads(line)
        return result

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@pytest.fixture
async def spawn() -> AsyncIterator[Any]:
    started: list[KeeperProcess] = []

    async def start(name: str, port: int, epmd_port: int) -> KeeperProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.epmd.keeper_node", name, str(port), str(epmd_port),
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        keeper = KeeperProcess(proc)
        started.append(keeper)
        return keeper

    try:
        yield start
    finally:
        await asyncio.gather(*(keeper.stop() for keeper in started))


async def test_owner_killed_another_process_takes_over(spawn: Any) -> None:
    epmd_port = free_port()
    owner = await spawn("owner", 8001, epmd_port)
    assert (await owner.event())["embedded"] is True
    followers = [await spawn(f"f{i}", 8010 + i, epmd_port) for i in range(2)]
    firsts = [await f.event() for f in followers]
    assert [e["embedded"] for e in firsts] == [False, False]
    assert sorted(await names(epmd_port=epmd_port)) == [("f0", 8010), ("f1", 8011), ("owner", 8001)]

    owner.proc.send_signal(signal.SIGKILL)
    await owner.proc.wait()
    changed = [await f.event() for f in followers]
    assert [e["event"] for e in changed] == ["changed", "changed"]
    assert sorted(e["embedded"] for e in changed) == [False, True], "exactly one new owner"
    assert all(c["creation"] != f["creation"] for c, f in zip(changed, firsts, strict=True))
    assert sorted(await names(epmd_port=epmd_port)) == [("f0", 8010), ("f1", 8011)]

    for follower in followers:
        await follower.stop()
    assert [f.proc.returncode for f in followers] == [0, 0]
    with pytest.raises(EpmdError):
        await names(epmd_port=epmd_port)


async def test_processes_racing_to_start_the_embedded_epmd(spawn: Any) -> None:
    epmd_port = free_port()
    keepers = await asyncio.gather(*(spawn(f"r{i}", 8100 + i, epmd_port) for i in range(4)))
    events = await asyncio.gather(*(k.event() for k in keepers))
    assert [e["event"] for e in events] == ["registered"] * 4
    assert sum(e["embedded"] for e in events) == 1, "one process wins the bind"
    assert sorted(await names(epmd_port=epmd_port)) == [(f"r{i}", 8100 + i) for i in range(4)]
