"""``beamlink start --metrics-port``: a real node process serving Prometheus metrics, scraped over
HTTP while a second beamlink node and a real ``erl`` node talk to it; ``beamlink config`` shows
the setting; a taken port fails the start."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.support import StartedNode, beamlink, cli_env, started
from tests.support.erlang import free_port, host_runtime, start_peer
from tests.support.wait import eventually_blocking

pytestmark = pytest.mark.timeout(90)

A = "metrics_a@127.0.0.1"
B = "metrics_b@127.0.0.1"
ERL = "metrics_erl@127.0.0.1"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` by (name, sorted labels)."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_start_serves_metrics_that_follow_beamlink_and_erlang_peers(tmp_path: Path) -> None:
    rt = host_runtime()
    port = free_port()
    env = cli_env(tmp_path)
    a = StartedNode(A, env, tmp_path / "a.log", "start", "--name", A,
                    "--metrics-port", str(port), "--metrics-host", "127.0.0.1")
    with started([a]) as nodes:
        a.wait_running()  # first: it runs the embedded EPMD
        b = StartedNode(B, env, tmp_path / "b.log", "start", "--name", B)
        nodes.append(b)
        b.wait_running()
        assert f"metrics at http://127.0.0.1:{port}/metrics" in a.log
        before = scrape(port)
        assert value(before, "beamlink_connected_nodes", visibility="visible") == 0
        assert value(before, "beamlink_epmd_embedded_owner") == 1
        assert value(before, "beamlink_epmd_registered") == 1
        assert value(before, "process_resident_memory_bytes") > 0
        assert any(name == "python_info" for name, _ in before)

        result = beamlink("rpc", B, f'await connect("{A}")', env=env)
        assert result.stdout == "True\n", result.stderr
        erl = start_peer(rt, ERL, env["BEAMLINK_COOKIE"], env={"ERL_EPMD_PORT": env["ERL_EPMD_PORT"]})
        try:
            assert erl.eval(f"net_kernel:connect_node('{A}')") == "true"
            erl.eval(f"[{{net_kernel, '{A}'}} ! {{hello, N}} || N <- lists:seq(1, 40)], ok")
            assert erl.eval(f"rpc:call('{A}', math, sqrt, [16.0])") == "4.0"
            assert "python_exception" in erl.eval(f"rpc:call('{A}', math, sqrt, [-1.0])")
            samples = eventually_blocking(lambda: (s := scrape(port)) and value(
                s, "beamlink_dist_peer_received_frames_total", peer=ERL) >= 40 and s)
            assert value(samples, "beamlink_connected_nodes", visibility="visible") == 2
            assert value(samples, "beamlink_nodeup_total", visibility="visible") == 2
            assert value(samples, "beamlink_connection_attempts_total", direction="in") >= 2
            assert value(samples, "beamlink_messages_delivered_total", source="remote") >= 40
            assert value(samples, "beamlink_rpc_calls_total", kind="call", result="return") == 1
            assert value(samples, "beamlink_rpc_calls_total", kind="call", result="error") == 1
            for peer in (B, ERL):
                assert value(samples, "beamlink_dist_peer_received_bytes_total", peer=peer) > 0
                assert value(samples, "beamlink_dist_peer_sent_bytes_total", peer=peer) > 0
            assert value(samples, "beamlink_dist_received_bytes_total") >= sum(
                value(samples, "beamlink_dist_peer_received_bytes_total", peer=p) for p in (B, ERL))
            assert value(samples, "beamlink_processes") >= 3
            assert value(samples, "beamlink_registered_names") >= 3
        finally:
            erl.stop()
        after = eventually_blocking(lambda: (s := scrape(port)) and value(
            s, "beamlink_connected_nodes", visibility="visible") == 1 and s)
        assert value(after, "beamlink_nodedown_total", reason="closed") >= 1
        assert after[("beamlink_dist_received_bytes_total", ())] >= samples[
            ("beamlink_dist_received_bytes_total", ())]
        assert b.terminate() == 0
        assert a.terminate() == 0
    with socket.socket() as probe:  # the metrics server is gone with the node
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


def test_metrics_port_from_the_environment_and_config(tmp_path: Path) -> None:
    port = free_port()
    env = cli_env(tmp_path, BEAMLINK_METRICS_PORT=str(port), BEAMLINK_METRICS_HOST="127.0.0.1")
    lines = beamlink("config", "--name", A, env=env).stdout.splitlines()
    assert f"metrics_port = {port}  (env BEAMLINK_METRICS_PORT)" in lines
    assert "metrics_host = 127.0.0.1  (env BEAMLINK_METRICS_HOST)" in lines
    lines = beamlink("config", "--name", A, env=cli_env(tmp_path)).stdout.splitlines()
    assert not any(line.startswith("metrics_") for line in lines)
    a = StartedNode(A, env, tmp_path / "a.log", "start", "--name", A)
    with started([a]):
        a.wait_running()
        assert value(scrape(port), "beamlink_connected_nodes", visibility="visible") == 0
        # The port is taken now: a second node cannot serve metrics there and does not start.
        taken = StartedNode(B, env, tmp_path / "b.log", "start", "--name", B)
        a_nodes = [taken]
        with started(a_nodes):
            assert taken.wait_exit() == 1
        assert f"cannot start: metrics server on 127.0.0.1:{port}" in taken.log
        assert f"node {B} stopped" in taken.log
        assert a.terminate() == 0


def test_cluster_metrics_count_the_rounds_before_the_server_started(tmp_path: Path) -> None:
    """The metrics server starts after the topologies' first round (a new replica joins its peers
    first); that round is counted all the same."""
    port = free_port()
    config = tmp_path / "cluster.toml"
    config.write_text(
        f'[topologies.e]\nstrategy = "epmd"\nhosts = ["{A}", "{B}"]\npolling_interval = 600000\n'
    )
    env = cli_env(tmp_path)
    a = StartedNode(A, env, tmp_path / "a.log", "start", "--name", A, "--config", str(config),
                    "--metrics-port", str(port), "--metrics-host", "127.0.0.1")
    with started([a]):
        a.wait_running()
        samples = scrape(port)
        assert value(samples, "beamlink_cluster_polls_total", topology="e", result="ok") == 1
        assert value(samples, "beamlink_cluster_connects_total", topology="e", result="error") == 1
        assert a.terminate() == 0


def test_metrics_bind_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    """Issue 12, item 7: a node started with only a metrics port serves them on 127.0.0.1,
    not on every interface; ``--metrics-host 0.0.0.0`` (what the deploy files set) opts in."""
    port = free_port()
    env = cli_env(tmp_path)
    lines = beamlink("config", "--name", A, "--metrics-port", str(port), env=env).stdout.splitlines()
    assert "metrics_host = 127.0.0.1  (default)" in lines
    a = StartedNode(A, env, tmp_path / "a.log", "start", "--name", A, "--metrics-port", str(port))
    with started([a]):
        a.wait_running()
        assert f"metrics at http://127.0.0.1:{port}/metrics" in a.log
        assert value(scrape(port), "beamlink_connected_nodes", visibility="visible") == 0
        with socket.socket() as probe:  # every other address of the port is still free
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.2", port))
    deploy = Path(__file__).parents[2] / "deploy"
    for path in ("docker/Dockerfile", "kubernetes/deployment.yaml", "swarm/stack.yml"):
        assert "BEAMLINK_METRICS_HOST" in (deploy / path).read_text(), path
