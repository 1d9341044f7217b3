"""A beamlink node as its own OS process, for the partition and churn tests.

``python -m tests.robustness.node_process SPEC_JSON`` starts a node in fixed-port mode (no EPMD)
with one topology, both given in the JSON spec (``name``, ``cookie``, ``dist_port``,
``net_ticktime``, ``handshake_timeout``, ``topology``: a libcluster-style table). Logs go to
stderr. Stdout carries one line per event:

- ``READY`` once the node and its cluster run;
- ``NODES a,b`` at start and whenever the visible node list changes;
- answers to the commands read from stdin, one per line:
  ``stream PEER`` sends ``{seq, Me, N}`` (N = 1, 2, ...) to the process ``rx`` on PEER every 2 ms;
  ``stop`` ends the streams and answers ``SENT PEER N`` for each;
  ``report`` answers ``RECV PEER COUNT ANOMALIES`` for each sender heard from (an anomaly is a
  number that is not the previous one plus 1: a loss, duplicate or reordering);
  ``fds`` answers ``FDS N TASKS M`` (open file descriptors, asyncio tasks);
  ``quit`` (or SIGTERM) leaves the cluster, stops the node and exits 0.

`NodeProcess` runs one from a test (optionally inside a network namespace) and follows its lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from beamlink.cluster.schema import parse_topology
from beamlink.cluster.topology import Cluster
from beamlink.etf import Atom
from beamlink.logs import configure
from beamlink.node import Node
from beamlink.node.runtime import Process
from tests.support.child import ChildProcess

SEQ = Atom("seq")


@dataclass
class Heard:
    count: int = 0
    last: int = 0
    anomalies: int = 0


async def _rx(proc: Process, heard: dict[str, Heard]) -> None:
    while True:
        message = await proc.receive()
        if type(message) is tuple and len(message) == 3 and message[0] == SEQ:
            sender = heard.setdefault(str(message[1]), Heard())
            sender.count += 1
            if message[2] != sender.last + 1:
                sender.anomalies += 1
            sender.last = message[2]


async def _stream(node: Node, peer: str, sent: dict[str, int], stop: asyncio.Event) -> None:
    target = ("rx", peer)
    while not stop.is_set():
        sent[peer] = sent.get(peer, 0) + 1
        node.send(target, (SEQ, node.name, sent[peer]))
        await asyncio.sleep(0.002)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _main(spec: dict[str, object]) -> None:
    node = await Node.start(
        str(spec["name"]),
        str(spec["cookie"]),
        dist_port=int(str(spec["dist_port"])),
        net_ticktime=float(str(spec["net_ticktime"])),
        handshake_timeout=float(str(spec.get("handshake_timeout", 3.0))),
    )
    topology = spec["topology"]
    assert isinstance(topology, dict)
    cluster = Cluster(node, {"t": parse_topology("t", topology)})
    heard: dict[str, Heard] = {}
    sent: dict[str, int] = {}
    streams: list[asyncio.Task[None]] = []
    stop_streams = asyncio.Event()
    node.spawn(_rx, heard, name="rx")
    quit_ = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, quit_.set)
    await cluster.start()
    say("READY")

    async def commands() -> None:
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().split():
            if line[0] == "stream":
                streams.append(asyncio.create_task(_stream(node, line[1], sent, stop_streams)))
            elif line[0] == "stop":
                stop_streams.set()
                await asyncio.gather(*streams)
                for peer, count in sent.items():
                    say(f"SENT {peer} {count}")
                say("SENT-END")
            elif line[0] == "report":
                for peer, got in heard.items():
                    say(f"RECV {peer} {got.count} {got.anomalies}")
                say("RECV-END")
            elif line[0] == "fds":
                say(f"FDS {len(os.listdir('/proc/self/fd'))} TASKS {len(asyncio.all_tasks())}")
            elif line[0] == "quit":
                break
        quit_.set()

    reading = asyncio.create_task(commands())
    last: list[str] | None = None
    while not quit_.is_set():
        current = sorted(str(n) for n in node.nodes())
        if current != last:
            say("NODES " + ",".join(current))
            last = current
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(quit_.wait(), 0.02)
    reading.cancel()
    stop_streams.set()
    await asyncio.gather(reading, *streams, return_exceptions=True)
    await cluster.stop(leave=True)
    await node.stop()


ROOT = str(Path(__file__).resolve().parents[2])


class NodeProcess(ChildProcess):
    """One node process: ``nodes`` is its latest visible node list (None before the first)."""

    def __init__(self, spec: dict[str, object], log_path: Path, prefix: Sequence[str] = ()) -> None:
        super().__init__()
        self.name = str(spec["name"])
        self.argv = [*prefix, sys.executable, "-m", "tests.robustness.node_process", json.dumps(spec)]
        self.log_path = log_path
        self.nodes: frozenset[str] | None = None
        self.history: list[tuple[float, frozenset[str]]] = []
        self._answers: asyncio.Queue[str] = asyncio.Queue()
        self._ready = asyncio.Event()

    async def start(self, timeout: float = 20.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=log, cwd=ROOT,
            )
        self._reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode().strip()
            if line == "READY":
                self._ready.set()
            elif line.startswith("NODES"):
                names = line[len("NODES"):].strip()
                self.nodes = frozenset(names.split(",")) if names else frozenset()
                self.history.append((time.monotonic(), self.nodes))
            else:
                await self._answers.put(line)

    async def tell(self, command: str) -> None:
        """Send ``command`` (one line) to the node."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()

    async def ask(self, command: str, end: str | None = None, timeout: float = 10.0) -> list[str]:
        """Send ``command``; collect answer lines up to ``end`` (or the first one)."""
        await self.tell(command)
        lines: list[str] = []
        while True:
            line = await asyncio.wait_for(self._answers.get(), timeout)
            if end is None:
                return [line]
            if line == end:
                return lines
            lines.append(line)

    async def sent(self) -> dict[str, int]:
        lines = await self.ask("stop", "SENT-END")
        return {peer: int(n) for _, peer, n in (line.split() for line in lines)}

    async def received(self) -> dict[str, tuple[int, int]]:
        lines = await self.ask("report", "RECV-END")
        return {peer: (int(n), int(bad)) for _, peer, n, bad in (line.split() for line in lines)}

    async def fds_and_tasks(self) -> tuple[int, int]:
        _, fds, _, tasks = (await self.ask("fds"))[0].split()
        return int(fds), int(tasks)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def error_lines(self) -> list[str]:
        return [line for line in self.log().splitlines() if " ERROR " in line]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


if __name__ == "__main__":
    configure("info")
    asyncio.run(_main(json.loads(sys.argv[1])))
