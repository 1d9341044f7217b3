"""A real DNS server for tests: Debian's dnsmasq on 127.0.0.1:<free port>.

Records come from a hosts file (A and AAAA; ``set_hosts`` rewrites it and sends SIGHUP) and
``--srv-host`` options (SRV; fixed at start). Names under the ``local_domains`` are answered from
those records only (NXDOMAIN / NODATA otherwise), as an authoritative server would. With no
``local_domains`` the server is configured as many users' resolvers are (a hosts file, no
upstream, no ``--local``): it answers the records it has and REFUSES everything else, including
the AAAA query of a name that has only A records. ``stop`` and ``start`` simulate an outage; the
server is always stopped by the fixture at teardown.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import dns.exception
import dns.message
import dns.nameserver
import dns.query
import dns.resolver
import pytest

from tests.support.require import require_tool


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


class Dnsmasq:
    """One dnsmasq process serving the records it is given."""

    def __init__(
        self,
        binary: str,
        directory: Path,
        *,
        local_domains: Sequence[str],
        srv: Sequence[str] = (),
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.hosts_file = directory / "hosts"
        self.hosts_file.write_text("")
        self.hosts_file.chmod(0o644)
        self.local_domains = tuple(local_domains)
        self.srv = srv
        self.port = free_udp_tcp_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_hosts(self, records: Mapping[str, Sequence[str]]) -> None:
        """Serve exactly ``records`` (name -> addresses) from now on."""
        lines = [f"{ip} {name}" for name, ips in records.items() for ip in ips]
        tmp = self.hosts_file.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.chmod(0o644)
        tmp.replace(self.hosts_file)
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)
            self._wait_reloaded(records)

    def start(self) -> None:
        argv = [
            self.binary,
            "--no-daemon",
            f"--port={self.port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            f"--addn-hosts={self.hosts_file}",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--local-ttl=0",
            *(f"--local=/{domain}/" for domain in self.local_domains),
            *(f"--srv-host={record}" for record in self.srv),
        ]
        if os.geteuid() == 0:
            argv.append("--user=root")
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=(self.directory / "log").open("ab")
        )
        self._wait_ready()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def _resolver(self) -> dns.resolver.Resolver:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", self.port)]
        resolver.lifetime = 0.5
        resolver.cache = None
        return resolver

    def _wait_ready(self) -> None:
        """Until dnsmasq answers a query at all (NXDOMAIN and REFUSED are answers too)."""
        deadline = time.monotonic() + 10
        query = dns.message.make_query("probe.invalid", "A")
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.directory / "log").read_text()
                raise RuntimeError(f"dnsmasq exited: {log}")
            try:
                dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.5)
            except (dns.exception.DNSException, OSError):
                time.sleep(0.05)
            else:
                return
        raise RuntimeError("dnsmasq did not answer within 10 s")

    def _wait_reloaded(self, records: Mapping[str, Sequence[str]]) -> None:
        resolver = self._resolver()
        deadline = time.monotonic() + 10
        probe = next((name for name, ips in records.items() if ips), None)
        if probe is None:
            time.sleep(0.2)
            return
        rdtype = "A" if any("." in ip for ip in records[probe]) else "AAAA"
        expected = {ip for ip in records[probe] if ("." in ip) == (rdtype == "A")}
        while time.monotonic() < deadline:
            try:
                answer = {r.to_text() for r in resolver.resolve(probe, rdtype, tcp=True)}
            except Exception:
                answer = set()
            if answer == expected:
                return
            time.sleep(0.05)
        raise RuntimeError("dnsmasq did not reload its hosts file")


DnsmasqFactory = Callable[..., Dnsmasq]


@pytest.fixture
def dnsmasq_factory() -> Iterator[DnsmasqFactory]:
    """``factory(local_domains=[...], srv=[...])`` -> a started ``Dnsmasq``, stopped afterwards
    (``local_domains=[]``: a resolver with no authority, as users run it; see the module doc)."""
    binary = require_tool("dnsmasq")
    servers: list[Dnsmasq] = []
    with tempfile.TemporaryDirectory(prefix="beamlink-dnsmasq-") as tmp:
        Path(tmp).chmod(0o755)

        def factory(*, local_domains: Sequence[str], srv: Sequence[str] = ()) -> Dnsmasq:
            directory = Path(tmp, str(len(servers)))
            directory.mkdir()
            directory.chmod(0o755)
            server = Dnsmasq(binary, directory, local_domains=local_domains, srv=srv)
            servers.append(server)
            server.start()
            return server

        yield factory
        for server in servers:
            server.stop()
