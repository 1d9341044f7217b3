"""End to end in a real Docker Swarm: the stack of ``deploy/swarm/stack.yml`` with the image built
from the working tree clusters itself with ``dns_poll`` while it is scaled 2 -> 5 -> 3, survives a
``docker kill``, and an Elixir node on the same overlay network joins it; then ``docker stack rm``
leaves nothing behind.

Every observation is made from inside the containers (``docker exec ... beamlink nodes``). Measured
times are printed and compared with the targets (join visible everywhere within the polling
interval + 1 s of the task running; graceful scale-down within 1 s after the task stops; a killed
container dropped within the polling interval + 2 s); the assertions themselves only bound the
waits generously, so a slow machine does not fail the suite.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.docker import (
    STACK_FILE,
    ContainerErlRuntime,
    ContainerEvents,
    Secret,
    Stack,
    Task,
    container_address,
    container_events,
    detached_container,
    docker,
    wait_until,
)
from tests.support.erlang import ErlPeer, start_peer
from tests.swarm.mesh import (
    CONVERGE_TIMEOUT,
    POLLING_INTERVAL,
    TASKS_TIMEOUT,
    Timings,
    atoms,
    full_mesh,
    node_name,
    remove_leaving_nothing,
    wait_node_lists,
)

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(900)]

JOIN_TARGET = POLLING_INTERVAL + 1.0
LEAVE_TARGET = 1.0
KILL_TARGET = POLLING_INTERVAL + 2.0


@pytest.fixture
def events() -> Iterator[ContainerEvents]:
    with container_events() as stream:
        yield stream


def wait_replacement(stack: Stack, victim: Task) -> list[Task]:
    """Wait until 3 tasks run again, none of them ``victim``."""

    def replaced() -> list[Task] | None:
        tasks = stack.tasks()
        return tasks if len(tasks) == 3 and victim not in tasks else None

    return wait_until(replaced, timeout=TASKS_TIMEOUT, what="a task replacing the killed one")


def elixir_probe(stack: Stack, cookie: str, container: str) -> ErlPeer:
    """An Elixir node named probe@<its overlay address> in ``container``."""
    address = container_address(container, stack.network())
    runtime = ContainerErlRuntime("elixir-container", 25, container=container)
    return start_peer(runtime, f"probe@{address}", cookie, elixir=True, timeout=60)


def test_swarm_cluster_follows_scaling_kill_and_elixir(
    beamlink_image: str,
    elixir_base_image: str,
    cookie_secret: Secret,
    make_stack: Callable[..., Stack],
    timings: Timings,
    events: ContainerEvents,
) -> None:
    stack = make_stack(
        STACK_FILE, env={"BEAMLINK_IMAGE": beamlink_image, "COOKIE_SECRET": cookie_secret.name}
    )
    started = time.time()

    # 1. two replicas find each other.
    stack.deploy()
    tasks = stack.wait_tasks(2, timeout=TASKS_TIMEOUT)
    seen = wait_node_lists(full_mesh(tasks), "2 replicas listing each other")
    timings.record("deploy -> 2 replicas clustered", seen - started)
    timings.record("2 replicas: running -> listed everywhere",
                   seen - max(t.running_since for t in tasks), JOIN_TARGET)

    # 2. scale to 5: every replica lists the 4 others.
    stack.scale(5)
    five = stack.wait_tasks(5, timeout=TASKS_TIMEOUT)
    seen = wait_node_lists(full_mesh(five), "5 replicas in a full mesh")
    new = [t for t in five if t not in tasks]
    timings.record("scale 2->5: last new task running -> listed everywhere",
                   seen - max(t.running_since for t in new), JOIN_TARGET)

    # 3. scale to 3: the survivors list exactly the 2 others.
    stack.scale(3)
    three = stack.wait_tasks(3, timeout=TASKS_TIMEOUT)
    gone = [t for t in five if t not in three]
    seen = wait_node_lists(full_mesh(three), "3 survivors listing only each other")
    stopped = max(events.when("die", t.container) for t in gone)
    timings.record("scale 5->3: last task stopped -> dropped everywhere", seen - stopped,
                   LEAVE_TARGET)

    # 4. kill one container: the survivors drop it, its replacement joins.
    victim, survivors = three[0], three[1:]
    docker("kill", victim.container)
    killed = events.when("die", victim.container)
    seen = wait_node_lists(
        {t: {node_name(s) for s in survivors if s != t} for t in survivors},
        "survivors dropping the killed replica",
    )
    timings.record("docker kill -> dropped by the survivors", seen - killed, KILL_TARGET)
    replaced = wait_replacement(stack, victim)
    replacement = next(t for t in replaced if t not in three)
    seen = wait_node_lists(full_mesh(replaced), "the replacement joining everyone")
    timings.record("replacement running -> listed everywhere",
                   seen - replacement.running_since, JOIN_TARGET)

    # 5. an Elixir node on the overlay network joins through one replica.
    with detached_container(elixir_base_image, "sleep", "600", network=stack.network()) as box:
        probe = elixir_probe(stack, cookie_secret.value, box)
        try:
            first = replaced[0]
            assert probe.eval(f'Node.connect(:"{node_name(first)}")') == "true"
            info = probe.eval(f'info = GenServer.call({{:cluster_demo, :"{node_name(first)}"}}, :info)')
            assert atoms(info) == {node_name(t) for t in replaced} | {probe.name}
            probe.eval("Enum.each(elem(info, 1), &Node.connect/1)")
            replicas = {node_name(t) for t in replaced}
            wait_until(
                lambda: replicas <= atoms(probe.eval("Node.list()")),
                timeout=CONVERGE_TIMEOUT, what="Node.list() on Elixir showing every replica",
            )
            wait_node_lists(full_mesh(replaced, frozenset({probe.name})),
                            "every replica listing the Elixir node")
        finally:
            probe.stop()

    # 6. stack rm leaves nothing behind.
    remove_leaving_nothing(stack, timings)
    timings.record("whole scenario", time.time() - started)
