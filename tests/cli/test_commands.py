"""The operator commands against live ``beamlink start`` nodes: ping, rpc, nodes, pid, eval,
version, config, stop; control nodes leave no trace in the target's node list."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from beamlink import __version__
from tests.cli.support import StartedNode, argv, beamlink, cli_env, started
from tests.support.erlang import epmd_running, host_runtime, start_peer
from tests.support.wait import eventually_blocking

pytestmark = pytest.mark.timeout(120)

A = "cmd_a@127.0.0.1"
B = "cmd_b@127.0.0.1"
C = "cmd_c@127.0.0.1"


def topology(path: Path, *names: str, interval: int = 300) -> Path:
    hosts = ", ".join(f'"{n}"' for n in names)
    path.write_text(f'[topologies.t]\nstrategy = "epmd"\nhosts = [{hosts}]\n'
                    f"polling_interval = {interval}\n")
    return path


class Pair:
    def __init__(self, env: dict[str, str], a: StartedNode, b: StartedNode) -> None:
        self.env, self.a, self.b = env, a, b


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Two nodes started by the CLI that find each other through an epmd topology."""
    tmp = tmp_path_factory.mktemp("pair")
    env = cli_env(tmp)
    config = topology(tmp / "cluster.toml", A, B)
    a = StartedNode(A, env, tmp / "a.log", "start", "--name", A, "--config", str(config))
    with started([a]):
        a.wait_running()
        b = StartedNode(B, env, tmp / "b.log", "start", "--name", B, "--config", str(config))
        with started([b]):
            b.wait_running()
            a.wait_log(rf"nodeup {re.escape(B)}")
            yield Pair(env, a, b)
            assert b.terminate() == 0
        assert a.terminate() == 0


def test_ping_pong_and_pang(pair: Pair) -> None:
    ok = beamlink("ping", A, env=pair.env)
    assert (ok.returncode, ok.stdout) == (0, "pong\n"), ok.stderr
    absent = beamlink("ping", "nobody@127.0.0.1", "--timeout", "3", env=pair.env)
    assert (absent.returncode, absent.stdout) == (1, "pang\n")
    wrong = beamlink("ping", A, "--cookie", "not-the-cookie", "--timeout", "3", env=pair.env)
    assert (wrong.returncode, wrong.stdout) == (1, "pang\n")


def test_rpc_returns_the_node_list_of_a_node_with_peers(pair: Pair) -> None:
    result = beamlink("rpc", A, "sorted(str(n) for n in nodes())", env=pair.env)
    assert (result.returncode, result.stdout) == (0, f"[{B!r}]\n"), result.stderr
    result = beamlink("rpc", B, "[str(n) for n in nodes()]", env=pair.env)
    assert result.stdout == f"[{A!r}]\n"


def test_rpc_runs_on_the_target_with_await(pair: Pair) -> None:
    result = beamlink("rpc", A, "import os; print(os.getpid(), node.name)", env=pair.env)
    assert result.stdout == f"{pair.a.proc.pid} {A}\n"
    result = beamlink("rpc", A, f"await asyncio.sleep(0.05); await ping({B!r})", env=pair.env)
    assert (result.returncode, result.stdout) == (0, "True\n"), result.stderr


def test_rpc_error_exits_non_zero_with_the_traceback(pair: Pair) -> None:
    result = beamlink("rpc", A, "{}['missing']", env=pair.env)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "KeyError: 'missing'" in result.stderr
    assert "agent.py" not in result.stderr
    syntax = beamlink("rpc", A, "1 +", env=pair.env)
    assert syntax.returncode == 1 and "SyntaxError" in syntax.stderr
    unreachable = beamlink("rpc", "nobody@127.0.0.1", "1", "--timeout", "3", env=pair.env)
    assert unreachable.returncode == 1 and "cannot connect to nobody@127.0.0.1" in unreachable.stderr


def test_nodes_and_pid(pair: Pair) -> None:
    result = beamlink("nodes", A, env=pair.env)
    assert (result.returncode, result.stdout) == (0, f"{B}\n"), result.stderr
    result = beamlink("pid", B, env=pair.env)
    assert (result.returncode, result.stdout) == (0, f"{pair.b.proc.pid}\n"), result.stderr


