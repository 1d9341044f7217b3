"""Fixtures of the cluster tests: a real dnsmasq server, a DNS proxy that fails chosen record types,
and a private real EPMD."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.support.dns_proxy import dns_proxy_factory
from tests.support.dnsmasq import dnsmasq_factory
from tests.support.erlang import epmd_running, free_port
from tests.support.require import require_tool

__all__ = ["dns_proxy_factory", "dnsmasq_factory", "private_epmd"]


@pytest.fixture
def private_epmd() -> Iterator[int]:
    """Debian's ``epmd`` on a free port of 127.0.0.1 (foreground, killed at teardown)."""
    binary = require_tool("epmd")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-port", str(port), "-address", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not epmd_running(port):
            assert proc.poll() is None, "epmd exited"
            assert time.monotonic() < deadline, "epmd did not start"
            time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait(10)
