"""Swarm joins and leaves: the project's stack against a BEAM reference stack, in one run.

Both stacks run in the same one-node Docker Swarm, side by side, with a 5 s DNS poll: the project's
``deploy/swarm/stack.yml`` with the image built from the working tree, and ``bench/beam_ref``
(Debian's Erlang in a debootstrap-built base image, ``dns_poll.erl``: a libcluster-DNSPoll-style
loop connecting ``app@<ip>`` for every ``tasks.<service>`` address). For each stack in turn:

  scale-up    ``docker service scale`` 2 -> 5 until ``tasks.<service>`` lists 5 and they form a
              full mesh;
  scale-down  5 -> 3 until it lists 3 that list exactly each other;
  kill        ``docker kill`` of one task until its replacement is listed and in the full mesh.

Seconds run from the command to the first observation of the result. Observation is made from
inside Docker only: an Erlang hidden node (``beam_ref/observer.erl``) in a container attached to
both overlay networks asks every listed node for ``erlang:nodes()`` every ~0.1 s; the host never
connects to a container. Everything started is removed at the end (images stay cached).

    python3 bench/bench_swarm.py [--rounds N] [--image TAG]   # as root (dockerd started if needed)

Stack and secret names are unique per run. The project image is tagged ``--image``, by default
``BEAMLINK_TEST_IMAGE`` with ``-bench`` appended when that is set (as for the Swarm tests: two
trees benchmarked on one engine each set their own), else ``beamlink/cluster_demo:bench``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.docker import (  # noqa: E402
    PYTHON_BASE,
    PYTHON_BASE_PACKAGES,
    STACK_FILE,
    DockerEngine,
    Stack,
    Swarm,
    build_base_image,
    build_beamlink_image,
    container_address,
    create_secret,
    detached_container,
    docker,
    unique_stack_name,
)

REF_DIR = Path(__file__).resolve().parent / "beam_ref"
ERLANG_BASE = "beamlink-base/erlang:bookworm"
REF_IMAGE = "beamlink-bench/beam-ref:latest"
BEAMLINK_IMAGE = (f"{os.environ['BEAMLINK_TEST_IMAGE']}-bench" if os.environ.get("BEAMLINK_TEST_IMAGE")
                  else "beamlink/cluster_demo:bench")
STEP_TIMEOUT = 120.0
SETTLE = 6.0  # seconds between steps: longer than one poll interval


Snapshot = tuple[float, dict[str, str | None]]  # (time, {address: its node list or None})


@dataclass
class Measured:
    """One stack under test: its stack, service, node basename and what the observer saw."""

    label: str
    stack: Stack
    short: str
    basename: str
    snapshots: list[Snapshot] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return self.stack.service(self.short)

    def meshed(self, lists: dict[str, str | None], replicas: int) -> bool:
        """``replicas`` addresses listed, each node listing exactly the others."""
        if len(lists) != replicas:
            return False
        for ip, listed in lists.items():
            others = {f"{self.basename}@{other}" for other in lists if other != ip}
            if listed is None or set(filter(None, listed.split(","))) != others:
                return False
        return True

    def wait(self, since: float, replicas: int, *, broken_first: bool = False) -> float:
        """Seconds from ``since`` to the first snapshot after it showing a mesh of ``replicas``
        (with ``broken_first``: after a snapshot that did not show one, e.g. after a kill)."""
        deadline = time.time() + STEP_TIMEOUT
        while time.time() < deadline:
            with self.lock:
                later = [snap for snap in self.snapshots if snap[0] > since]
            broken = not broken_first
            for at, lists in later:
                meshed = self.meshed(lists, replicas)
                if meshed and broken:
                    return at - since
                broken = broken or not meshed
            time.sleep(0.05)
        last = self.snapshots[-1] if self.snapshots else None
        raise TimeoutError(f"{self.label}: no mesh of {replicas} after {STEP_TIMEOUT:g} s: "
                           f"{last}\n{self.stack.diagnostics(self.short)}")

    def record(self, step: str, seconds: float) -> None:
        self.seconds.setdefault(step, []).append(seconds)
        print(f"  {self.label:<9} {step:<11} {seconds:6.2f} s", flush=True)


class Observer:
    """The hidden Erlang observer node (``docker exec`` into its container) and its reader."""

    def __init__(self, container: str, cookie: str, measured: list[Measured]) -> None:
        self.by_service = {m.service: m for m in measured}
        name = f"observer@{container_address(container, measured[0].stack.network())}"
        args = [f"{m.service}/{m.basename}" for m in measured]
        self.proc = subprocess.Popen(
            ["docker", "exec", "--interactive", container, "erl", "-noshell", "-hidden",
             "-name", name, "-setcookie", cookie, "-pa", "/opt/ref",
             "-run", "observer", "start", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) < 3 or parts[0] != "SNAP" or parts[1] not in self.by_service:
                continue
            lists: dict[str, str | None] = {}
            for field_ in parts[3:]:
                ip, _, listed = field_.partition("=")
                lists[ip] = None if listed == "!" else listed
            measured = self.by_service[parts[1]]
            with measured.lock:
                measured.snapshots.append((int(parts[2]) / 1000, lists))

    def close(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def build_images(image: str) -> None:
    for tag, packages in ((PYTHON_BASE, PYTHON_BASE_PACKAGES), (ERLANG_BASE, "erlang-base")):
        build_base_image(tag, packages)
    build_beamlink_image(image, PYTHON_BASE)
    docker("build", "--quiet", "--build-arg", f"BASE_IMAGE={ERLANG_BASE}", "--tag", REF_IMAGE,
           str(REF_DIR), timeout=600)


def run_round(stacks: list[Measured]) -> None:
    for step, action in (
        ("scale-up", lambda m: scale(m, 2, 5)),
        ("scale-down", lambda m: scale(m, 5, 3)),
        ("kill", kill_one),
    ):
        for measured in stacks:
            measured.record(step, action(measured))
            time.sleep(SETTLE)


def scale(measured: Measured, before: int, after: int) -> float:
    measured.wait(0.0, before)
    started = time.time()
    measured.stack.scale(after, measured.short)
    return measured.wait(started, after)


def kill_one(measured: Measured) -> float:
    tasks = measured.stack.tasks(measured.short)
    measured.wait(0.0, len(tasks))
    started = time.time()
    docker("kill", tasks[0].container)
    return measured.wait(started, len(tasks), broken_first=True)


@contextlib.contextmanager
def deployed(stack: Stack) -> Iterator[Stack]:
    try:
        stack.deploy()
        yield stack
    finally:
        stack.remove(timeout=240)


def report(stacks: list[Measured]) -> None:
    project, reference = stacks
    print("\nseconds (median of rounds)      beamlink     BEAM   ratio (target <= 1.0x)")
    for step in ("scale-up", "scale-down", "kill"):
        ours = statistics.median(project.seconds[step])
        theirs = statistics.median(reference.seconds[step])
        print(f"  {step:<28} {ours:8.2f} {theirs:8.2f}   {ours / theirs:5.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="scale-up/down/kill rounds")
    parser.add_argument("--image", default=BEAMLINK_IMAGE,
                        help=f"tag of the project image built (default {BEAMLINK_IMAGE})")
    args = parser.parse_args(argv)
    engine = DockerEngine.ensure()
    swarm = Swarm.ensure()
    secret = create_secret("bench_cookie")
    try:
        build_images(args.image)
        env = {"COOKIE_SECRET": secret.name}
        ours = Stack(unique_stack_name("bl"), (STACK_FILE,), {**env, "BEAMLINK_IMAGE": args.image})
        theirs = Stack(unique_stack_name("ref"), (REF_DIR / "stack.yml",), {**env, "REF_IMAGE": REF_IMAGE})
        stacks = [Measured("beamlink", ours, "cluster_demo", "cluster_demo"),
                  Measured("BEAM", theirs, "app", "app")]
        with deployed(ours), deployed(theirs), detached_container(
            REF_IMAGE, "infinity", options=("--entrypoint", "sleep"), network=ours.network()
        ) as box:
            docker("network", "connect", theirs.network(), box)
            observer = Observer(box, secret.value, stacks)
            try:
                for measured in stacks:
                    measured.wait(0.0, 2)
                for number in range(args.rounds):
                    print(f"round {number + 1}", flush=True)
                    if number:
                        for measured in stacks:
                            measured.stack.scale(2, measured.short)
                        for measured in stacks:
                            measured.wait(time.time(), 2)
                        time.sleep(SETTLE)
                    run_round(stacks)
            finally:
                observer.close()
            report(stacks)
    finally:
        docker("secret", "rm", secret.name, check=False)
        swarm.leave()
        engine.stop()


if __name__ == "__main__":
    main()
