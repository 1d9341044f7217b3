"""The health file of ``beamlink start`` (``--health-file``, ``BEAMLINK_HEALTH_FILE``): a heartbeat
a container's health check reads without starting a Python interpreter (the image's
``deploy/docker/healthcheck.sh``).

While the node is up and registered with EPMD (or, without EPMD, simply up), a task on the node's
event loop rewrites the file every `HEARTBEAT_INTERVAL` with one line, ``<unix time> <node
name>``, through a temporary file and a rename, so a reader never sees half a line. So the file is
fresh only while the event loop runs and the node is registered: a blocked loop, a lost EPMD
registration (while it is renewed) or a killed process let it go stale, and the check reads a
stale file as unhealthy. The file is removed when ``beamlink start`` begins (a leftover of an
earlier run never counts) and when the node stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from beamlink.logs import RateLimiter

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 1.0  # seconds between rewrites; the image's check allows 5 s of silence


class HealthFile:
    """The heartbeat file at ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")

    def clear(self) -> None:
        """Remove the file (the node is not up)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def beat(self, name: str) -> None:
        """Write ``<unix time> <name>`` (a few microseconds: fine on the event loop)."""
        self._tmp.write_text(f"{int(time.time())} {name}\n")
        os.replace(self._tmp, self.path)

    async def run(self, node: Any) -> None:
        """Beat every `HEARTBEAT_INTERVAL` while ``node`` is registered with EPMD (or has no
        registration: a fixed distribution port, a local-only node); until cancelled. The first
        beat comes one interval after the call: the caller has just written one with `beat`."""
        failures = RateLimiter(60.0)
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            registration = node.registration
            if registration is None or registration.creation is not None:
                try:
                    self.beat(str(node.name))
                except OSError as exc:
                    failures.log(log, logging.WARNING, "write",
                                 "cannot write the health file %s: %s (health checks will "
                                 "report this node unhealthy)", self.path, exc)
