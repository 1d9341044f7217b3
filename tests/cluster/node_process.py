"""A real beamlink node with a ``dns_poll`` topology, run as its own OS process.

``python -m tests.cluster.node_process NAME DIST_PORT NAMESERVER QUERY POLLING_MS`` starts the
node in fixed-port mode, prints ``NODES a,b,...`` (its visible node list) at start and whenever the
list changes and ``POLL n`` after each discovery round that found ``n`` other nodes, leaves the
cluster and exits 0 on SIGTERM. ``ClusterProcess`` drives one from a
test or the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time

from beamlink.cluster.events import ClusterEvent, PollOk
from beamlink.cluster.schema import DnsPollConfig
from beamlink.cluster.topology import Cluster
from beamlink.node import Node
from tests.support.child import ChildProcess

COOKIE = "beamlink-cluster-test"


async def _main(name: str, dist_port: int, nameserver: str, query: str, polling_ms: int) -> None:
    node = await Node.start(name, COOKIE, dist_port=dist_port)
    config = DnsPollConfig(
        query=query,
        node_basename=name.partition("@")[0],
        nameservers=(nameserver,),
        polling_interval=polling_ms,
        connect_timeout=2000,
    )
    cluster = Cluster(node, {"dns": config}, log_events=False)

    def report(event: ClusterEvent) -> None:
        if isinstance(event, PollOk):
            print(f"POLL {event.discovered}", flush=True)

    cluster.subscribe(report)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await cluster.start()
    last: list[str] | None = None
    while not stop.is_set():
        current = sorted(str(n) for n in node.nodes())
        if current != last:
            print("NODES " + ",".join(current), flush=True)
            last = current
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.02)
    await cluster.stop(leave=True)
    await node.stop()


class ClusterProcess(ChildProcess):
    """One node process: ``nodes`` is its latest node list (``history`` all of them), ``polls``
    the node count of each discovery round, ``up_at`` when it first reported."""

    def __init__(self, name: str, dist_port: int, nameserver: str, query: str, polling_ms: int) -> None:
        super().__init__()
        self.name = name
        self.argv = [
            sys.executable, "-m", "tests.cluster.node_process",
            name, str(dist_port), nameserver, query, str(polling_ms),
        ]
        self.nodes: frozenset[str] | None = None
        self.history: list[frozenset[str]] = []
        self.polls: list[int] = []
        self.up_at = 0.0
        self.changed_at = 0.0

    async def start(self, cwd: str) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=cwd
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode().strip()
            if line.startswith("NODES"):
                names = line[len("NODES") :].strip()
                self.nodes = frozenset(names.split(",")) if names else frozenset()
                self.history.append(self.nodes)
                self.changed_at = time.monotonic()
                self.up_at = self.up_at or self.changed_at
            elif line.startswith("POLL "):
                self.polls.append(int(line[len("POLL ") :]))


if __name__ == "__main__":
    node_name, port, server, service, interval = sys.argv[1:6]
    asyncio.run(_main(node_name, int(port), server, service, int(interval)))
