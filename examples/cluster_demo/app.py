"""The example app of the Docker image: every replica runs one ``cluster_demo`` GenServer.

Started by ``beamlink start --app cluster_demo.app:main``. The server is registered as
``cluster_demo`` and answers, from Erlang/Elixir or Python:

* ``info`` -> ``{NodeName, [OtherNode, ...]}`` (this node and its visible node list);
* ``node`` -> ``NodeName``;
* ``nodes`` -> ``[OtherNode, ...]``.

From an Elixir node in the same cluster::

    GenServer.call({:cluster_demo, :"cluster_demo@10.0.1.5"}, :info)

Anything else is answered with ``{error, {unknown_request, Request}}``; the server never crashes on
a bad request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from beamlink import Atom, From, GenServer

SERVER_NAME = "cluster_demo"


class ClusterInfo(GenServer):
    """Answers with this node's name and its node list."""

    name = SERVER_NAME

    node: Any

    def init(self, node: Any) -> None:
        self.node = node

    def handle_call(self, request: Any, from_: From) -> Any:
        if request == Atom("info"):
            return (self.node.name, self.node.nodes())
        if request == Atom("node"):
            return self.node.name
        if request == Atom("nodes"):
            return self.node.nodes()
        return (Atom("error"), (Atom("unknown_request"), request))


async def main(node: Any) -> None:
    """App entry point: start the server, then serve until the node stops the app."""
    await ClusterInfo.start(node, node)
    await asyncio.Event().wait()