def test_control_nodes_leave_no_trace(pair: Pair) -> None:
    for _ in range(3):
        assert beamlink("nodes", A, env=pair.env).returncode == 0
    hidden = beamlink("rpc", A, "sorted(str(n) for n in nodes(hidden=True))", env=pair.env)
    names = eval(hidden.stdout)  # a list literal of str printed by the target
    assert B in names
    assert len([n for n in names if n.startswith("beamlink_ctl_")]) == 1  # this rpc's own
    for node in (pair.a, pair.b):
        assert not re.search(r"nodeup beamlink_ctl_\S+ \(visible", node.log)


def test_eval_runs_locally() -> None:
    result = beamlink("eval", "import os; print(os.getpid() != 0, beamlink.__version__)",
                      env=cli_env(Path("/nonexistent")))
    assert (result.returncode, result.stdout) == (0, f"True {__version__}\n"), result.stderr
    result = beamlink("eval", "1/0", env=cli_env(Path("/nonexistent")))
    assert result.returncode == 1 and "ZeroDivisionError" in result.stderr


def test_version() -> None:
    result = beamlink("version", env=cli_env(Path("/nonexistent")))
    assert (result.returncode, result.stdout) == (0, f"beamlink {__version__}\n")


def test_cookie_on_the_command_line_is_warned_about(tmp_path: Path) -> None:
    """Issue 12, item 7: ``--cookie`` is visible to every local user in ``ps``; the warning
    says where to put the cookie instead. The environment and the file give no warning."""
    env = cli_env(tmp_path)
    result = beamlink("config", "--name", A, "--cookie", "argv-cookie", env=env)
    assert result.returncode == 0, result.stderr
    assert "--cookie shows the cookie to every local user" in result.stderr
    assert "BEAMLINK_COOKIE" in result.stderr and "~/.erlang.cookie" in result.stderr
    assert "argv-cookie" not in result.stderr + result.stdout
    pinged = beamlink("ping", "nobody@127.0.0.1", "--cookie", "argv-cookie", "--timeout", "1",
                      env=env)
    assert "--cookie shows the cookie" in pinged.stderr
    quiet = beamlink("config", "--name", A, env=cli_env(tmp_path, BEAMLINK_COOKIE="env-cookie"))
    assert "--cookie" not in quiet.stderr


