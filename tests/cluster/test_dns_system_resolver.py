"""The system resolver's first answers (``getaddrinfo``, before dnspython is loaded) against a real
dnsmasq that ``/etc/resolv.conf`` names: the same answers and the same failures as dnspython's.

Everything runs in a network namespace made by the test (``ip netns``): dnsmasq listens on its
127.0.0.1:53 and ``/etc/netns/NS/resolv.conf`` points the namespace's C library at it. The
lookups run in a Python child inside the namespace (``LOOKUPS``), once through ``getaddrinfo``
and once through dnspython, and print what each gave.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.require import missing, require_tool

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
LOCAL = "svc.test"  # dnsmasq is authoritative here: NXDOMAIN and NODATA
A_ONLY = f"tasks.a.{LOCAL}"
BOTH = f"tasks.both.{LOCAL}"
AAAA_ONLY = f"tasks.six.{LOCAL}"
MISSING = f"tasks.none.{LOCAL}"
REFUSING = "tasks.refusing"  # outside the local domain: dnsmasq REFUSES the family it lacks
HOSTS = {
    A_ONLY: ["10.9.0.2", "10.9.0.3"],
    BOTH: ["10.9.0.4", "fd00::4"],
    AAAA_ONLY: ["fd00::6"],
    REFUSING: ["10.9.0.7"],
}

LOOKUPS = """
import asyncio, json, sys
from beamlink.cluster.strategies import dns as d

async def main(names):
    out = {}
    for backend in ("getaddrinfo", "dnspython"):
        if backend == "dnspython":
            d.load_dnspython()
        resolver = d.Resolver((), 1500)
        assert resolver.uses_dnspython == (backend == "dnspython")
        for name in names:
            for family in d.FAMILIES:
                try:
                    got = sorted(await resolver.resolve(name, family))
                except d.DiscoveryError as exc:
                    got = "error: " + str(exc)
                out.setdefault(f"{name} {family}", {})[backend] = got
            try:
                got = sorted(await d.AddressLookup(resolver, name).addresses())
            except d.DiscoveryError as exc:
                got = "error: " + str(exc)
            out.setdefault(f"{name} both", {})[backend] = got
    print(json.dumps(out))

asyncio.run(main(sys.argv[1:]))
"""


SWITCH = """
import asyncio, json, sys
from beamlink.cluster.schema import DnsPollConfig
from beamlink.cluster.strategies import StrategyContext, create_strategy
from beamlink.cluster.strategies import dns as d

async def main(name):
    d.DNSPYTHON_DELAY = 0.2
    config = DnsPollConfig(query=name, node_basename="demo")
    strategy = create_strategy(config, StrategyContext("t", "demo@10.9.0.9", lambda event: None))
    await strategy.start()
    seen = []
    try:
        for _ in range(2):
            nodes = sorted((await strategy.discover()).nodes)
            seen.append([strategy.resolver.uses_dnspython, "dns.asyncresolver" in sys.modules, nodes])
            await asyncio.sleep(1.0)
    finally:
        await strategy.close()
    print(json.dumps(seen))

asyncio.run(main(sys.argv[1]))
"""


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def namespace() -> Iterator[str]:
    require_tool("ip")
    if os.geteuid() != 0:
        missing("network namespaces (and /etc/netns) need root")
    name = f"bldns{os.getpid() % 100000}"
    conf = Path("/etc/netns") / name
    try:
        assert run("ip", "netns", "add", name).returncode == 0
        assert run("ip", "-n", name, "link", "set", "lo", "up").returncode == 0
        conf.mkdir(parents=True)
        (conf / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        yield name
    finally:
        run("ip", "netns", "del", name)
        shutil.rmtree(conf, ignore_errors=True)


@pytest.fixture
def dnsmasq_in(namespace: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    binary = require_tool("dnsmasq")
    hosts = tmp_path / "hosts"
    hosts.write_text("".join(f"{ip} {name}\n" for name, ips in HOSTS.items() for ip in ips))
    hosts.chmod(0o644)
    tmp_path.chmod(0o755)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", namespace, binary, "--no-daemon", "--port=53",
         "--listen-address=127.0.0.1", "--bind-interfaces", f"--addn-hosts={hosts}",
         "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=", "--local-ttl=0",
         f"--local=/{LOCAL}/", "--user=root"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        probe = f"import socket; socket.getaddrinfo({A_ONLY!r}, None, socket.AF_INET)"
        while run("ip", "netns", "exec", namespace, sys.executable, "-c", probe).returncode:
            assert proc.poll() is None and time.monotonic() < deadline, "dnsmasq did not start"
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def in_namespace(namespace: str, script: str, *args: str) -> Any:
    """Run the Python ``script`` with ``args`` inside the namespace; its JSON output."""
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", script, *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def lookups(namespace: str, *names: str) -> dict[str, dict[str, object]]:
    result: dict[str, dict[str, object]] = in_namespace(namespace, LOOKUPS, *names)
    return result


def test_getaddrinfo_gives_what_dnspython_gives(
    namespace: str, dnsmasq_in: subprocess.Popen[bytes]
) -> None:
    seen = lookups(namespace, A_ONLY, BOTH, AAAA_ONLY, MISSING, REFUSING)
    answers = {key: by["getaddrinfo"] for key, by in seen.items()}
    assert answers == {
        f"{A_ONLY} A": HOSTS[A_ONLY], f"{A_ONLY} AAAA": [], f"{A_ONLY} both": HOSTS[A_ONLY],
        f"{BOTH} A": ["10.9.0.4"], f"{BOTH} AAAA": ["fd00::4"], f"{BOTH} both": HOSTS[BOTH],
        f"{AAAA_ONLY} A": [], f"{AAAA_ONLY} AAAA": ["fd00::6"], f"{AAAA_ONLY} both": ["fd00::6"],
        f"{MISSING} A": [], f"{MISSING} AAAA": [], f"{MISSING} both": [],
        f"{REFUSING} A": ["10.9.0.7"], f"{REFUSING} AAAA": answers[f"{REFUSING} AAAA"],
        f"{REFUSING} both": ["10.9.0.7"],
    }
    # REFUSED is a failure of that family (never "no records"), for both backends.
    assert str(answers[f"{REFUSING} AAAA"]).startswith("error: AAAA tasks.refusing")
    for key, by in seen.items():
        if isinstance(by["getaddrinfo"], str):
            assert str(by["dnspython"]).startswith("error:"), (key, by)
        else:
            assert by["dnspython"] == by["getaddrinfo"], (key, by)


def test_getaddrinfo_server_down_is_a_failure_of_every_family(namespace: str) -> None:
    seen = lookups(namespace, A_ONLY)
    for key, by in seen.items():
        for backend, got in by.items():
            assert str(got).startswith("error:"), (key, backend, got)


def test_dns_poll_switches_to_dnspython_after_its_delay(
    namespace: str, dnsmasq_in: subprocess.Popen[bytes]
) -> None:
    nodes = [f"demo@{ip}" for ip in HOSTS[A_ONLY]]
    # First poll: no dnspython imported at all; after DNSPYTHON_DELAY, dnspython answers.
    assert in_namespace(namespace, SWITCH, A_ONLY) == [[False, False, nodes], [True, True, nodes]]
