"""The image, its HEALTHCHECK and the Swarm stack file in a real engine and swarm, independent of the
node runtime: containers run a stand-in (``standin_node.py``) that registers ``cluster_demo`` in
an embedded EPMD and keeps its heartbeat file the way ``beamlink start`` does. The end-to-end clustering test is
``test_swarm_e2e.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from beamlink.cluster.schema import DnsPollConfig, load_config
from tests.support.docker import (
    STACK_FILE,
    Secret,
    Stack,
    Task,
    container_exec,
    detached_container,
    docker,
    docker_out,
    docker_time,
    inspect,
    resolve_in,
    wait_until,
)

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(600)]

STAND_IN = (Path(__file__).parent / "standin_node.py").read_text()
TASK_TIMEOUT = 60.0
DNS_TIMEOUT = 30.0


def run_in_image(image: str, *argv: str) -> str:
    """Run ``argv`` in a throw-away container of ``image`` (entry point replaced)."""
    return docker_out("run", "--rm", "--entrypoint", argv[0], image, *argv[1:], timeout=120)


def test_image_runs_beamlink_as_non_root_user(beamlink_image: str) -> None:
    config = inspect(beamlink_image)[0]["Config"]
    assert config["Entrypoint"] == ["beamlink", "start"]
    assert config["User"] == "beamlink"
    assert "BEAMLINK_NODE=cluster_demo@auto" in config["Env"]
    assert "BEAMLINK_APP=cluster_demo.app:main" in config["Env"]
    health = config["Healthcheck"]
    assert health["Test"] == ["CMD", "/opt/beamlink/healthcheck.sh", "--watch", "10"]
    assert health["Interval"] == 100_000_000

    assert run_in_image(beamlink_image, "id", "-u") == "10001"
    usage = run_in_image(beamlink_image, "beamlink", "--help")
    assert "start" in usage and "remote" in usage and "nodes" in usage
    found = run_in_image(
        beamlink_image, "python3", "-c",
        "import importlib.util, beamlink; print(importlib.util.find_spec('cluster_demo.app').origin)",
    )
    assert found == "/opt/beamlink/app/cluster_demo/app.py"
    assert "No module named pip" in docker(
        "run", "--rm", "--entrypoint", "python3", beamlink_image, "-m", "pip", check=False
    ).stderr


def health(container: str) -> tuple[str, str]:
    """The container's health status and the output of its latest check."""
    state = inspect(container)[0]["State"]["Health"]
    log = state.get("Log") or [{"Output": ""}]
    return state["Status"], log[-1]["Output"].strip()


def wait_check_output(
    container: str, status: str | tuple[str, ...], marker: str, timeout: float
) -> str:
    """Wait for a check of ``container`` whose output contains ``marker`` while the container's
    health is ``status`` (or one of them); return that output."""
    statuses = (status,) if isinstance(status, str) else status

    def seen() -> str | None:
        current, output = health(container)
        return output if current in statuses and marker in output else None

    return wait_until(seen, timeout=timeout, what=f"{container}: {status}, {marker!r}")


def test_healthcheck_follows_the_node_start(beamlink_image: str) -> None:
    stand_in = ("--entrypoint", "python3")
    with (
        detached_container(beamlink_image, "-c", STAND_IN, "6", options=stand_in) as auto,
        detached_container(
            beamlink_image, "-c", STAND_IN, "6",
            options=(*stand_in, "--env", "BEAMLINK_HOST=127.0.0.1"),
        ) as fixed,
        detached_container(
            beamlink_image, "-c", STAND_IN, "0",
            options=(*stand_in, "--env", "BEAMLINK_NODE=other@auto"),
        ) as misnamed,
    ):
        # cluster_demo@auto without EPMD yet: healthy while it looks for its own address, since
        # Swarm puts a task into DNS only once it is healthy.
        output = wait_check_output(auto, "healthy", "starting", timeout=15)
        assert output.startswith("healthy: starting, not up yet")
        # With the host given nothing waits for DNS: unhealthy until the node is up.
        output = wait_check_output(fixed, "starting", "unhealthy", timeout=15)
        assert output.startswith("unhealthy: node not up (no heartbeat")
        for container in (auto, fixed):
            output = wait_check_output(container, "healthy", "standin up", timeout=20)
            assert output == "healthy: cluster_demo@standin up"
        # Still starting, or (once the others took the 20 s start period) already unhealthy.
        output = wait_check_output(misnamed, ("starting", "unhealthy"), "unhealthy", timeout=15)
        assert "node other not up" in output
        # The check that turned the fixed-host node healthy was already watching when the node
        # registered (it did not wait for a next interval), and a healthy node is checked every
        # ~10 s, not every 100 ms (each check is a docker exec: engine CPU).
        registered = float(container_exec(fixed, "cat", "/tmp/registered-at").stdout)
        wait_until(lambda: len(healthy_checks(fixed)) >= 3, timeout=60, what="3 healthy checks")
        first, *later = healthy_checks(fixed)
        assert first[0] < registered <= first[1]
        print(f"\nregistered -> healthy: {first[1] - registered:.3f} s")
        starts = [start for start, _ in later]
        assert all(b - a >= 9.5 for a, b in itertools.pairwise(starts))


