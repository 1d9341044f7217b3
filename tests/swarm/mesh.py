"""Observing the cluster_demo replicas of a Swarm stack from inside their containers: node names,
``beamlink nodes`` run with ``docker exec``, waiting for every replica's list to match, the
bounds of those waits, and the final ``docker stack rm`` check (shared by the plain and the TLS
end-to-end tests)."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

from beamlink.cluster.schema import load_config
from tests.support.docker import TOPOLOGY_FILE, Stack, Task, container_exec, wait_until

POLLING_INTERVAL = load_config(TOPOLOGY_FILE).topologies["swarm"].polling_interval / 1000
# Generous bounds against hangs, never speed assertions.
TASKS_TIMEOUT = 90.0
CONVERGE_TIMEOUT = 4 * POLLING_INTERVAL + 30.0
BASENAME = "cluster_demo"


def node_name(task: Task) -> str:
    """The node name a replica gets from ``cluster_demo@auto``: its task address."""
    return f"{BASENAME}@{task.address}"


def listed_nodes(task: Task) -> set[str] | None:
    """``beamlink nodes`` of the replica, run inside its container (None when it fails). The
    command inherits the container's environment, so it uses TLS where the replica does
    (``BEAMLINK_SSL_DIST_OPTFILE``)."""
    proc = container_exec(
        task.container, "beamlink", "nodes", node_name(task), check=False, timeout=30
    )
    return set(proc.stdout.split()) if proc.returncode == 0 else None


def wait_node_lists(
    expected: dict[Task, set[str]], what: str, timeout: float = CONVERGE_TIMEOUT
) -> float:
    """Poll every replica's node list (concurrently) until each equals its expected set; return
    the time this was first seen."""

    def converged() -> float | None:
        with ThreadPoolExecutor(len(expected)) as pool:
            lists = list(pool.map(listed_nodes, expected))
        seen_at = time.time()
        return seen_at if all(a == b for a, b in zip(lists, expected.values(), strict=True)) else None

    return wait_until(converged, timeout=timeout, what=what, interval=0.1)


def full_mesh(tasks: list[Task], extra: frozenset[str] = frozenset()) -> dict[Task, set[str]]:
    """Every replica lists every other replica (and the ``extra`` nodes)."""
    return {task: {node_name(t) for t in tasks if t != task} | extra for task in tasks}


def atoms(text: str) -> set[str]:
    """The quoted atoms (node names) in the ``~w`` text of a term."""
    return set(re.findall(r"'([^']+)'", text))


class Timings:
    """Measured times, printed at the end with their targets."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[tuple[str, float, float | None]] = []

    def record(self, what: str, seconds: float, target: float | None = None) -> None:
        self.rows.append((what, seconds, target))

    def report(self) -> str:
        lines = [f"{self.title} timings (polling interval {POLLING_INTERVAL:g} s):"]
        for what, seconds, target in self.rows:
            verdict = "" if target is None else (
                f"  target {target:g} s: {'met' if seconds <= target else 'MISSED'}"
            )
            lines.append(f"  {what:<58} {seconds:7.2f} s{verdict}")
        return "\n".join(lines)


def remove_leaving_nothing(stack: Stack, timings: Timings) -> None:
    """``docker stack rm`` (timed into ``timings``), then nothing labelled with the stack is
    left: no service, container, network, config or secret."""
    removing = time.time()
    stack.remove()
    timings.record("docker stack rm -> nothing left", time.time() - removing)
    leftovers = stack.leftovers()
    assert leftovers == {
        "services": [], "containers": [], "networks": [], "configs": [], "secrets": []
    }, f"docker stack rm left these behind: {leftovers}"
