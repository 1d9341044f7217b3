"""HEALTHCHECK of the beamlink image: healthy once the node is registered in its local EPMD, and
while a ``NAME@auto`` node is still looking for its own address.

Healthy means "the node is up (or coming up)", never "the node is clustered": Docker Swarm puts a
task into ``tasks.<service>`` (and the service's virtual IP into DNS at all) only once it is
healthy, and ``beamlink start`` resolves ``cluster_demo@auto`` by finding its own address there.
So while no EPMD listens yet and the host is ``auto`` (no ``BEAMLINK_HOST``/``POD_IP``), the
check reports healthy: the task enters DNS, the node confirms its address and starts. Should the
address never be found, ``beamlink start`` gives up and the container exits. Once an EPMD
answers, the node must be registered there. With the host given (``BEAMLINK_HOST``, ``POD_IP``,
a fixed name) nothing waits for DNS, and only a registered node is healthy.

The node's name part comes from ``BEAMLINK_NODE`` or ``RELEASE_NODE`` (as for
``beamlink start``); without either, any registered node counts. Exit status 0 is healthy, 1
unhealthy (Docker's convention); the one output line lands in ``docker inspect``'s health log.

Speed and cost. A new task joins ``tasks.<service>`` only at its first healthy result, so the
image's HEALTHCHECK runs ``--watch 10`` every 100 ms: each check keeps looking (every 50 ms while
the node is not up) and reports a change from the last verdict at once (the first "healthy", the
first failure), an unchanged healthy verdict after 10 s and an unchanged failure after at most
``FAILING_WATCH`` (2 s). So a task is healthy within about 0.1 s of its node being up, three
failures in a row still take about 4 s, and a healthy node costs one check per ~10 s: each
check is a ``docker exec``, about 0.1 s of engine CPU plus this script's, which at one per 2 s
took a tenth of a core per replica. (Docker >= 25 has ``--start-interval`` for the first part;
this works with older engines too, such as the 20.10 of Debian bookworm.)
The last verdict is remembered in ``/tmp/beamlink-reported-healthy``. Kubernetes probes run it
without ``--watch``: one look, the probe's period does the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import time
from pathlib import Path

from beamlink.epmd.protocol import (
    EpmdError,
    NamesRequest,
    NamesResponse,
    NeedData,
    ResponseReader,
    encode_request,
)
from beamlink.settings import EPMD_PORT

TIMEOUT = 1.5
NAME_VARIABLES = ("BEAMLINK_NODE", "RELEASE_NODE")
HOST_VARIABLES = ("BEAMLINK_HOST", "POD_IP")
AUTO_HOST = "auto"
MARKER = Path("/tmp/beamlink-reported-healthy")
STARTING_STEP = 0.05  # seconds between looks while waiting for the node to come up
HEALTHY_STEP = 0.25  # seconds between looks while it stays healthy
FAILING_WATCH = 2.0  # longest watch of a node that stays unhealthy (or not yet up)


def configured_name() -> str | None:
    """The node name this container runs, from the environment, if set."""
    for variable in NAME_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    return None


def waits_for_dns() -> bool:
    """True when the node's host is ``auto`` and no variable gives it: the node finds its
    address in DNS, which lists the task only once it is healthy."""
    name = configured_name()
    if name is None or name.partition("@")[2] != AUTO_HOST:
        return False
    return not any(os.environ.get(variable, "").strip() for variable in HOST_VARIABLES)


def names(port: int) -> list[tuple[str, int]]:
    """NAMES from the EPMD on 127.0.0.1:``port``, over a blocking socket: the check is a short
    process per ``docker exec``, and asyncio would double what it costs to start."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        request = NamesRequest()
        sock.sendall(encode_request(request))
        reader = ResponseReader(request)
        while isinstance(event := reader.next_event(), NeedData):
            data = sock.recv(4096)
            if data:
                reader.feed(data)
            else:
                reader.feed_eof()
    assert isinstance(event, NamesResponse)
    return list(event.nodes)


def check() -> tuple[bool, str]:
    """One look at the local EPMD: ``(healthy, why)``."""
    port = int(EPMD_PORT.require().value)
    try:
        registered = names(port)
    except ConnectionRefusedError:
        if waits_for_dns():
            return True, "healthy: starting, no EPMD yet (the node is looking for its address in DNS)"
        return False, f"unhealthy: no EPMD at 127.0.0.1:{port} (connection refused)"
    except TimeoutError:
        return False, f"unhealthy: EPMD at 127.0.0.1:{port} did not answer within {TIMEOUT} s"
    except (OSError, EpmdError) as exc:
        return False, f"unhealthy: EPMD at 127.0.0.1:{port}: {exc}"
    name = configured_name()
    wanted = None if name is None else name.partition("@")[0]
    found = [node for node, _ in registered if wanted is None or node == wanted]
    if not found:
        return False, f"unhealthy: node {wanted or '(any)'} not registered; EPMD has {registered}"
    return True, f"healthy: {found[0]} registered"


def remember(marker: Path, healthy: bool) -> None:
    """Note the verdict Docker is told (without a writable /tmp every verdict is news)."""
    with contextlib.suppress(OSError):
        if healthy:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)


def watch(seconds: float, marker: Path) -> tuple[bool, str]:
    """The verdict to report after watching the node for up to ``seconds``.

    A verdict that differs from the last one reported is reported at once: the first "healthy"
    (so the task enters DNS right away), or the first failure. An unchanged verdict is reported
    at the end of the watch, which makes the watch the real interval between checks; a failing
    node is watched for at most ``FAILING_WATCH``, so failures in a row add up quickly.
    """
    started = time.monotonic()
    last = marker.exists()
    healthy, why = check()
    while healthy == last and time.monotonic() - started < (
        seconds if healthy else min(seconds, FAILING_WATCH)
    ):
        time.sleep(HEALTHY_STEP if healthy else STARTING_STEP)
        healthy, why = check()
    remember(marker, healthy)
    return healthy, why


def main(argv: list[str]) -> int:
    """Check the local EPMD (once, or watching with ``--watch SECONDS``); print the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--watch", type=float, default=0.0, metavar="SECONDS",
                        help="watch the node for up to SECONDS; report a change at once")
    parser.add_argument("--marker", type=Path, default=MARKER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.watch > 0:
        healthy, why = watch(args.watch, args.marker)
    else:
        healthy, why = check()
    print(why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
