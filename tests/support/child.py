"""Stopping a child OS process whose stdout a reader task follows (node processes in tests)."""

from __future__ import annotations

import asyncio
import signal


class ChildProcess:
    """Base for test drivers of a child process: ``proc`` once started, ``_reader`` follows stdout."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def terminate(self) -> int:
        """Graceful stop (SIGTERM); returns the exit status."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self._wait()

    async def kill(self) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.kill()
        await self._wait()

    async def _wait(self) -> int:
        assert self.proc is not None
        try:
            status = await asyncio.wait_for(self.proc.wait(), 15)
        except asyncio.TimeoutError:
            self.proc.kill()
            status = await self.proc.wait()
        if self._reader is not None:
            await self._reader
        return status