def test_config_shows_values_and_their_sources(tmp_path: Path) -> None:
    config = topology(tmp_path / "c.toml", A, B)
    env = cli_env(tmp_path, BEAMLINK_COOKIE="", RELEASE_NODE="rel@127.0.0.1",
                  RELEASE_COOKIE="secret-cookie",
                  RELEASE_DISTRIBUTION="name", BEAMLINK_CONFIG=str(config))
    result = beamlink("config", "--net-ticktime", "20", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "name = rel@127.0.0.1  (env RELEASE_NODE)" in lines
    assert "cookie = ********  (env RELEASE_COOKIE)" in lines
    assert "distribution = name  (env RELEASE_DISTRIBUTION)" in lines
    assert "net_ticktime = 20.0  (--net-ticktime)" in lines
    assert f"epmd_port = {env['ERL_EPMD_PORT']}  (env ERL_EPMD_PORT)" in lines
    assert f"topology t = epmd  (file {config})" in lines
    assert "secret-cookie" not in result.stdout
    bad = beamlink("config", env=dict(env, RELEASE_DISTRIBUTION="longnames"))
    assert bad.returncode == 2 and "RELEASE_DISTRIBUTION" in bad.stderr


def test_stop_exits_zero_and_leaves_every_peer(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    config = topology(tmp_path / "c.toml", A, B, C)
    nodes = [StartedNode(n, env, tmp_path / f"{n[:5]}.log", "start", "--name", n,
                         "--config", str(config)) for n in (A, B, C)]
    with started(nodes):
        for node in nodes:
            node.wait_running()

        def peers_of(name: str) -> list[str]:
            return beamlink("nodes", name, env=env).stdout.split()

        for name in (A, B, C):
            eventually_blocking(lambda: len(peers_of(name)) == 2)  # noqa: B023 (called at once)
        result = beamlink("stop", B, env=env)
        assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
        assert nodes[1].wait_exit() == 0
        for peer in (nodes[0], nodes[2]):
            assert peers_of(peer.name) == [n for n in (A, C) if n != peer.name]
            peer.wait_log(rf"nodedown {re.escape(B)}")
        assert beamlink("ping", B, "--timeout", "3", env=env).stdout == "pang\n"
        for node in (nodes[0], nodes[2]):
            assert node.terminate() == 0


def test_json_logs_one_line_per_event(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    ghost = "ghost@127.0.0.1"
    config = topology(tmp_path / "c.toml", A, B, ghost, interval=100)
    a = StartedNode(A, env, tmp_path / "a.log", "--log-format", "json", "start", "--name", A,
                    "--config", str(config))
    with started([a]):
        a.wait_running()
        b = StartedNode(B, env, tmp_path / "b.log", "start", "--name", B)
        with started([b]):
            b.wait_running()
            a.wait_log(rf"nodeup {re.escape(B)}")
            a.wait_log("running")
            eventually_blocking(lambda: a.log.count("\n") >= 6, timeout=3)
            assert b.terminate() == 0
            a.wait_log(rf"nodedown {re.escape(B)}")
        assert a.terminate() == 0
    records = [json.loads(line) for line in a.log.splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    messages = [r["message"] for r in records]
    about_b = [m for m in messages if B in m and ("nodeup" in m or "connected" in m)]
    assert len(about_b) == 1, about_b
    assert len([m for m in messages if m.startswith(f"nodedown {B}")]) == 1
    about_ghost = [r for r in records if ghost in r["message"]]
    assert len(about_ghost) == 1, about_ghost  # retried every 0.1 s, logged once
    assert about_ghost[0]["level"] == "warning"
    assert not any(r["level"] == "error" for r in records)


def test_control_commands_honour_release_cookie(pair: Pair) -> None:
    env = {k: v for k, v in pair.env.items() if k != "BEAMLINK_COOKIE"}
    env["RELEASE_COOKIE"] = pair.env["BEAMLINK_COOKIE"]
    assert beamlink("ping", A, env=env).stdout == "pong\n"



async def test_stop_a_node_not_hosted_by_start(tmp_path: Path) -> None:
    """A node started by a user's own script: ``beamlink stop`` stops the node (its embedded
    EPMD, which it runs here, goes with it)."""
    from beamlink.node import Node

    env = cli_env(tmp_path)
    name = "embedded@127.0.0.1"
    port = int(env["ERL_EPMD_PORT"])
    node = await Node.start(name, env["BEAMLINK_COOKIE"], epmd_port=port)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv("stop", name), env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert (proc.returncode, out) == (0, b"ok\n"), err
        for _ in range(100):
            if not await asyncio.to_thread(epmd_running, port):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the node did not stop")
        assert not await node.connect("cmd_a@127.0.0.1")
    finally:
        await node.stop()


def test_rpc_and_remote_on_an_erlang_node_say_what_to_use_instead(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    erl = start_peer(host_runtime(), "cmd_erl@127.0.0.1", env["BEAMLINK_COOKIE"],
                     env={"ERL_EPMD_PORT": env["ERL_EPMD_PORT"]})
    try:
        for args in (("rpc", erl.name, "1 + 1"), ("remote", erl.name)):
            result = beamlink(*args, env=env)
            assert result.returncode == 1, result
            assert "is not a beamlink node" in result.stderr, result.stderr
            assert f"-remsh {erl.name}" in result.stderr
            assert "undef" not in result.stderr
        assert beamlink("nodes", erl.name, env=env).returncode == 0
    finally:
        erl.stop()


def test_a_node_not_up_yet_gets_operator_advice(tmp_path: Path) -> None:
    result = beamlink("nodes", "starting@127.0.0.1", "--timeout", "2", env=cli_env(tmp_path))
    assert result.returncode == 1
    assert "still starting: try again" in result.stderr
    assert "ERL_EPMD_PORT" in result.stderr
    assert "ensure_epmd" not in result.stderr
