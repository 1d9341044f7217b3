"""Hostile peers against a TLS distribution node, while an honest TLS peer keeps talking.

A client that completes TLS and then sends garbage, a TLS hello trickled at 1 byte/s (dropped at
the handshake timeout), a client without a certificate (refused), and plain bytes on the TLS port:
each is dropped with a log line saying why, and the honest connection never goes down.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from beamlink.cli.tls import TlsFiles, tls_init
from beamlink.connection import ConnectionManager, TlsConfig, load_optfile
from beamlink.distribution import control
from beamlink.etf import Atom, Pid
from tests.connection.recorder import Recorder
from tests.connection.test_manager import Cluster

pytestmark = pytest.mark.timeout(120)

HANDSHAKE_TIMEOUT = 3.0
TARGET = Atom("target@127.0.0.1")
HONEST = Atom("honest@127.0.0.1")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return tls_init(tmp_path_factory.mktemp("tls"), [str(TARGET), str(HONEST)])


@dataclass
class Setup:
    target: ConnectionManager
    port: int
    honest: ConnectionManager
    honest_rec: Recorder
    target_rec: Recorder
    tls: TlsConfig


@pytest.fixture
async def setup(certs: TlsFiles) -> AsyncIterator[Setup]:
    cluster = Cluster()
    tls = load_optfile(certs.optfile)
    target, target_rec = await cluster.node(str(TARGET), tls=tls,
                                            handshake_timeout=HANDSHAKE_TIMEOUT)
    honest, honest_rec = await cluster.node(str(HONEST), tls=tls)
    assert await honest.connect(str(TARGET))
    try:
        yield Setup(target, cluster.ports[TARGET], honest, honest_rec, target_rec, tls)
    finally:
        await cluster.close()


async def honest_traffic(s: Setup, count: int = 20) -> None:
    """Numbered messages from the honest peer, all delivered in order, and no nodedown."""
    to = Pid(TARGET, 1, 0, 1)
    before = len(s.target_rec.messages)
    for i in range(count):
        assert s.honest.send(TARGET, control.send(to), i)
        await asyncio.sleep(0.01)
    await s.target_rec.wait_for(lambda: len(s.target_rec.messages) >= before + count)
    assert [m for _, _, m in s.target_rec.messages[before:]] == list(range(count))
    assert [e for e in s.honest_rec.events if e[0] == "down"] == []


def client_context(certs: TlsFiles, *, with_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    if with_cert:
        ctx.load_cert_chain(str(certs.cert), str(certs.key))
    return ctx


async def closed_within(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True when the node closes the stream within ``timeout`` (reads and drops what comes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while loop.time() < deadline:
            chunk = await asyncio.wait_for(reader.read(4096), deadline - loop.time())
            if not chunk:
                return True
    except (ConnectionError, ssl.SSLError):
        return True
    except asyncio.TimeoutError:
        return False
    return False


async def test_garbage_after_the_tls_handshake_is_dropped(
    setup: Setup, certs: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", setup.port, ssl=client_context(certs), server_hostname="127.0.0.1"
        )
        writer.write(b"\x00\x00\x00\x05GARBAGE AFTER TLS" * 10)
        await writer.drain()
        traffic = asyncio.ensure_future(honest_traffic(setup))
        assert await closed_within(reader, 5.0)
        await traffic
        writer.close()
    assert "refused connection from unknown node" in caplog.text


async def test_tls_hello_trickled_at_one_byte_per_second_is_dropped_at_the_timeout(
    setup: Setup, certs: TlsFiles
) -> None:
    ctx = client_context(certs)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.port)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def trickle() -> None:
        for byte in hello:
            writer.write(bytes([byte]))
            await asyncio.sleep(1.0)

    sender = asyncio.ensure_future(trickle())
    traffic = asyncio.ensure_future(honest_traffic(setup))
    try:
        assert await closed_within(reader, HANDSHAKE_TIMEOUT + 5)
        took = loop.time() - start
        assert HANDSHAKE_TIMEOUT - 0.5 <= took <= HANDSHAKE_TIMEOUT + 4, took
    finally:
        sender.cancel()
        writer.close()
    await traffic
    assert setup.target.stats.handshake_failures.get(("in", "timeout")) == 1


async def test_client_without_certificate_is_refused(
    setup: Setup, certs: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", setup.port, ssl=client_context(certs, with_cert=False),
                server_hostname="127.0.0.1",
            )
        except (ssl.SSLError, ConnectionError):
            pass  # TLS 1.2: refused within the handshake
        else:  # TLS 1.3: the client finishes first; the server's alert follows
            writer.write(b"\x00\x00\x00\x01N")
            assert await closed_within(reader, 5.0)
            writer.close()
        await honest_traffic(setup)
    assert "sent no certificate" in caplog.text
    assert setup.target.stats.handshake_failures.get(("in", "tls")) == 1


async def test_plain_bytes_on_the_tls_port_are_refused_at_once(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        reader, writer = await asyncio.open_connection("127.0.0.1", setup.port)
        writer.write(b"\x00\x15N" + bytes(20))  # a plain send_name
        assert await closed_within(reader, 2.0)
        writer.close()
        await honest_traffic(setup)
    assert "does not speak TLS" in caplog.text