def healthy_checks(container: str) -> list[tuple[float, float]]:
    """``(start, end)`` of the container's successful health checks (Docker keeps the last 5)."""
    log = inspect(container)[0]["State"]["Health"].get("Log") or []
    return [(docker_time(e["Start"]), docker_time(e["End"])) for e in log if e["ExitCode"] == 0]


_ROUTE_TO_SERVICE = (
    "import socket, sys\n"
    "from beamlink.cluster.address import route_source\n"
    "print(route_source(socket.gethostbyname(sys.argv[1])))\n"
)


def stand_in_override(directory: Path) -> Path:
    """A compose file running the stand-in instead of ``beamlink start``, plus an environment
    variable made of Swarm service templates."""
    override = {
        "version": "3.8",
        "services": {
            "cluster_demo": {
                "entrypoint": ["python3", "-c", STAND_IN, "1"],
                "environment": {"TEMPLATE_PROBE": "{{.Service.Name}} {{.Task.Slot}}"},
            }
        },
    }
    path = directory / "stand-in.yml"
    path.write_text(yaml.safe_dump(override))
    return path


def check_task_setup(stack: Stack, task: Task, cookie: Secret, directory: Path) -> None:
    """The rendered topology config (valid for beamlink's loader), the templated variable and
    the cookie file of one task."""
    config_path = container_exec(task.container, "printenv", "BEAMLINK_CONFIG").stdout.strip()
    rendered = directory / f"cluster-{task.slot}.toml"
    rendered.write_text(container_exec(task.container, "cat", config_path).stdout)
    topology = load_config(rendered).topologies["swarm"]
    assert isinstance(topology, DnsPollConfig)
    assert topology.query == f"tasks.{stack.service()}"
    assert topology.node_basename == "cluster_demo"
    probe = container_exec(task.container, "printenv", "TEMPLATE_PROBE").stdout.split()
    assert probe == [stack.service(), str(task.slot)]
    cookie_file = "/home/beamlink/.erlang.cookie"
    owner_mode = container_exec(task.container, "stat", "-c", "%u %g %a", cookie_file).stdout
    assert owner_mode.split() == ["10001", "10001", "400"]
    assert container_exec(task.container, "cat", cookie_file).stdout == cookie.value
    # Once a task of the service is healthy its virtual IP resolves, and the route toward it
    # leaves from the task's own overlay address: what a node started next to healthy tasks
    # (scaling up, a replacement) uses to resolve cluster_demo@auto before it is in DNS itself.
    routed = container_exec(task.container, "python3", "-c", _ROUTE_TO_SERVICE, stack.service())
    assert routed.stdout.strip() == task.address


def wait_dns(stack: Stack, replicas: int) -> list[Task]:
    """Wait until ``replicas`` tasks run and ``tasks.<service>`` lists exactly their addresses
    inside every one of them."""
    tasks = stack.wait_tasks(replicas, timeout=TASK_TIMEOUT)
    expected = {task.address for task in tasks}
    query = f"tasks.{stack.service()}"

    def resolved_everywhere() -> bool:
        return all(resolve_in(task.container, query) == expected for task in tasks)

    wait_until(resolved_everywhere, timeout=DNS_TIMEOUT, what=f"{query} = {expected} everywhere")
    return tasks


def test_stack_file_deploys_scales_and_leaves_nothing(
    beamlink_image: str,
    cookie_secret: Secret,
    make_stack: Callable[..., Stack],
    tmp_path: Path,
) -> None:
    stack = make_stack(
        STACK_FILE, stand_in_override(tmp_path),
        env={"BEAMLINK_IMAGE": beamlink_image, "COOKIE_SECRET": cookie_secret.name},
    )
    stack.deploy()
    for task in wait_dns(stack, 2):
        check_task_setup(stack, task, cookie_secret, tmp_path)
    stack.scale(5)
    wait_dns(stack, 5)
    stack.scale(3)
    wait_dns(stack, 3)
    stack.remove()
    assert stack.leftovers() == {
        "services": [], "containers": [], "networks": [], "configs": [], "secrets": []
    }
