"""Churn: ten nodes join and leave (gracefully and by SIGKILL) for 20 s while a stable pair talks.

Every node is its own OS process on its own 127.0.3.x address, in fixed-port mode, with a
``dns_poll`` topology on a real dnsmasq whose records follow the membership (rewritten and
SIGHUPed at every change). The two stable nodes stream numbered messages to each other the whole
time: none is lost, duplicated or reordered and their connection never drops. At the end every
survivor lists exactly the other survivors, the stable nodes hold as many file descriptors and
asyncio tasks as before the churn, and no node logged an ERROR line.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.robustness.node_process import NodeProcess
from tests.support.dnsmasq import Dnsmasq, DnsmasqFactory
from tests.support.erlang import free_port

pytestmark = pytest.mark.timeout(150)

COOKIE = "churn-cookie"
DOMAIN = "t_churn"
QUERY = f"tasks.{DOMAIN}"
POLLING_MS = 300
TICKTIME = 4.0
CHURN_SECONDS = 20.0
STABLE = ("churn@127.0.3.1", "churn@127.0.3.2")
CHURNERS = tuple(f"churn@127.0.3.{i}" for i in range(11, 21))

log = logging.getLogger(__name__)


class Membership:
    """The running node processes and the DNS records that announce them."""

    def __init__(self, dns: Dnsmasq, dist_port: int, tmp: Path) -> None:
        self.dns = dns
        self.dist_port = dist_port
        self.tmp = tmp
        self.running: dict[str, NodeProcess] = {}
        self.finished: list[NodeProcess] = []

    def publish(self) -> None:
        self.dns.set_hosts({QUERY: [name.partition("@")[2] for name in self.running]})

    async def add(self, *names: str) -> None:
        """Announce ``names`` in DNS and start their processes (concurrently)."""
        nodes = [self._node(name) for name in names]
        for node in nodes:
            self.running[node.name] = node
        self.publish()
        await asyncio.gather(*(node.start() for node in nodes))

    def _node(self, name: str) -> NodeProcess:
        return NodeProcess(
            {
                "name": name,
                "cookie": COOKIE,
                "dist_port": self.dist_port,
                "net_ticktime": TICKTIME,
                "topology": {
                    "strategy": "dns_poll",
                    "query": QUERY,
                    "node_basename": "churn",
                    "nameservers": [self.dns.address],
                    "polling_interval": POLLING_MS,
                    "connect_timeout": 2000,
                },
            },
            self.tmp / f"{name}.{len(self.finished)}.log",
        )

    async def leave(self, name: str) -> None:
        node = self.running.pop(name)
        self.publish()
        assert await node.terminate() == 0, node.log()[-2000:]
        self.finished.append(node)

    async def crash(self, name: str) -> None:
        node = self.running.pop(name)
        await node.kill()
        self.publish()
        self.finished.append(node)

    async def converged(self, timeout: float = 20.0) -> float:
        names = set(self.running)
        started = time.monotonic()
        while not all(n.nodes == frozenset(names - {name}) for name, n in self.running.items()):
            assert time.monotonic() - started < timeout, {
                name: sorted(n.nodes or ()) for name, n in self.running.items()
            }
            await asyncio.sleep(0.05)
        return time.monotonic() - started


@pytest.fixture
async def membership(dnsmasq_factory: DnsmasqFactory, tmp_path: Path) -> AsyncIterator[Membership]:
    dns = dnsmasq_factory(local_domains=[DOMAIN])
    group = Membership(dns, free_port(), tmp_path)
    try:
        yield group
    finally:
        for node in list(group.running.values()) + group.finished:
            if node.proc is not None:
                await node.kill()


async def test_churn_loses_nothing_between_the_stable_pair(membership: Membership) -> None:
    group = membership
    rng = random.Random(20261126)
    await group.add(*STABLE)
    await group.converged()
    first, second = (group.running[name] for name in STABLE)
    await first.tell(f"stream {STABLE[1]}")
    await second.tell(f"stream {STABLE[0]}")
    await asyncio.sleep(0.5)
    before = [await first.fds_and_tasks(), await second.fds_and_tasks()]
    await group.add(*CHURNERS)
    log.info("12 nodes converged in %.2f s", await group.converged())

    joins = leaves = crashes = 0

    def enough() -> bool:
        return joins >= 10 and leaves >= 3 and crashes >= 3

    # At least CHURN_SECONDS and at least the events asserted below: on a loaded machine each
    # start and stop takes longer, so the churn runs longer (bounded) rather than thinner.
    started = time.monotonic()
    while time.monotonic() - started < CHURN_SECONDS or (
        not enough() and time.monotonic() - started < 4 * CHURN_SECONDS
    ):
        up = [name for name in CHURNERS if name in group.running]
        down = [name for name in CHURNERS if name not in group.running]
        # Joins as likely as nodes are missing: about half of the churners stay up.
        if rng.random() < len(down) / len(CHURNERS):
            await group.add(rng.choice(down))
            joins += 1
        elif rng.random() < 0.5:
            await group.leave(rng.choice(up))
            leaves += 1
        else:
            await group.crash(rng.choice(up))
            crashes += 1
        await asyncio.sleep(rng.uniform(0.1, 0.5))
    log.info("churn: %d joins, %d graceful leaves, %d SIGKILLs", joins, leaves, crashes)
    assert enough(), (joins, leaves, crashes)

    took = await group.converged()
    log.info("survivors %s converged %.2f s after the churn", sorted(group.running), took)

    for name in [n for n in CHURNERS if n in group.running]:
        await group.leave(name)
    await group.converged()
    assert first.nodes == frozenset({STABLE[1]}) and second.nodes == frozenset({STABLE[0]})
    await asyncio.sleep(0.5)
    after = [await first.fds_and_tasks(), await second.fds_and_tasks()]
    log.info("stable pair fds/tasks before %s, after %s", before, after)
    for (fds_before, tasks_before), (fds_after, tasks_after) in zip(before, after, strict=True):
        assert fds_after <= fds_before + 1, "file descriptors leaked"
        assert tasks_after <= tasks_before + 1, "asyncio tasks leaked"

    sent = [await first.sent(), await second.sent()]
    await asyncio.sleep(0.5)
    got = [await first.received(), await second.received()]
    log.info("stable pair sent %s, received %s", sent, got)
    assert got[1][STABLE[0]] == (sent[0][STABLE[1]], 0), "first -> second: all, once, in order"
    assert got[0][STABLE[1]] == (sent[1][STABLE[0]], 0), "second -> first: all, once, in order"
    assert sent[0][STABLE[1]] > 1000
    for node, other in ((first, STABLE[1]), (second, STABLE[0])):
        lists = [nodes for _, nodes in node.history]
        joined = next(i for i, nodes in enumerate(lists) if other in nodes)
        assert all(other in nodes for nodes in lists[joined:]), "the stable link dropped"

    for node in list(group.running.values()) + group.finished:
        assert node.error_lines() == [], (node.name, node.error_lines())
    for name in STABLE:
        await group.leave(name)
