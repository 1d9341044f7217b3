"""``--name app@auto`` inside a network namespace with two addresses picks the one that reaches the
peers, not the one of the default route.

Two namespaces made by the test: ``peer`` (10.231.1.1) and ``app``, which has 10.231.1.2 on the
link to the peer and 10.232.1.2 on a second link (a veth pair inside ``app``) that carries its
default route. Everything runs
inside the namespaces (each has its own loopback, so its own EPMD on 4369); they are deleted after.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import StartedNode, beamlink, cli_env, started
from tests.support.require import missing, require_tool
from tests.support.wait import eventually_blocking

pytestmark = pytest.mark.timeout(90)

PEER_ADDRESS = "10.231.1.1"
APP_ADDRESS = "10.231.1.2"
OTHER_ADDRESS = "10.232.1.2"


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, f"ip {' '.join(args)}: {done.stderr}"


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    require_tool("ip")
    if os.geteuid() != 0:
        missing("network namespaces need root")
    tag = f"{os.getpid() % 100000}"
    app, peer = f"blcli_app{tag}", f"blcli_peer{tag}"
    try:
        ip("netns", "add", app)
        ip("netns", "add", peer)
        ip("link", "add", f"blca{tag}", "netns", app, "type", "veth",
           "peer", "name", f"blcp{tag}", "netns", peer)
        ip("link", "add", f"blco{tag}", "netns", app, "type", "veth",
           "peer", "name", f"blcx{tag}", "netns", app)
        ip("-n", app, "addr", "add", f"{APP_ADDRESS}/24", "dev", f"blca{tag}")
        ip("-n", app, "addr", "add", f"{OTHER_ADDRESS}/24", "dev", f"blco{tag}")
        ip("-n", peer, "addr", "add", f"{PEER_ADDRESS}/24", "dev", f"blcp{tag}")
        for ns, links in ((app, (f"blca{tag}", f"blco{tag}", f"blcx{tag}", "lo")), (peer, (f"blcp{tag}", "lo"))):
            for link in links:
                ip("-n", ns, "link", "set", link, "up")
        ip("-n", app, "route", "add", "default", "via", "10.232.1.1", "dev", f"blco{tag}")
        yield app, peer
    finally:
        for ns in (app, peer):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)


def test_auto_name_picks_the_address_that_reaches_the_peers(
    namespaces: tuple[str, str], tmp_path: Path
) -> None:
    app_ns, peer_ns = namespaces
    env = cli_env(tmp_path, ERL_EPMD_PORT="4369")
    peer_name = f"peer@{PEER_ADDRESS}"
    in_app, in_peer = ("ip", "netns", "exec", app_ns), ("ip", "netns", "exec", peer_ns)
    config = tmp_path / "cluster.toml"
    config.write_text(f'[topologies.t]\nstrategy = "epmd"\nhosts = ["{peer_name}"]\n'
                      "polling_interval = 300\n")
    peer = StartedNode(peer_name, env, tmp_path / "peer.log", "start", "--name", peer_name,
                       prefix=in_peer)
    with started([peer]) as running:
        peer.wait_running()
        app = StartedNode("app@auto", dict(env, BEAMLINK_NODE="app@auto"), tmp_path / "app.log",
                          "start", "--config", str(config), prefix=in_app)
        running.append(app)
        app.wait_running()
        assert re.search(rf"node app@{re.escape(APP_ADDRESS)} running", app.log), app.log
        eventually_blocking(lambda: beamlink("nodes", peer_name, env=env, prefix=in_peer).stdout
                   == f"app@{APP_ADDRESS}\n")
        assert OTHER_ADDRESS not in app.log
        assert app.terminate() == 0
        eventually_blocking(lambda: beamlink("nodes", peer_name, env=env, prefix=in_peer).stdout == "")
        assert peer.terminate() == 0
