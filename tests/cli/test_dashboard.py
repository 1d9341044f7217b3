"""``beamlink start --dashboard-port`` serves the dashboard of the node's cluster from the node
process; ``beamlink dashboard`` fails with a message when the target is not there."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cli.support import StartedNode, beamlink, cli_env, started
from tests.support.erlang import free_port
from tests.support.wait import eventually_blocking

pytestmark = pytest.mark.timeout(90)

A = "dstart_a@127.0.0.1"


def test_start_serves_the_dashboard(tmp_path: Path) -> None:
    port = free_port()
    env = cli_env(tmp_path)
    node = StartedNode(A, env, tmp_path / "a.log", "start", "--name", A,
                       "--dashboard-port", str(port))
    with started([node]):
        node.wait_running()
        assert f"dashboard at http://127.0.0.1:{port}/" in node.log

        def seen() -> dict[str, object] | None:
            state = httpx.get(f"http://127.0.0.1:{port}/state", timeout=10).json()
            view: dict[str, object] | None = state["nodes"].get(A)
            return view if view and view["state"] == "up" else None

        view = eventually_blocking(seen, timeout=15, what="the node on its own dashboard")
        assert view["kind"] == "python"
        # The observing node is hidden: the node's visible list stays empty.
        assert beamlink("nodes", A, env=env).stdout == ""
        assert node.terminate() == 0


def test_dashboard_of_a_missing_node_says_so(tmp_path: Path) -> None:
    result = beamlink("dashboard", "nobody@127.0.0.1", "--timeout", "3", "--port", "0",
                      env=cli_env(tmp_path))
    assert result.returncode == 1
    assert "cannot connect to nobody@127.0.0.1" in result.stderr
