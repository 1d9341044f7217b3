"""Static checks of the Docker image recipe and the Swarm stack: the pieces that must agree with
each other (user id, cookie file, config path, node basename, topology query) and the rules the
issue sets (base image as a build argument, no index at install time, HEALTHCHECK short enough
for Swarm's DNS). The same files run for real in ``tests/swarm/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from beamlink.cluster.config import DnsPollConfig, load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DOCKERFILE = (DEPLOY / "docker" / "Dockerfile").read_text()


def stack() -> dict[str, Any]:
    result: dict[str, Any] = yaml.safe_load((DEPLOY / "swarm" / "stack.yml").read_text())
    return result


def service() -> dict[str, Any]:
    result: dict[str, Any] = stack()["services"]["cluster_demo"]
    return result


def image_uid() -> int:
    uid = re.search(r"useradd .*?--uid (\d+)", DOCKERFILE, re.S)
    assert uid is not None
    return int(uid.group(1))


def test_dockerfile_takes_its_base_as_argument_and_installs_offline() -> None:
    assert "ARG BASE_IMAGE=python:3.11-slim" in DOCKERFILE
    assert len(re.findall(r"^FROM \$\{BASE_IMAGE\}", DOCKERFILE, re.M)) == 2
    installs = re.findall(r"pip install[^&]*", DOCKERFILE)
    assert installs and all("--no-index" in line for line in installs)
    assert re.search(r"^USER beamlink$", DOCKERFILE, re.M)
    assert 'ENTRYPOINT ["beamlink", "start"]' in DOCKERFILE
    assert "BEAMLINK_NODE=cluster_demo@auto" in DOCKERFILE
    check = re.search(r"HEALTHCHECK --interval=(\d+)ms --timeout=(\d+)s .*?--watch\", \"(\d+)\"",
                      DOCKERFILE, re.S)
    assert check is not None, "HEALTHCHECK: a short interval and a watching check"
    interval_ms, timeout, watch = (int(group) for group in check.groups())
    assert interval_ms <= 300 and watch <= 5 and timeout > watch


def test_stack_runs_the_service_on_an_attachable_overlay() -> None:
    assert stack()["version"] == "3.8"
    assert service()["deploy"]["replicas"] == 2
    assert service()["image"].startswith("${BEAMLINK_IMAGE:-")
    assert service()["networks"] == ["cluster"]
    network = stack()["networks"]["cluster"]
    assert network["driver"] == "overlay"
    assert network["attachable"] is True


def test_cookie_is_the_node_users_erlang_cookie() -> None:
    (secret,) = service()["secrets"]
    assert secret["target"] == "/home/beamlink/.erlang.cookie"
    assert int(secret["uid"]) == int(secret["gid"]) == image_uid()
    assert secret["mode"] == 0o400
    assert stack()["secrets"][secret["source"]]["external"] is True
    assert "COOKIE" not in " ".join(service()["environment"])


def test_topology_follows_the_stack_name(tmp_path: Path) -> None:
    (mounted,) = service()["configs"]
    assert service()["environment"]["BEAMLINK_CONFIG"] == mounted["target"]
    config = stack()["configs"][mounted["source"]]
    assert config["template_driver"] == "golang"
    source = (DEPLOY / "swarm" / config["file"]).read_text()
    # What Swarm renders for `docker stack deploy -c stack.yml t`.
    rendered = tmp_path / "cluster.toml"
    rendered.write_text(re.sub(r"\{\{\s*\.Service\.Name\s*\}\}", "t_cluster_demo", source))
    (topology,) = load_config(rendered).topologies.values()
    assert isinstance(topology, DnsPollConfig)
    assert topology.query == "tasks.t_cluster_demo"
    basename = service()["environment"]["BEAMLINK_NODE"].partition("@")[0]
    assert topology.node_basename == basename == "cluster_demo"
    assert service()["environment"]["BEAMLINK_NODE"] == "cluster_demo@auto"
