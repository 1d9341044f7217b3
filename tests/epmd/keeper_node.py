"""A separate OS process that keeps a name registered (for the takeover and race tests).

Usage: ``python -m tests.epmd.keeper_node NAME PORT EPMD_PORT``. Prints one JSON line per
(re-)registration, ``{"event": "registered"|"changed", "creation": C, "embedded": bool}``, and
exits cleanly when its stdin closes. An embedded EPMD it starts listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import sys

from beamlink.epmd import KeptRegistration, keep_registered


def report(event: str, kept: KeptRegistration, creation: int) -> None:
    print(json.dumps({"event": event, "creation": creation, "embedded": kept.embedded is not None}), flush=True)


async def main(name: str, port: int, epmd_port: int) -> None:
    holder: list[KeptRegistration] = []
    kept = await keep_registered(
        name,
        port,
        epmd_port=epmd_port,
        addresses=["127.0.0.1"],
        on_change=lambda creation: report("changed", holder[0], creation),
    )
    holder.append(kept)
    report("registered", kept, await kept.wait_registered())
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await kept.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
