"""Stand-in for ``beamlink start`` in the image and stack tests: after ``argv[1]`` seconds it
registers the node name ``cluster_demo`` with an embedded EPMD and keeps the heartbeat file of
``BEAMLINK_HEALTH_FILE`` fresh, as a starting node does (and writes the time it registered to
``/tmp/registered-at``), and leaves on SIGTERM. It lets the tests check the image, the
HEALTHCHECK and the stack file independently of the node runtime. Run inside the image as
``python3 -c SOURCE DELAY``.
"""

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from beamlink.cli.health import HEARTBEAT_INTERVAL, HealthFile
from beamlink.epmd.client import register
from beamlink.epmd.server import ensure_epmd

STAND_IN_PORT = 4370


async def main(delay: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await asyncio.sleep(delay)
    epmd = await ensure_epmd()
    registration = await register("cluster_demo", STAND_IN_PORT)
    Path("/tmp/registered-at").write_text(repr(time.time()))
    health = HealthFile(os.environ["BEAMLINK_HEALTH_FILE"])
    while not stop.is_set():
        health.beat("cluster_demo@standin")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), HEARTBEAT_INTERVAL)
    health.clear()
    await registration.close()
    if epmd is not None:
        await epmd.close()


asyncio.run(main(float(sys.argv[1])))
