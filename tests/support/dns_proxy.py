"""A tiny real DNS server for tests: forwards every query to an upstream (a test dnsmasq) over
the same transport, except the record types in ``failing``, which it answers with ``rcode``
(SERVFAIL by default). Tests switch failures on and off mid-run, which dnsmasq cannot do.

It listens on 127.0.0.1:<free port> for UDP and TCP, each served by its own thread, so it never
depends on (or blocks) the event loop of the test that uses it.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterator

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.dnsmasq import free_udp_tcp_port

UPSTREAM_TIMEOUT = 2.0


class DnsProxy:
    """Forwards queries to ``127.0.0.1:upstream_port``; SERVFAILs (``rcode``) the ``failing`` types."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.failing: set[str] = set()
        self.rcode = dns.rcode.SERVFAIL
        self.port = free_udp_tcp_port()
        self._lock = threading.Lock()
        proxy = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = proxy.answer(data, tcp=False)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(UPSTREAM_TIMEOUT)
                try:
                    while True:
                        query, _ = dns.query.receive_tcp(sock, expiration=None)
                        reply = proxy.answer(query.to_wire(), tcp=True)
                        if reply is None:
                            return
                        dns.query.send_tcp(sock, reply)
                except (EOFError, OSError, dns.exception.DNSException):
                    return

        self._udp = socketserver.ThreadingUDPServer(("127.0.0.1", self.port), Udp)
        self._tcp = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Tcp)
        self._udp.daemon_threads = self._tcp.daemon_threads = True
        self._threads = [
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            for server in (self._udp, self._tcp)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def fail(self, *rdtypes: str) -> None:
        """From now on answer queries of ``rdtypes`` with ``rcode``; no types: forward all."""
        with self._lock:
            self.failing = set(rdtypes)

    def answer(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The reply to one query in wire format (None when the query or upstream is unusable)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        with self._lock:
            failing = {dns.rdatatype.from_text(t) for t in self.failing}
        if query.question and query.question[0].rdtype in failing:
            response = dns.message.make_response(query)
            response.set_rcode(self.rcode)
            return response.to_wire()
        send = dns.query.tcp if tcp else dns.query.udp
        try:
            upstream = send(query, "127.0.0.1", port=self.upstream_port, timeout=UPSTREAM_TIMEOUT)
        except (dns.exception.DNSException, OSError):
            return None
        return upstream.to_wire()

    def close(self) -> None:
        for server in (self._udp, self._tcp):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)


DnsProxyFactory = Callable[[int], DnsProxy]


@pytest.fixture
def dns_proxy_factory() -> Iterator[DnsProxyFactory]:
    """``factory(upstream_port)`` -> a running ``DnsProxy``, closed after the test."""
    proxies: list[DnsProxy] = []

    def factory(upstream_port: int) -> DnsProxy:
        proxy = DnsProxy(upstream_port)
        proxies.append(proxy)
        return proxy

    yield factory
    for proxy in proxies:
        proxy.close()
