"""The Docker image recipe and the Swarm stack, checked for what they do rather than how they
are spelt: the Dockerfile is parsed into instructions and the stack as YAML, and the image's
health check is run for real against an embedded EPMD. What must agree: the image user owns the
mounted cookie, the rendered topology queries the tasks of the service the stack defines, the
image defaults and the stack's environment name the same node, config and metrics port. The
same files run for real in ``tests/swarm/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from beamlink.cluster.schema import DnsPollConfig, load_config
from beamlink.epmd import register
from beamlink.epmd.server import EmbeddedEpmd
from tests.support.erlang import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DOCKER = DEPLOY / "docker"
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
    script = PurePosixPath(argv[-1])
    copies = [shlex.split(a) for k, a in instructions() if k == "COPY" and "--from" not in a]
    assert [str(DOCKER / "healthcheck.py"), str(script)] in [
        [str(DOCKER / src), dst] for src, dst in copies
    ]
    assert argv[0] == "python3" and image_env()["PATH"].startswith(str(script.parent) + "/bin")


async def _healthcheck(epmd_port: int, **env: str) -> tuple[int, str]:
    variables = {
        k: v for k, v in os.environ.items() if k not in ("BEAMLINK_HOST", "POD_IP", "RELEASE_NODE")
    }
    variables.update(ERL_EPMD_PORT=str(epmd_port), **env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(DOCKER / "healthcheck.py"), env=variables,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.mark.timeout(90)
async def test_healthcheck_is_healthy_once_the_node_is_up_not_once_clustered() -> None:
    node = image_env()["BEAMLINK_NODE"]
    port = free_port()
    # No EPMD yet: a NAME@auto node is still looking for its address in DNS, which lists it
    # only once it is healthy; with the host given there is nothing to wait for.
    assert (await _healthcheck(port, BEAMLINK_NODE=node))[0] == 0
    assert (await _healthcheck(port, BEAMLINK_NODE=node, BEAMLINK_HOST="10.0.0.5"))[0] == 1
    epmd = EmbeddedEpmd(port=port, addresses=["127.0.0.1"])
    await epmd.start()
    try:
        status, out = await _healthcheck(port, BEAMLINK_NODE=node)
        assert status == 1 and "not registered" in out
        registration = await register(node.partition("@")[0], free_port(), epmd_port=port)
        try:
            assert (await _healthcheck(port, BEAMLINK_NODE=node))[0] == 0
            assert (await _healthcheck(port, BEAMLINK_NODE="other@auto"))[0] == 1
        finally:
            await registration.close()
    finally:
        await epmd.close()


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
