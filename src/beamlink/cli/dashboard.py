"""``beamlink dashboard NODE``: serve the live cluster dashboard from a hidden control node.

The control node connects to NODE (as ``remote`` does) and the dashboard's observer dials, hidden,
every visible node the watched nodes report; the page is served until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal

from beamlink.cli.control import ControlError, control_node
from beamlink.connection import TlsConfig


async def run_dashboard(target: str, cookie: str | None, timeout: float, host: str,
                        port: int, tls: TlsConfig | None = None) -> None:
    """Serve the dashboard of ``target``'s cluster on ``host:port`` until told to stop."""
    from beamlink.web.dashboard import DashboardServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with control_node(target, cookie, timeout, tls) as node:
            try:
                server = await DashboardServer.start(node, [target], host=host, port=port)
            except OSError as exc:
                raise ControlError(f"cannot serve the dashboard on {host}:{port}: {exc} "
                                   "(pick another --port, or 0 for a free one)") from None
            print(f"dashboard of {target}'s cluster at {server.url} (Ctrl-C stops)", flush=True)
            try:
                await stop.wait()
            finally:
                await server.close()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
