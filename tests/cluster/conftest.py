"""Fixtures of the cluster tests: a real dnsmasq server, a DNS proxy that fails chosen record types,
and a private real EPMD."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dns_proxy import dns_proxy_factory
from tests.support.dnsmasq import dnsmasq_factory
from tests.support.erlang import real_epmd

__all__ = ["dns_proxy_factory", "dnsmasq_factory", "private_epmd"]


@pytest.fixture
def private_epmd() -> Iterator[int]:
    """Debian's ``epmd`` on a free port of 127.0.0.1 (``tests.support.erlang.real_epmd``)."""
    with real_epmd() as port:
        yield port
