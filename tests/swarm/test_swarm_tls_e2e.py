"""End to end in a real Docker Swarm with TLS distribution: certificates made by ``beamlink tls
init``, the CA, certificate, key and the shared optfile of ``deploy/swarm/tls/`` as Docker
secrets, and the stack of ``deploy/swarm/stack.yml`` overridden by ``stack-tls.yml``, as the
header of ``stack-tls.yml`` shows.

The replicas cluster over TLS while scaled 2 -> 3; an Elixir node started in the overlay with
``-proto_dist inet_tls -ssl_dist_optfile /run/secrets/beamlink_dist_optfile`` (the same secrets,
mounted into a service) and the replicas list each other both ways, and ``beamlink ping`` from a
replica's container dials it over TLS; a plain-TCP Elixir node and a
plain-TCP ``beamlink nodes`` are refused; ``docker stack rm`` leaves nothing behind. Every
observation is made from inside the containers (``docker exec``); ``beamlink nodes`` there reads
the optfile from the replica's own ``BEAMLINK_SSL_DIST_OPTFILE``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from beamlink.cli.main import cli
from tests.support.docker import (
    DEPLOY,
    STACK_FILE,
    ContainerErlRuntime,
    Secret,
    Stack,
    Swarm,
    Task,
    container_exec,
    create_secret,
    docker,
    swarm_service,
    wait_until,
)
from tests.support.erlang import ErlPeer, start_peer
from tests.swarm.mesh import (
    CONVERGE_TIMEOUT,
    TASKS_TIMEOUT,
    Timings,
    atoms,
    full_mesh,
    listed_nodes,
    node_name,
    remove_leaving_nothing,
    wait_node_lists,
)

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(600)]

TLS_STACK_FILE = DEPLOY / "swarm" / "stack-tls.yml"
OPTFILE = DEPLOY / "swarm" / "tls" / "ssl_dist_optfile.conf"
MOUNTED_OPTFILE = "/run/secrets/beamlink_dist_optfile"
# The variable of stack-tls.yml naming each external secret, the file it holds (relative to the
# `beamlink tls init` directory, or the optfile of deploy/swarm/tls/), and where stack-tls.yml
# and the optfile expect it under /run/secrets/ (the key readable by its owner only).
SECRET_FILES = {
    "TLS_CA_SECRET": ("ca.pem", "beamlink_tls_ca", "0444"),
    "TLS_CERT_SECRET": ("cluster.pem", "beamlink_tls_cert", "0444"),
    "TLS_KEY_SECRET": ("cluster-key.pem", "beamlink_tls_key", "0400"),
    "TLS_OPTFILE_SECRET": (str(OPTFILE), "beamlink_dist_optfile", "0444"),
}


@pytest.fixture
def tls_secrets(swarm: Swarm, tmp_path: Path) -> Iterator[dict[str, Secret]]:
    """Certificates from ``beamlink tls init`` and the Swarm optfile as secrets with unique names,
    by the stack-tls.yml variable naming each; removed after the test (list this fixture before
    ``make_stack``, so the stack using them is removed first)."""
    directory = tmp_path / "tls"
    result = CliRunner().invoke(
        cli, ["tls", "init", str(directory), "--nodes", "cluster_demo@swarm"]
    )
    assert result.exit_code == 0, result.output
    made: dict[str, Secret] = {}
    try:
        for variable, (source, _target, _mode) in SECRET_FILES.items():
            made[variable] = create_secret("beamlink_tls", (directory / source).read_text())
        yield made
    finally:
        for secret in made.values():
            docker("secret", "rm", secret.name, check=False)


def secret_options(secrets: dict[str, Secret]) -> tuple[str, ...]:
    """``docker service create`` options mounting the TLS secrets where the optfile expects them
    (owned by root, the user of the Elixir container)."""
    options: list[str] = []
    for variable, (_source, target, mode) in SECRET_FILES.items():
        options += ["--secret", f"source={secrets[variable].name},target={target},mode={mode}"]
    return tuple(options)


def elixir_node(box: Task, name: str, cookie: str, *, tls: bool) -> ErlPeer:
    """An Elixir node ``name@<overlay address>`` in the container of ``box``, with TLS
    distribution (the mounted optfile) or plain TCP."""
    runtime = ContainerErlRuntime("elixir-container", 25, container=box.container)
    extra = ("-proto_dist", "inet_tls", "-ssl_dist_optfile", MOUNTED_OPTFILE) if tls else ()
    return start_peer(runtime, f"{name}@{box.address}", cookie, elixir=True, extra_args=extra,
                      timeout=60)


def plain_nodes_command(task: Task) -> tuple[int, str]:
    """``beamlink nodes`` inside a replica's container without its TLS optfile: status, stderr."""
    proc = container_exec(
        task.container, "env", "-u", "BEAMLINK_SSL_DIST_OPTFILE", "beamlink", "nodes",
        node_name(task), "--timeout", "10", check=False, timeout=60,
    )
    return proc.returncode, proc.stderr


