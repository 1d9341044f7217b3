"""Docker test harness: the engine (used, or started and stopped), local base images, the beamlink
image, a Swarm, stacks, and ``docker exec`` probes, all driven through the ``docker`` CLI.

Network rule: tests never connect from the host to a container address; they observe containers
from inside with ``docker exec``. Everything a fixture creates it removes: stacks (and their
services, containers, networks, configs), secrets, the swarm (left only if the fixture created
it) and the engine (stopped only if the fixture started it). Base images and the project image
stay cached in the engine between runs on the same machine.

Base images are built without a registry by ``deploy/docker/build-base.sh`` (debootstrap +
``docker import``) and the project image by ``deploy/docker/build.sh``, the scripts the guide in
``docs/deploy.md`` uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.erlang import ErlRuntime
from tests.support.require import missing, require_tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
STACK_FILE = DEPLOY / "swarm" / "stack.yml"
TOPOLOGY_FILE = DEPLOY / "swarm" / "cluster.toml"

PYTHON_BASE = "beamlink-base/python:bookworm"
PYTHON_BASE_PACKAGES = "python3,python3-venv"
ELIXIR_BASE = "beamlink-base/elixir:bookworm"
ELIXIR_BASE_PACKAGES = "elixir,erlang-base"
BASE_IMAGES = {PYTHON_BASE: PYTHON_BASE_PACKAGES, ELIXIR_BASE: ELIXIR_BASE_PACKAGES}
# The project image the tests build from this tree; a distinct tag keeps concurrent runs from
# different trees on one engine apart.
TEST_IMAGE = os.environ.get("BEAMLINK_TEST_IMAGE", "beamlink/cluster_demo:test")

STACK_LABEL = "com.docker.stack.namespace"
ENGINE_START_TIMEOUT = 60.0
BASE_BUILD_TIMEOUT = 900.0
IMAGE_BUILD_TIMEOUT = 600.0

T = TypeVar("T")


class DockerError(RuntimeError):
    """A docker command failed; the message carries its command line and stderr."""


def docker(
    *args: str, timeout: float = 60.0, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS``; raise :class:`DockerError` on a non-zero status when ``check``."""
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, input=input,
        check=False,
    )
    if check and proc.returncode != 0:
        raise DockerError(f"docker {' '.join(args)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc


def docker_out(*args: str, timeout: float = 60.0) -> str:
    """Stdout of ``docker ARGS`` (stripped); raises on failure."""
    return docker(*args, timeout=timeout).stdout.strip()


def inspect(*objects: str) -> list[dict[str, Any]]:
    """``docker inspect`` of containers, tasks, networks, ... (an empty list for no objects)."""
    if not objects:
        return []
    result: list[dict[str, Any]] = json.loads(docker_out("inspect", *objects))
    return result


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.25
) -> T:
    """Call ``probe`` until it returns a truthy value and return it; fail after ``timeout`` s.

    The failure message names ``what`` was awaited and the last value (or error) seen.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except (DockerError, subprocess.TimeoutExpired) as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


# -- the engine ------------------------------------------------------------------------------


def engine_answers() -> bool:
    """True when ``docker info`` reaches a running engine."""
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@dataclass
class DockerEngine:
    """The Docker engine the tests use: one that was running, or one started here (``process``)."""

    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @classmethod
    def ensure(cls) -> DockerEngine:
        """Use the running engine, else start ``dockerd`` in the background (needs root)."""
        require_tool("docker")
        if engine_answers():
            return cls()
        require_tool("dockerd")
        if os.geteuid() != 0:
            missing("no Docker engine runs and starting dockerd needs root")
        fd, log_name = tempfile.mkstemp(prefix="beamlink-dockerd-", suffix=".log")
        process = subprocess.Popen(
            ["dockerd"], stdout=fd, stderr=subprocess.STDOUT, start_new_session=True
        )
        os.close(fd)
        engine = cls(process, Path(log_name))
        try:
            wait_until(
                lambda: process.poll() is not None or engine_answers(),
                timeout=ENGINE_START_TIMEOUT, what="dockerd to answer", interval=0.5,
            )
        except AssertionError:
            problem = f"dockerd did not answer within {ENGINE_START_TIMEOUT:g} s"
        else:
            problem = None if process.poll() is None else (
                f"dockerd exited with status {process.returncode}"
            )
        if problem is not None:
            tail = Path(log_name).read_text(errors="replace")[-3000:]
            engine.stop()
            missing(f"{problem}: {tail}")
        return engine

    def stop(self) -> None:
        """Stop the engine if it was started here (SIGTERM, then SIGKILL after 30 s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
        self.process = None


# -- images ----------------------------------------------------------------------------------


def image_exists(tag: str) -> bool:
    """True when the engine has image ``tag``."""
    return docker("image", "inspect", tag, check=False).returncode == 0


def build_base_image(tag: str, packages: str) -> str:
    """A Debian bookworm base image with ``packages`` (built once, then cached by the engine)."""
    if image_exists(tag):
        return tag
    require_tool("debootstrap")
    if os.geteuid() != 0:
        missing("building a base image with debootstrap needs root")
    proc = subprocess.run(
        [str(DEPLOY / "docker" / "build-base.sh"), tag, packages],
        capture_output=True, text=True, timeout=BASE_BUILD_TIMEOUT, check=False,
    )
    if proc.returncode != 0:
        raise DockerError(f"build-base.sh {tag} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return tag


def build_beamlink_image(tag: str = TEST_IMAGE, base: str = PYTHON_BASE) -> str:
    """Build the project image from the working tree with ``deploy/docker/build.sh``."""
    proc = subprocess.run(
        [str(DEPLOY / "docker" / "build.sh"), "--base", base, "--tag", tag],
        capture_output=True, text=True, timeout=IMAGE_BUILD_TIMEOUT, check=False,
    )
    if proc.returncode != 0:
        raise DockerError(f"build.sh failed: {proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return tag


# -- the swarm -------------------------------------------------------------------------------


def swarm_state() -> str:
    """The engine's swarm state: ``active``, ``inactive``, ``pending``, ``error``, ``locked``."""
    return docker_out("info", "--format", "{{.Swarm.LocalNodeState}}")


def network_exists(name: str) -> bool:
    """True when the engine has a network called ``name``."""
    return bool(docker_out("network", "ls", "--quiet", "--filter", f"name=^{name}$"))


@dataclass
class Swarm:
    """The swarm the tests deploy to; ``created`` when the fixture ran ``docker swarm init``."""

    created: bool = False
    gwbridge_existed: bool = True

    @classmethod
    def ensure(cls) -> Swarm:
        """Join nothing: use the engine's swarm if active, else ``docker swarm init``."""
        if swarm_state() == "active":
            return cls()
        gwbridge = network_exists("docker_gwbridge")
        docker("swarm", "init", "--advertise-addr", "127.0.0.1", timeout=60)
        return cls(created=True, gwbridge_existed=gwbridge)

    def leave(self) -> None:
        """Leave the swarm (and drop the gateway bridge it made) if ``ensure`` created it."""
        if not self.created:
            return
        docker("swarm", "leave", "--force", timeout=60)
        if not self.gwbridge_existed and network_exists("docker_gwbridge"):
            docker("network", "rm", "docker_gwbridge", check=False)
        self.created = False


@dataclass(frozen=True)
class Secret:
    """A swarm secret created for one test."""

    name: str
    value: str


def create_secret(prefix: str = "beamlink_test", value: str | None = None) -> Secret:
    """A swarm secret with a unique name holding ``value`` (default: a random alphanumeric
    value, a cookie)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    if value is None:
        value = secrets.token_hex(16)
    docker("secret", "create", name, "-", input=value)
    return Secret(name, value)


# -- services, tasks, containers -------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One running task of a service: its container and its address on ``network``."""

    id: str
    slot: int
    container: str
    address: str
    running_since: float


def running_tasks(service: str, network: str) -> list[Task]:
    """Tasks of ``service`` that are running and meant to run, with their address on ``network``."""
    ids = docker_out(
        "service", "ps", service, "--quiet", "--no-trunc", "--filter", "desired-state=running"
    ).split()
    tasks = []
    for info in inspect(*ids):
        if info["Status"]["State"] != "running" or info["DesiredState"] != "running":
            continue
        addresses = [
            address.split("/")[0]
            for attachment in info.get("NetworksAttachments") or []
            if attachment["Network"]["Spec"]["Name"] == network
            for address in attachment.get("Addresses") or []
        ]
        container = info["Status"].get("ContainerStatus", {}).get("ContainerID", "")
        if addresses and container:
            since = docker_time(info["Status"]["Timestamp"])
            tasks.append(Task(info["ID"], int(info.get("Slot", 0)), container, addresses[0], since))
    return sorted(tasks, key=lambda task: task.slot)


def container_exec(
    container: str, *argv: str, timeout: float = 30.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside ``container`` (as the image's user)."""
    return docker("exec", container, *argv, timeout=timeout, check=check)


_RESOLVE = (
    "import socket, sys\n"
    "try:\n"
    "    infos = socket.getaddrinfo(sys.argv[1], None, proto=socket.IPPROTO_TCP)\n"
    "except socket.gaierror:\n"
    "    infos = []\n"
    "print(' '.join(sorted({info[4][0] for info in infos})))\n"
)


def resolve_in(container: str, name: str) -> set[str]:
    """The addresses ``name`` resolves to inside ``container`` (Swarm's embedded DNS)."""
    return set(container_exec(container, "python3", "-c", _RESOLVE, name).stdout.split())


def container_finished_at(container: str) -> float | None:
    """When ``container`` stopped, as a ``time.time()`` value (None while it runs or if gone)."""
    proc = docker("inspect", "--format", "{{.State.Running}} {{.State.FinishedAt}}", container,
                  check=False)
    if proc.returncode != 0:
        return None
    running, finished = proc.stdout.split()
    if running == "true":
        return None
    return docker_time(finished)


def docker_time(text: str) -> float:
    """Seconds since the epoch of a Docker RFC 3339 timestamp with nanoseconds."""
    stamp, _, fraction = text.rstrip("Z").partition(".")
    whole = datetime.fromisoformat(stamp + "+00:00").timestamp()
    return whole + (float("0." + fraction) if fraction else 0.0)


class ContainerEvents:
    """``docker events`` for containers, read in the background: when each container started
    and died, by the engine's clock (``time.time()`` values; engine and tests share the host)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            ["docker", "events", "--filter", "type=container", "--format",
             "{{.Status}} {{.Actor.ID}} {{.TimeNano}}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            parts = line.split()
            if len(parts) == 3 and parts[2].isdigit():
                with self._lock:
                    self._seen.setdefault((parts[0], parts[1]), int(parts[2]) / 1e9)

    def when(self, status: str, container: str, timeout: float = 30.0) -> float:
        """When ``container`` (full id) had event ``status`` (``start``, ``die``...)."""

        def seen() -> float | None:
            with self._lock:
                return self._seen.get((status, container))

        return wait_until(seen, timeout=timeout, what=f"event {status} of {container}")

    def close(self) -> None:
        """Stop reading events."""
        self._proc.terminate()
        self._proc.wait(timeout=10)
        self._thread.join(timeout=10)


@contextlib.contextmanager
def container_events() -> Iterator[ContainerEvents]:
    """:class:`ContainerEvents` for the duration of the block."""
    events = ContainerEvents()
    try:
        yield events
    finally:
        events.close()


@dataclass(frozen=True)
class ContainerErlRuntime(ErlRuntime):
    """The ``erl``/``elixir`` of a running container, driven with ``docker exec --interactive``
    (pass it to ``tests.support.erlang.start_peer``)."""

    container: str = ""

    def argv(self, tool: str, *args: str) -> list[str]:
        return ["docker", "exec", "--interactive", self.container, tool, *args]


# -- stacks ----------------------------------------------------------------------------------


@dataclass
class Stack:
    """A stack deployed from ``files`` (later files override earlier ones) under ``name``."""

    name: str
    files: tuple[Path, ...] = (STACK_FILE,)
    env: dict[str, str] = field(default_factory=dict)
    deployed: bool = False

    def service(self, short: str = "cluster_demo") -> str:
        """Full service name: ``<stack>_<service>``."""
        return f"{self.name}_{short}"

    def network(self, short: str = "cluster") -> str:
        """Full network name: ``<stack>_<network>``."""
        return f"{self.name}_{short}"

    def deploy(self) -> None:
        """``docker stack deploy`` with ``env`` added to the environment (compose variables)."""
        args = ["stack", "deploy"]
        for path in self.files:
            args += ["--compose-file", str(path)]
        proc = subprocess.run(
            ["docker", *args, self.name], capture_output=True, text=True, timeout=120,
            env={**os.environ, **self.env}, check=False,
        )
        self.deployed = True
        if proc.returncode != 0:
            raise DockerError(f"stack deploy {self.name} failed: {proc.stderr.strip()}")

    def scale(self, replicas: int, short: str = "cluster_demo") -> None:
        """``docker service scale`` without waiting for convergence."""
        docker("service", "scale", "--detach", f"{self.service(short)}={replicas}", timeout=60)

    def tasks(self, short: str = "cluster_demo", network: str = "cluster") -> list[Task]:
        """Running tasks of one of the stack's services."""
        return running_tasks(self.service(short), self.network(network))

    def wait_tasks(
        self, replicas: int, *, timeout: float, short: str = "cluster_demo"
    ) -> list[Task]:
        """Wait until exactly ``replicas`` tasks run (and are healthy, since Swarm only reports a
        task with a HEALTHCHECK as running once healthy)."""

        def settled() -> list[Task] | None:
            tasks = self.tasks(short)
            return tasks if len(tasks) == replicas else None

        try:
            return wait_until(
                settled, timeout=timeout, what=f"{replicas} running tasks of {self.service(short)}"
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnostics(short)}") from None

    def diagnostics(self, short: str = "cluster_demo") -> str:
        """Task states and errors, and the last log lines of a service (for failure messages)."""
        service = self.service(short)
        states = docker(
            "service", "ps", service, "--no-trunc", "--format",
            "{{.Name}} {{.DesiredState}} {{.CurrentState}} {{.Error}}", check=False,
        )
        logs = docker("service", "logs", "--raw", "--tail", "30", service, check=False, timeout=30)
        return (
            f"tasks of {service}:\n{states.stdout}{states.stderr}"
            f"last log lines:\n{logs.stdout[-4000:]}{logs.stderr[-4000:]}"
        )

    def leftovers(self) -> dict[str, list[str]]:
        """Objects labelled with this stack that still exist, by kind (empty lists when clean)."""
        label = f"label={STACK_LABEL}={self.name}"
        return {
            "services": docker_out("service", "ls", "--quiet", "--filter", label).split(),
            "containers": docker_out("ps", "--all", "--quiet", "--filter", label).split(),
            "networks": docker_out("network", "ls", "--quiet", "--filter", label).split(),
            "configs": docker_out("config", "ls", "--quiet", "--filter", label).split(),
            "secrets": docker_out("secret", "ls", "--quiet", "--filter", label).split(),
        }

    def remove(self, timeout: float = 90.0) -> None:
        """``docker stack rm`` and wait until nothing labelled with the stack is left."""
        if not self.deployed:
            return
        docker("stack", "rm", self.name, timeout=120, check=False)
        wait_until(
            lambda: not any(self.leftovers().values()), timeout=timeout,
            what=f"stack {self.name} to be gone", interval=0.5,
        )
        self.deployed = False


def unique_stack_name(prefix: str = "bl") -> str:
    """A stack name unlikely to clash with anything on the engine (short: names end up in DNS)."""
    return f"{prefix}{secrets.token_hex(3)}"


@contextlib.contextmanager
def detached_container(
    image: str, *args: str, options: tuple[str, ...] = (), network: str | None = None
) -> Iterator[str]:
    """A ``docker run --detach [options] image args`` container, removed (forcibly) afterwards."""
    name = unique_stack_name("blc")
    run = ["run", "--detach", "--name", name, *options]
    if network is not None:
        run += ["--network", network]
    docker(*run, image, *args, timeout=60)
    try:
        yield name
    finally:
        docker("rm", "--force", name, check=False, timeout=60)


@contextlib.contextmanager
def swarm_service(
    image: str, *args: str, network: str, options: tuple[str, ...] = (), timeout: float = 90.0
) -> Iterator[Task]:
    """A one-replica service ``image args`` on ``network`` (``options`` go to ``docker service
    create``, e.g. ``--secret``), for a container that needs what only services get (secrets).
    Yields its running task; the service is removed afterwards, and its container waited for."""
    name = unique_stack_name("bls")
    docker("service", "create", "--detach", "--name", name, "--network", network,
           "--restart-condition", "none", "--stop-signal", "SIGKILL", *options, image, *args,
           timeout=60)
    label = f"label=com.docker.swarm.service.name={name}"
    try:
        def started() -> Task | None:
            tasks = running_tasks(name, network)
            return tasks[0] if tasks else None

        yield wait_until(started, timeout=timeout, what=f"the task of service {name}")
    finally:
        docker("service", "rm", name, check=False, timeout=60)
        wait_until(
            lambda: not docker_out("ps", "--all", "--quiet", "--filter", label),
            timeout=timeout, what=f"the container of service {name} to be gone", interval=0.5,
        )


def container_address(container: str, network: str) -> str:
    """The address of ``container`` on ``network`` (read from ``docker inspect``)."""
    info = inspect(container)[0]
    address: str = info["NetworkSettings"]["Networks"][network]["IPAddress"]
    return address


# -- pytest fixtures (re-exported by the conftest.py of the suites using Docker) -------------


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A running Docker engine for the session (started and stopped here if none ran)."""
    engine = DockerEngine.ensure()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def swarm(docker_engine: DockerEngine) -> Iterator[Swarm]:
    """The engine in swarm mode for the session (left afterwards only if created here)."""
    current = Swarm.ensure()
    try:
        yield current
    finally:
        current.leave()


@pytest.fixture(scope="session")
def base_images(docker_engine: DockerEngine) -> Iterator[dict[str, Future[str]]]:
    """The local base images by tag, built (when absent) concurrently in the background:
    debootstrap mostly downloads and unpacks, so two builds overlap well."""
    with ThreadPoolExecutor(len(BASE_IMAGES), thread_name_prefix="base-image") as pool:
        yield {tag: pool.submit(build_base_image, tag, packages)
               for tag, packages in BASE_IMAGES.items()}


@pytest.fixture(scope="session")
def python_base_image(base_images: dict[str, Future[str]]) -> str:
    """The local Debian base image with python3 (debootstrap, cached)."""
    return base_images[PYTHON_BASE].result(timeout=BASE_BUILD_TIMEOUT)


@pytest.fixture(scope="session")
def elixir_base_image(base_images: dict[str, Future[str]]) -> str:
    """The local Debian base image with Debian's elixir and erlang (debootstrap, cached)."""
    return base_images[ELIXIR_BASE].result(timeout=BASE_BUILD_TIMEOUT)


@pytest.fixture(scope="session")
def beamlink_image(python_base_image: str) -> str:
    """The project image built from the working tree on the local base."""
    return build_beamlink_image(TEST_IMAGE, python_base_image)


@pytest.fixture
def cookie_secret(swarm: Swarm) -> Iterator[Secret]:
    """A swarm secret holding a random cookie, removed after the test."""
    secret = create_secret()
    try:
        yield secret
    finally:
        docker("secret", "rm", secret.name, check=False)


@pytest.fixture
def make_stack(swarm: Swarm) -> Iterator[Callable[..., Stack]]:
    """Factory of :class:`Stack` objects with fresh names; any still deployed is removed after
    the test. Arguments are those of :class:`Stack` after ``name``."""
    made: list[Stack] = []

    def make(*files: Path, env: dict[str, str] | None = None) -> Stack:
        stack = Stack(unique_stack_name(), files or (STACK_FILE,), dict(env or {}))
        made.append(stack)
        return stack

    try:
        yield make
    finally:
        for stack in made:
            stack.remove()
