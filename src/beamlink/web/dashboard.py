"""The live cluster dashboard: an aiohttp server on the node's event loop, pushing server-sent
events to the page.

Routes (all GET; there is nothing to POST, so the page cannot act on a node):

- ``/``: the page (``static/index.html``), its script and style under ``/static/``;
- ``/events``: ``text/event-stream``; first a ``snapshot`` (nodes, rate history, events), then
  one ``update`` per poll of the `ClusterObserver`;
- ``/state``: the snapshot as JSON (for scripts and tests).

Why aiohttp: it is the established asyncio HTTP server (streaming responses for server-sent
events, graceful shutdown), so the server shares the loop the observing node runs on and reads
its state without threads or locks. prometheus_client's thread server stays for ``/metrics``.

Safe by default: it binds 127.0.0.1; while bound to a loopback address it answers only requests
whose Host header is a loopback name (no DNS rebinding from a web page); every response forbids
inline script and remote loads (Content-Security-Policy), and the page puts node-provided
strings into the DOM as text only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from importlib import resources
from typing import Any

from aiohttp import web

from beamlink.web.observer import ClusterObserver

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE = 15.0
STATIC_FILES = {
    "index.html": "text/html",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
OBSERVER_KEY: web.AppKey[ClusterObserver] = web.AppKey("observer", ClusterObserver)


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _static(name: str) -> bytes:
    return resources.files("beamlink.web").joinpath("static").joinpath(name).read_bytes()


def sse(message: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``message`` as JSON (one ``data:`` line)."""
    return b"data: " + json.dumps(message, separators=(",", ":")).encode() + b"\n\n"


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if sockname and _is_loopback(str(sockname[0])):
        host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
        if not _is_loopback(host):
            return web.Response(status=403, text="this dashboard answers only to localhost\n")
    response: web.StreamResponse = await handler(request)
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
    return response


async def _page(request: web.Request) -> web.Response:
    return web.Response(body=_static("index.html"), content_type="text/html", charset="utf-8")


async def _asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    return web.Response(body=_static(name), content_type=STATIC_FILES[name], charset="utf-8")


async def _state(request: web.Request) -> web.Response:
    return web.json_response(request.app[OBSERVER_KEY].snapshot())


async def _events(request: web.Request) -> web.StreamResponse:
    observer = request.app[OBSERVER_KEY]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "X-Accel-Buffering": "no", **SECURITY_HEADERS})
    await response.prepare(request)
    queue = observer.subscribe()
    try:
        await response.write(sse(observer.snapshot()))
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), KEEPALIVE)
            except asyncio.TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if message is None:
                break
            await response.write(sse(message))
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        observer.unsubscribe(queue)
    return response


async def _no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)


def make_app(observer: ClusterObserver) -> web.Application:
    """The aiohttp application serving ``observer``'s picture."""
    app = web.Application(middlewares=[_guard])
    app[OBSERVER_KEY] = observer
    app.router.add_get("/", _page)
    app.router.add_get("/static/{name}", _asset)
    app.router.add_get("/state", _state)
    app.router.add_get("/events", _events)
    app.router.add_get("/favicon.ico", _no_icon)
    return app


class DashboardServer:
    """The observer plus its HTTP server; ``await DashboardServer.start(...)``, then ``close()``."""

    def __init__(self, observer: ClusterObserver, runner: web.AppRunner, port: int,
                 host: str) -> None:
        self.observer = observer
        self.host = host
        self.port = port
        self._runner = runner

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @classmethod
    async def start(cls, node: Any, seeds: list[str], *, host: str = DEFAULT_HOST,
                    port: int = DEFAULT_PORT) -> DashboardServer:
        """Watch the cluster of ``seeds`` through ``node`` (a hidden node) and serve the page
        on ``host:port`` (0 picks a free port). Raises OSError when the port is taken."""
        observer = ClusterObserver(node, seeds)
        runner = web.AppRunner(make_app(observer), handle_signals=False, access_log=None,
                               shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        bound = port
        for address in runner.addresses:
            bound = int(address[1])
        observer.start()
        return cls(observer, runner, bound, host)

    async def close(self) -> None:
        """Stop watching, end every event stream and stop serving."""
        await self.observer.stop()
        with contextlib.suppress(Exception):
            await self._runner.cleanup()
