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
"""

from __future__ import annotations

import asyncio
import os
import sys

from beamlink.epmd.client import EpmdUnavailable, names
from beamlink.epmd.protocol import EpmdError

TIMEOUT = 1.5
NAME_VARIABLES = ("BEAMLINK_NODE", "RELEASE_NODE")
HOST_VARIABLES = ("BEAMLINK_HOST", "POD_IP")
AUTO_HOST = "auto"


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


def main() -> int:
    """Check the local EPMD once; print why when unhealthy."""
    try:
        registered = asyncio.run(names("127.0.0.1", timeout=TIMEOUT))
    except EpmdUnavailable as exc:
        if isinstance(exc.__cause__, ConnectionRefusedError) and waits_for_dns():
            print("healthy: starting, no EPMD yet (the node is looking for its address in DNS)")
            return 0
        print(f"unhealthy: {exc}")
        return 1
    except (OSError, EpmdError) as exc:
        print(f"unhealthy: {exc}")
        return 1
    name = configured_name()
    wanted = None if name is None else name.partition("@")[0]
    found = [node for node, _ in registered if wanted is None or node == wanted]
    if not found:
        print(f"unhealthy: node {wanted or '(any)'} not registered; EPMD has {registered}")
        return 1
    print(f"healthy: {found[0]} registered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
