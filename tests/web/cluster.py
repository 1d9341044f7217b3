"""A live cluster for the dashboard tests: two ``beamlink start`` nodes, one real ``erl`` node
and a ``beamlink dashboard`` process, all real processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.cli.support import StartedNode, cli_env, started
from tests.support.erlang import ErlPeer, free_port, runtime, start_peer
from tests.support.wait import eventually_blocking
from tests.web.apps import HOSTILE_NAME

A = "dash_a@127.0.0.1"
B = "dash_b@127.0.0.1"
C = "dash_c@127.0.0.1"
ERL = "dash_erl@127.0.0.1"
GHOST = "dash_ghost@127.0.0.1"
#: A topology name is a node-provided string too (it shows in the event log).
HOSTILE_TOPOLOGY = "<img src=x onerror=window.__pwned=2>"


@dataclass
class LiveCluster:
    tmp: Path
    env: dict[str, str]
    nodes: list[StartedNode]
    erl: ErlPeer
    dashboard: StartedNode
    port: int
    extra: list[StartedNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def state(self) -> dict[str, object]:
        response = httpx.get(self.url + "state", timeout=10)
        response.raise_for_status()
        result: dict[str, object] = response.json()
        return result

    def start_node(self, name: str, *args: str) -> StartedNode:
        node = StartedNode(name, self.env, self.tmp / f"{name.split('@')[0]}.log", "start",
                           "--name", name, *args)
        self.nodes.append(node)
        node.wait_running()
        return node


@contextlib.contextmanager
def live_cluster(tmp: Path) -> Iterator[LiveCluster]:
    """A (sink app, hostile registered name), B (a topology over A, B, the erl node and a
    missing node, so discovery errors flow), the erl node (hostile registered name too) and the
    dashboard of A's cluster on a free port."""
    rt = runtime("otp25")
    env = cli_env(tmp)
    config = tmp / "cluster.toml"
    config.write_text(
        f'[topologies."{HOSTILE_TOPOLOGY}"]\nstrategy = "epmd"\n'
        f'hosts = ["{A}", "{B}", "{ERL}", "{GHOST}"]\n'
    )
    with started([]) as nodes:
        a = StartedNode(A, env, tmp / "a.log", "start", "--name", A, "--app", "tests.web.apps:sink")
        nodes.append(a)
        a.wait_log("sink ready")  # first: it runs the embedded EPMD
        erl = start_peer(rt, ERL, env["BEAMLINK_COOKIE"],
                         env={"ERL_EPMD_PORT": env["ERL_EPMD_PORT"]})
        try:
            erl.eval(f"register('{HOSTILE_NAME}', spawn(fun() -> receive stop -> ok end end))")
            b = StartedNode(B, env, tmp / "b.log", "start", "--name", B, "--config", str(config))
            nodes.append(b)
            b.wait_running()
            eventually_blocking(lambda: erl.eval("lists:sort(nodes())") == f"['{A}','{B}']",
                                timeout=20, what="the erl node joined A and B")
            port = free_port()
            dashboard = StartedNode("dashboard", env, tmp / "dashboard.log", "dashboard", A,
                                    "--port", str(port))
            nodes.append(dashboard)
            dashboard.wait_log(re.escape(f"at http://127.0.0.1:{port}/"))
            yield LiveCluster(tmp, env, nodes, erl, dashboard, port)
        finally:
            erl.stop()
