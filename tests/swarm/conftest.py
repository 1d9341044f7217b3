"""Fixtures of the Swarm suites: the Docker harness of ``tests/support/docker.py``."""

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
