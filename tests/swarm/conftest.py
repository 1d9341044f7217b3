"""Fixtures of the Swarm suites: the Docker harness of ``tests/support/docker.py`` and the
timings the end-to-end tests print."""

from collections.abc import Iterator

import pytest

from tests.support.docker import (
    base_images,
    beamlink_image,
    cookie_secret,
    docker_engine,
    elixir_base_image,
    make_stack,
    python_base_image,
    swarm,
)
from tests.swarm.mesh import Timings

__all__ = [
    "base_images",
    "beamlink_image",
    "cookie_secret",
    "docker_engine",
    "elixir_base_image",
    "make_stack",
    "python_base_image",
    "swarm",
]


@pytest.fixture
def timings(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Iterator[Timings]:
    """Collects timings and prints them (uncaptured) when the test ends, pass or fail."""
    collected = Timings(request.node.name)
    yield collected
    with capsys.disabled():
        print("\n" + collected.report())
