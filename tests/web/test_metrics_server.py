"""``beamlink.web.metrics``: a node's metrics over real HTTP, a junk client, the port freed."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from beamlink.node import Node
from beamlink.web.metrics import serve_metrics
from tests.support.erlang import free_port

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def node_a() -> AsyncIterator[Node]:
    async with Node.start(
        "wa@127.0.0.1", "webtest", epmd_port=free_port(), listen_host="127.0.0.1"
    ) as node:
        yield node


async def test_serve_metrics_over_http(node_a: Node) -> None:
    registry = CollectorRegistry()
    server = serve_metrics(node_a, host="127.0.0.1", port=0, registry=registry)
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        async with httpx.AsyncClient(timeout=10) as client:
            # A client sending junk does not take the server down.
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(bytes(random.Random(3).randrange(256) for _ in range(300)) + b"\r\n\r\n")
            await writer.drain()
            await asyncio.wait_for(reader.read(), 10)
            writer.close()
            response = await client.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        assert families["beamlink_processes"].samples[0].value >= 3
        assert families["beamlink_connected_nodes"].type == "gauge"
        assert families["beamlink_nodeup"].type == "counter"
    finally:
        server.close()
    with socket.socket() as probe:  # nothing listens there any more (TIME_WAIT aside)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))
