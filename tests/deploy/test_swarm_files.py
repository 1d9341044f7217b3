"""The Docker image recipe and the Swarm stack, checked for what they do rather than how they
are spelt: the Dockerfile is parsed into instructions and the stack as YAML, and the image's
health check is run for real against heartbeat files and a real ``beamlink start``. What must agree: the image user owns the
mounted cookie, the rendered topology queries the tasks of the service the stack defines, the
image defaults and the stack's environment name the same node, config and metrics port. The
same files run for real in ``tests/swarm/``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from beamlink.cluster.schema import DnsPollConfig, load_config
from tests.cli.support import StartedNode, cli_env, started

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DOCKER = DEPLOY / "docker"
HEALTHCHECK = DOCKER / "healthcheck.sh"
SERVICE = "cluster_demo"


def instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each Dockerfile instruction, continuations joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def commands(run: str) -> list[list[str]]:
    """The argv of each ``&&``-joined command of a shell-form RUN."""
    return [shlex.split(part) for part in run.split("&&")]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in final_stage():
        if keyword == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    return env


def image_user() -> tuple[str, int, str]:
    """(name, uid, home) of the user the final stage creates and runs as."""
    for keyword, args in final_stage():
        if keyword == "RUN":
            for argv in commands(args):
                if argv and argv[0] == "useradd":
                    return argv[-1], int(option(argv, "--uid")), option(argv, "--home-dir")
    raise AssertionError("the image creates no user")


def stack() -> dict[str, Any]:
    result: dict[str, Any] = yaml.safe_load((DEPLOY / "swarm" / "stack.yml").read_text())
    return result


def service() -> dict[str, Any]:
    result: dict[str, Any] = stack()["services"][SERVICE]
    return result


def test_image_builds_from_its_base_argument_without_an_index() -> None:
    steps = instructions()
    args = dict(a.split("=", 1) for k, a in steps if k == "ARG" and "=" in a)
    assert args.get("BASE_IMAGE"), "BASE_IMAGE needs a default"
    assert [a.split()[0] for k, a in steps if k == "FROM"] == ["${BASE_IMAGE}"] * 2
    installs = [
        argv
        for keyword, run in steps
        if keyword == "RUN"
        for argv in commands(run)
        if "pip" in argv and "install" in argv
    ]
    assert installs
    for argv in installs:
        assert "--no-index" in argv and "--find-links" in argv, argv


def test_image_runs_beamlink_start_as_an_unprivileged_user() -> None:
    name, uid, _home = image_user()
    stage = final_stage()
    assert ("USER", name) in stage and uid >= 1000
    [entrypoint] = [json.loads(a) for k, a in stage if k == "ENTRYPOINT"]
    assert entrypoint[:2] == ["beamlink", "start"]


def test_healthcheck_runs_the_shipped_check_often_enough_for_swarm_dns() -> None:
    [(_, args)] = [(k, a) for k, a in final_stage() if k == "HEALTHCHECK"]
    options, _, command = args.partition("CMD")
    interval = re.search(r"--interval=(\d+)(ms|s)\b", options)
    timeout = re.search(r"--timeout=(\d+)s\b", options)
    # Swarm lists a task in DNS only once healthy: the first healthy report must come within
    # about 0.3 s of the node being up, so checks start every few hundred milliseconds and a
    # watching check (which reports a changed verdict at once) must end before the timeout.
    assert interval is not None and timeout is not None
    interval_s = int(interval.group(1)) / (1000 if interval.group(2) == "ms" else 1)
    assert interval_s <= 0.3
    argv = json.loads(command)
    if "--watch" in argv:
        assert float(argv[argv.index("--watch") + 1]) < int(timeout.group(1))
        argv = argv[: argv.index("--watch")]
    # The check is the shipped script itself (bash, no Python start per check), reading the
    # heartbeat file the image tells beamlink start to keep.
    [script] = argv
    copies = [shlex.split(a) for k, a in instructions() if k == "COPY" and "--from" not in a]
    assert [str(HEALTHCHECK), script] in [[str(DOCKER / src), dst] for src, dst in copies]
    assert os.access(HEALTHCHECK, os.X_OK)
    assert HEALTHCHECK.read_text().startswith("#!/bin/bash\n")
    assert image_env()["BEAMLINK_HEALTH_FILE"].startswith("/tmp/")


def healthcheck(health_file: Path, *args: str, **env: str) -> tuple[int, str]:
    """Run the image's check (``args``: e.g. ``--watch 1``) with ``env`` over the image's
    BEAMLINK_NODE; its status and output line."""
    variables = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("BEAMLINK_", "RELEASE_")) and k != "POD_IP"
    }
    variables.update({"BEAMLINK_NODE": image_env()["BEAMLINK_NODE"],
                      "BEAMLINK_HEALTH_FILE": str(health_file), **env})
    done = subprocess.run([str(HEALTHCHECK), *args], env=variables, capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.stderr == ""
    return done.returncode, done.stdout.strip()


def test_healthcheck_verdicts_from_the_heartbeat_file(tmp_path: Path) -> None:
    beat = tmp_path / "health"
    # No heartbeat yet: a NAME@auto node is still looking for its address in DNS, which lists
    # it only once it is healthy; with the host given there is nothing to wait for.
    status, out = healthcheck(beat)
    assert status == 0 and out.startswith("healthy: starting")
    for host in ({"BEAMLINK_HOST": "10.0.0.5"}, {"POD_IP": "10.0.0.5"}):
        assert healthcheck(beat, **host) == (1, f"unhealthy: node not up (no heartbeat in {beat})")
    beat.write_text(f"{int(time.time())} cluster_demo@10.0.0.5\n")
    assert healthcheck(beat, BEAMLINK_HOST="10.0.0.5") == (0, "healthy: cluster_demo@10.0.0.5 up")
    status, out = healthcheck(beat, BEAMLINK_NODE="other@auto")
    assert status == 1 and "node other not up" in out
    beat.write_text(f"{int(time.time()) - 6} cluster_demo@10.0.0.5\n")
    status, out = healthcheck(beat)
    assert status == 1 and "last heartbeat is 6 s old" in out
    beat.write_text("half a line")
    assert healthcheck(beat)[0] == 0  # starting (never a crash of the check)
    assert healthcheck(beat, BEAMLINK_HOST="10.0.0.5")[0] == 1


def test_watching_check_reports_a_change_at_once_and_sameness_at_the_end(tmp_path: Path) -> None:
    beat = tmp_path / "health"
    fixed = {"BEAMLINK_HOST": "10.0.0.5"}
    started = time.monotonic()
    assert healthcheck(beat, "--watch", "10", **fixed)[0] == 1
    # Nothing reported yet counts as unhealthy, so "unhealthy" is no news: watched for 2 s
    # (not 10: failures in a row must add up quickly).
    assert 1.9 <= time.monotonic() - started < 5
    beat.write_text(f"{int(time.time())} cluster_demo@10.0.0.5\n")
    started = time.monotonic()
    assert healthcheck(beat, "--watch", "10", **fixed)[0] == 0
    assert time.monotonic() - started < 1.5  # a change: at once
    started = time.monotonic()
    assert healthcheck(beat, "--watch", "1", **fixed)[0] == 0
    assert time.monotonic() - started >= 0.9  # no change: the whole watch
    beat.unlink()
    started = time.monotonic()
    assert healthcheck(beat, "--watch", "10", **fixed)[0] == 1
    assert time.monotonic() - started < 1.5


@pytest.mark.timeout(90)
def test_healthcheck_follows_a_real_node(tmp_path: Path) -> None:
    """``beamlink start --health-file``: healthy once up, unhealthy while its event loop is
    stopped (SIGSTOP) and after it stopped."""
    beat = tmp_path / "health"
    env = cli_env(tmp_path, BEAMLINK_HEALTH_FILE=str(beat))
    name = "cluster_demo@127.0.0.1"
    fixed = {"BEAMLINK_HOST": "127.0.0.1"}
    node = StartedNode(name, env, tmp_path / "node.log", "start", "--name", name)
    with started([node]):
        node.wait_running()
        assert healthcheck(beat, **fixed) == (0, f"healthy: {name} up")
        node.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(7)
            status, out = healthcheck(beat, **fixed)
            assert status == 1 and "heartbeat is" in out, out
        finally:
            node.proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 10
        while healthcheck(beat, **fixed)[0] != 0:
            assert time.monotonic() < deadline, "no fresh heartbeat after SIGCONT"
            time.sleep(0.2)
        assert node.terminate() == 0
    assert not beat.exists()
    assert healthcheck(beat, **fixed)[0] == 1


def test_cookie_secret_is_the_image_users_erlang_cookie_and_only_theirs() -> None:
    _name, uid, home = image_user()
    (secret,) = service()["secrets"]
    assert PurePosixPath(secret["target"]) == PurePosixPath(home) / ".erlang.cookie"
    assert int(secret["uid"]) == int(secret["gid"]) == uid
    assert secret["mode"] & 0o077 == 0
    assert stack()["secrets"][secret["source"]]["external"] is True
    assert not any("COOKIE" in key for key in service()["environment"])


def test_stack_and_image_name_the_same_node_app_and_metrics_port() -> None:
    env = service()["environment"]
    for key in ("BEAMLINK_NODE", "BEAMLINK_APP", "BEAMLINK_METRICS_PORT"):
        assert str(env[key]) == image_env()[key], key
    exposed = {int(p) for k, a in final_stage() if k == "EXPOSE" for p in a.split()}
    assert int(env["BEAMLINK_METRICS_PORT"]) in exposed
    assert service()["deploy"]["labels"]["prometheus.io/port"] == env["BEAMLINK_METRICS_PORT"]
    assert env["BEAMLINK_NODE"].partition("@")[2] == "auto"


def test_replicas_share_an_attachable_overlay() -> None:
    assert service()["deploy"]["replicas"] >= 2
    (network,) = service()["networks"]
    assert stack()["networks"][network]["driver"] == "overlay"
    assert stack()["networks"][network]["attachable"] is True


@pytest.mark.parametrize("stack_name", ["t", "prod"])
def test_topology_queries_the_tasks_of_the_service_of_any_stack(
    tmp_path: Path, stack_name: str
) -> None:
    (mounted,) = service()["configs"]
    assert service()["environment"]["BEAMLINK_CONFIG"] == mounted["target"]
    config = stack()["configs"][mounted["source"]]
    assert config["template_driver"] == "golang"
    source = (DEPLOY / "swarm" / config["file"]).read_text()
    # What Swarm renders for `docker stack deploy -c stack.yml <stack_name>`.
    rendered = tmp_path / "cluster.toml"
    service_name = f"{stack_name}_{SERVICE}"
    rendered.write_text(re.sub(r"\{\{\s*\.Service\.Name\s*\}\}", service_name, source))
    (topology,) = load_config(rendered).topologies.values()
    assert isinstance(topology, DnsPollConfig)
    assert topology.query == f"tasks.{service_name}"
    assert topology.node_basename == service()["environment"]["BEAMLINK_NODE"].partition("@")[0]
