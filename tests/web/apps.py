"""Apps hosted by ``beamlink start --app tests.web.apps:...`` in the dashboard tests."""

from __future__ import annotations

from typing import Any

#: A registered name that is markup: the page must show it as text and run nothing.
HOSTILE_NAME = "<img src=x onerror=window.__pwned=1>"


async def sink(node: Any) -> None:
    """Register ``sink`` (drains every message sent to it) and a process under `HOSTILE_NAME`."""
    with node.new_process(name="sink") as proc, node.new_process(name=HOSTILE_NAME):
        print("sink ready", flush=True)
        while True:
            await proc.receive()