def test_tls_swarm_cluster_with_elixir(
    beamlink_image: str,
    elixir_base_image: str,
    cookie_secret: Secret,
    tls_secrets: dict[str, Secret],
    make_stack: Callable[..., Stack],
    timings: Timings,
) -> None:
    stack = make_stack(
        STACK_FILE, TLS_STACK_FILE,
        env={"BEAMLINK_IMAGE": beamlink_image, "COOKIE_SECRET": cookie_secret.name,
             **{variable: secret.name for variable, secret in tls_secrets.items()}},
    )
    started = time.time()

    # 1. two replicas cluster over TLS; a control node without the optfile is refused.
    stack.deploy()
    tasks = stack.wait_tasks(2, timeout=TASKS_TIMEOUT)
    seen = wait_node_lists(full_mesh(tasks), "2 TLS replicas listing each other")
    timings.record("deploy -> 2 TLS replicas clustered", seen - started)
    status, stderr = plain_nodes_command(tasks[0])
    assert status != 0 and "TLS" in stderr, (status, stderr)

    # 2. scale to 3: the new replica joins everyone over TLS.
    stack.scale(3)
    three = stack.wait_tasks(3, timeout=TASKS_TIMEOUT)
    seen = wait_node_lists(full_mesh(three), "3 TLS replicas in a full mesh")
    new = next(t for t in three if t not in tasks)
    timings.record("scale 2->3: new task running -> listed everywhere", seen - new.running_since)

    # 3. an Elixir node with the same secrets joins; a plain-TCP one is refused.
    replicas = {node_name(t) for t in three}
    joining = time.time()
    with swarm_service(elixir_base_image, "sleep", "600", network=stack.network(),
                       options=secret_options(tls_secrets)) as box:
        probe = elixir_node(box, "probe", cookie_secret.value, tls=True)
        try:
            proto = probe.eval(':init.get_argument(:proto_dist) == {:ok, [[~c"inet_tls"]]}')
            assert proto == "true", "the probe does not run TLS distribution"
            for task in three:
                assert probe.eval(f'Node.connect(:"{node_name(task)}")') == "true", task
            wait_until(
                lambda: atoms(probe.eval("Node.list()")) == replicas,
                timeout=CONVERGE_TIMEOUT, what="Node.list() on the TLS Elixir node",
            )
            seen = wait_node_lists(full_mesh(three, frozenset({probe.name})),
                                   "every replica listing the TLS Elixir node")
            timings.record("Elixir TLS service created -> in every node list", seen - joining)
            # Python dialling Elixir over TLS too: a control node in a replica's container.
            ping = container_exec(three[0].container, "beamlink", "ping", probe.name,
                                  check=False, timeout=60)
            assert ping.returncode == 0, ping.stderr

            plain = elixir_node(box, "plain", cookie_secret.value, tls=False)
            try:
                for task in three:
                    assert plain.eval(f'Node.connect(:"{node_name(task)}")') == "false", task
                assert plain.eval("Node.list()") == "[]"
            finally:
                plain.stop()
            for task in three:
                assert listed_nodes(task) == full_mesh(three, frozenset({probe.name}))[task]
        finally:
            probe.stop()

    # 4. stack rm leaves nothing behind (the secrets go with the fixture).
    remove_leaving_nothing(stack, timings)
    timings.record("whole scenario", time.time() - started)
