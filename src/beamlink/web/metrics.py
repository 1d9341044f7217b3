"""The ``/metrics`` HTTP server: prometheus_client's WSGI app on a thread of its own.

Why a thread and not an asyncio server: the exposition (content negotiation, OpenMetrics,
gzip) stays prometheus_client's own, and a slow or hostile scraper can never hold up the event
loop that runs the node. Collectors are written for this: ``NodeCollector.collect`` and the
prometheus_client metrics only read values that are safe to read from another thread (see
``beamlink.node.metrics``). A future live dashboard that pushes events (server-sent events)
belongs in this package too, on an asyncio server that reads loop state on the loop.
"""

from __future__ import annotations

import logging
import socket
import threading
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

from beamlink.node.metrics import NodeCollector
from beamlink.settings import DEFAULT_METRICS_HOST

if TYPE_CHECKING:
    from beamlink.node.node import Node

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics %s: " + format, self.address_string(), *args)


class MetricsServer:
    """Serves a registry at ``http://host:port/metrics`` (any path answers) from a thread.

    ``port=0`` picks a free port (see ``.port``); ``close()`` stops it and frees the port.
    """

    def __init__(
        self, registry: CollectorRegistry = REGISTRY, host: str = DEFAULT_METRICS_HOST, port: int = 0
    ) -> None:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        server_class = type("_Server", (_ThreadingServer,), {"address_family": family})
        self._server: WSGIServer = make_server(
            host, port, make_wsgi_app(registry), server_class, handler_class=_QuietHandler
        )
        self.host = host
        self.port: int = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"beamlink-metrics-{self.port}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def serve_metrics(
    node: Node,
    *,
    host: str = DEFAULT_METRICS_HOST,
    port: int = 0,
    registry: CollectorRegistry | None = None,
) -> MetricsServer:
    """Register a `NodeCollector` for ``node`` in ``registry`` (default: prometheus_client's
    global one, which also holds the process, platform and GC collectors and any metrics the
    app defines) and serve it over HTTP."""
    target = REGISTRY if registry is None else registry
    target.register(NodeCollector(node))
    return MetricsServer(target, host, port)
