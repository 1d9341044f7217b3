"""``beamlink start``: hosting an app (entry point or start/stop hooks), SIGTERM, crashes, mix
release variables, ``RELEASE_DISTRIBUTION=none``, and an Elixir node calling a hosted GenServer."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.cli.support import StartedNode, beamlink, cli_env, started
from tests.support.erlang import epmd_running, host_runtime, start_peer
from tests.support.wait import eventually_blocking

pytestmark = pytest.mark.timeout(90)

APP = "app@127.0.0.1"


def test_entry_point_app_stops_on_sigterm_and_exits_zero(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    node = StartedNode(APP, env, tmp_path / "app.log", "start", "--name", APP,
                       "--app", "tests.cli.apps:greeter")
    with started([node]):
        node.wait_log("greeter started")
        assert node.terminate() == 0
    log = node.log
    assert "greeter cancelled" in log
    assert log.index("greeter cancelled") < log.index(f"node {APP} stopped")
    assert "Traceback" not in log


def test_hooks_app_from_release_variables(tmp_path: Path) -> None:
    env = cli_env(tmp_path, BEAMLINK_COOKIE="", RELEASE_NODE=APP, RELEASE_COOKIE="releasecookie",
                  BEAMLINK_APP="tests.cli.apps:Hooks")
    node = StartedNode(APP, env, tmp_path / "app.log", "start")
    with started([node]):
        match = node.wait_log(r"hooks start on (\S+) pid (\d+)")
        assert match.groups() == (APP, str(node.proc.pid))
        assert "cookie from env RELEASE_COOKIE" in node.log
        assert beamlink("ping", APP, env=env).stdout == "pong\n"
        assert beamlink("ping", APP, "--cookie", "other", "--timeout", "3", env=env
                        ).stdout == "pang\n"
        assert node.terminate() == 0
    assert "hooks stopped" in node.log


def test_app_crash_is_logged_and_exits_non_zero(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    node = StartedNode(APP, env, tmp_path / "app.log", "start", "--name", APP,
                       "--app", "tests.cli.apps:crash")
    with started([node]):
        assert node.wait_exit() == 1
    log = node.log
    assert "app tests.cli.apps:crash crashed" in log
    assert "Traceback (most recent call last)" in log
    assert "ValueError: the app broke on purpose" in log
    assert f"node {APP} stopped" in log
    assert not epmd_running(int(env["ERL_EPMD_PORT"]))


@pytest.mark.parametrize(("app", "status", "expected"), [
    ("tests.cli.apps:finish", 0, "app tests.cli.apps:finish returned"),
    ("tests.cli.apps:BadStart", 1, "RuntimeError: cannot start on purpose"),
    ("tests.cli.apps:missing", 1, "cannot start: 'tests.cli.apps' has no attribute 'missing'"),
    ("tests.cli.nosuchmodule:app", 1, "cannot import 'tests.cli.nosuchmodule'"),
    ("no_colon", 1, "--app must look like package.module:attr"),
])
def test_app_outcomes(tmp_path: Path, app: str, status: int, expected: str) -> None:
    env = cli_env(tmp_path)
    node = StartedNode(APP, env, tmp_path / "app.log", "start", "--name", APP, "--app", app)
    with started([node]):
        assert node.wait_exit() == status, node.log
    assert expected in node.log


def test_app_package_in_the_current_directory_is_found(tmp_path: Path) -> None:
    """``--app myapp.main:run`` with ``myapp/`` in the current directory, as ``python -m`` finds
    modules; ``python -P`` keeps the interpreter from adding the directory itself (as the console
    script does not either)."""
    work = tmp_path / "work"
    (work / "myapp").mkdir(parents=True)
    (work / "myapp" / "main.py").write_text(
        "async def run(node):\n    print('myapp runs on', node.name, flush=True)\n"
    )
    env = cli_env(tmp_path)
    node = StartedNode(APP, env, tmp_path / "app.log", "start", "--name", APP,
                       "--app", "myapp.main:run", python_flags=("-P",), cwd=work)
    with started([node]):
        assert node.wait_exit() == 0, node.log
    assert f"myapp runs on {APP}" in node.log
    missing = StartedNode(APP, env, tmp_path / "missing.log", "start", "--name", APP,
                          "--app", "nosuchapp.main:run", python_flags=("-P",), cwd=work)
    with started([missing]):
        assert missing.wait_exit() == 1
    assert f"looked in the current directory {work}" in missing.log


def test_release_distribution_none_runs_the_app_without_distribution(tmp_path: Path) -> None:
    env = cli_env(tmp_path, RELEASE_DISTRIBUTION="none", RELEASE_NODE=APP)
    node = StartedNode(APP, env, tmp_path / "app.log", "start", "--app", "tests.cli.apps:Hooks")
    with started([node]):
        node.wait_log("hooks start on nonode@nohost")
        assert "node nonode@nohost up (not listening, creation " in node.log
        assert "port 0" not in node.log
        assert not epmd_running(int(env["ERL_EPMD_PORT"]))
        assert beamlink("ping", APP, "--timeout", "3", env=env).stdout == "pang\n"
        assert node.terminate() == 0
    assert "hooks stopped" in node.log


def test_release_distribution_sname(tmp_path: Path) -> None:
    host = socket.gethostname().split(".")[0]
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        pytest.skip(f"this machine's short host name {host!r} does not resolve")
    env = cli_env(tmp_path, RELEASE_DISTRIBUTION="sname", RELEASE_NODE="short_app")
    node = StartedNode("short_app", env, tmp_path / "app.log", "start")
    with started([node]):
        node.wait_running()
        assert f"node short_app@{host} running" in node.log
        assert beamlink("ping", f"short_app@{host}", env=env).stdout == "pong\n"
        assert node.terminate() == 0


def test_elixir_calls_a_genserver_hosted_by_start_app(tmp_path: Path) -> None:
    rt = host_runtime()
    env = cli_env(tmp_path)
    node = StartedNode(APP, env, tmp_path / "app.log", "start", "--name", APP,
                       "--app", "tests.cli.apps:greeter")
    with started([node]):
        node.wait_log("greeter started")
        elixir = start_peer(rt, "ex@127.0.0.1", env["BEAMLINK_COOKIE"], elixir=True,
                            env={"ERL_EPMD_PORT": env["ERL_EPMD_PORT"]})
        try:
            answer = elixir.eval_result(
                f'GenServer.call({{:greeter, :"{APP}"}}, {{:greet, "elixir"}})')
            assert answer.ok and answer.term() == f"hello, elixir from {APP}".encode()
            assert elixir.eval(f'GenServer.call({{:greeter, :"{APP}"}}, :nodes)') == \
                "['ex@127.0.0.1']"
            assert beamlink("nodes", APP, env=env).stdout == "ex@127.0.0.1\n"
            assert node.terminate() == 0
            eventually_blocking(lambda: elixir.eval("Node.list()") == "[]")
        finally:
            elixir.stop()
    assert re.search(r"nodedown ex@127\.0\.0\.1", node.log)


def test_health_file_that_cannot_be_written_stops_the_start(tmp_path: Path) -> None:
    env = cli_env(tmp_path, BEAMLINK_HEALTH_FILE=str(tmp_path / "missing-dir" / "health"))
    node = StartedNode(APP, env, tmp_path / "app.log", "start", "--name", APP)
    with started([node]):
        assert node.wait_exit() == 1
    log = node.log
    assert re.search(r"cannot start: health file \S+/missing-dir/health: .*No such file", log), log
    assert "--health-file or BEAMLINK_HEALTH_FILE" in log
    assert f"node {APP} stopped" in log
    assert not epmd_running(int(env["ERL_EPMD_PORT"]))
