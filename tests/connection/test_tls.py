"""TLS between Python connection managers over real sockets: messages and fragments, TLS 1.2 and
1.3, mismatches that fail fast and are explained on both sides, the ssl_dist_optfile reader, and
the TLS session on its own (whole records, close_notify)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
from pathlib import Path

import pytest

from beamlink.cli.tls import TlsFiles, make_ca, make_cert, optfile_text, tls_init, write_pair
from beamlink.connection import ConnectionManager, OptfileError, TlsConfig, load_optfile
from beamlink.connection.tls import TlsSession, looks_like_tls
from beamlink.distribution import control
from beamlink.etf import Atom, Pid
from tests.connection.recorder import Recorder
from tests.connection.test_manager import Cluster, cluster
from tests.connection.test_watchdog import block_loop

__all__ = ["cluster"]

NODES = ["a@127.0.0.1", "b@127.0.0.1"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return tls_init(tmp_path_factory.mktemp("tls"), NODES)


def _variant(certs: TlsFiles, tmp_path: Path, name: str, old: str, new: str) -> Path:
    path = tmp_path / name
    text = certs.optfile.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize("versions", ["['tlsv1.3']", "['tlsv1.2']"])
async def test_messages_and_fragments_over_tls(
    cluster: Cluster, certs: TlsFiles, tmp_path: Path, versions: str
) -> None:
    tls = load_optfile(_variant(certs, tmp_path, "v.conf", "['tlsv1.3', 'tlsv1.2']", versions))
    a, rec_a = await cluster.node("a@127.0.0.1", tls=tls)
    b, rec_b = await cluster.node("b@127.0.0.1", tls=tls)
    assert await a.connect("b@127.0.0.1")
    conn = a.connections()[0]
    assert conn.tls is not None
    assert conn.tls.version == ("TLSv1.3" if "1.3" in versions else "TLSv1.2")
    to = Pid(Atom("b@127.0.0.1"), 1, 0, 2)
    payloads = [bytes([i]) * (i * 5000) for i in range(1, 60)]  # up to 300 kB: many records
    for payload in payloads:
        a.send(Atom("b@127.0.0.1"), control.send(to), payload)
    await rec_b.wait_for(lambda: len(rec_b.messages) == len(payloads))
    assert [m for _, _, m in rec_b.messages] == payloads
    b.send(Atom("a@127.0.0.1"), control.send(Pid(Atom("a@127.0.0.1"), 1, 0, 1)), "back")
    await rec_a.wait_for(lambda: rec_a.messages)
    assert rec_a.messages[0][2] == b"back"
    # Bytes on the wire are TLS records, larger than the plaintext.
    assert a.stats.traffic.bytes_out > sum(map(len, payloads))


async def test_ticks_over_tls(cluster: Cluster, certs: TlsFiles) -> None:
    tls = load_optfile(certs.optfile)
    a, rec_a = await cluster.node("a@127.0.0.1", tls=tls, net_ticktime=1.0)
    await cluster.node("b@127.0.0.1", tls=tls, net_ticktime=1.0)
    assert await a.connect("b@127.0.0.1")
    await asyncio.sleep(2.5)
    assert a.connected_nodes() == [Atom("b@127.0.0.1")]
    assert [e for e in rec_a.events if e[0] == "down"] == []


async def _refused(
    cluster: Cluster, caplog: pytest.LogCaptureFixture, tls_a: TlsConfig | None,
    tls_b: TlsConfig | None,
) -> str:
    a, _ = await cluster.node("a@127.0.0.1", tls=tls_a, handshake_timeout=5.0)
    await cluster.node("b@127.0.0.1", tls=tls_b, handshake_timeout=5.0)
    loop = asyncio.get_running_loop()
    with caplog.at_level(logging.WARNING):
        start = loop.time()
        assert not await a.connect("b@127.0.0.1")
        took = loop.time() - start
        # Both sides log; the refusing side may log just after the dialler gave up.
        for _ in range(50):
            if len(caplog.records) >= 2:
                break
            await asyncio.sleep(0.02)
    assert took < 2.5, f"took {took:.1f}s: a handshake timeout, not a fast failure"
    return caplog.text


async def test_plain_dialling_tls_fails_fast_on_both_sides(
    cluster: Cluster, certs: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    text = await _refused(cluster, caplog, None, load_optfile(certs.optfile))
    assert "connection to b@127.0.0.1" in text and "TLS" in text
    assert "refused connection" in text and "does not speak TLS" in text


async def test_tls_dialling_plain_fails_fast_on_both_sides(
    cluster: Cluster, certs: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    text = await _refused(cluster, caplog, load_optfile(certs.optfile), None)
    assert "the peer speaks TLS but this node runs plain TCP" in text
    assert "connection to b@127.0.0.1" in text and "TLS handshake" in text


def _bad_optfile(certs: TlsFiles, tmp_path: Path, problem: str) -> Path:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    ca_cert = x509.load_pem_x509_certificate(certs.ca.read_bytes())
    ca_key = serialization.load_pem_private_key((certs.ca.parent / "ca-key.pem").read_bytes(),
                                                None)
    ca = (ca_cert, ca_key)
    if problem == "unknown_ca":
        cert, key = make_cert(make_ca("another CA"), "b", ["127.0.0.1"])
    elif problem == "wrong_name":
        cert, key = make_cert(ca, "b", ["elsewhere.example"])  # type: ignore[arg-type]
    else:
        cert, key = make_cert(ca, "b", ["127.0.0.1"], days=1,  # type: ignore[arg-type]
                              not_before=datetime.datetime.now(datetime.timezone.utc)
                              - datetime.timedelta(days=3))
    write_pair(cert, key, tmp_path / "b.pem", tmp_path / "b-key.pem")
    path = tmp_path / "b.conf"
    path.write_text(optfile_text(certs.ca, tmp_path / "b.pem", tmp_path / "b-key.pem"))
    return path


@pytest.mark.parametrize(("problem", "words"), [
    ("unknown_ca", "not signed by a CA in our cacertfile"),
    ("wrong_name", "not for the host in its node name"),
    ("expired", "has expired"),
])
async def test_bad_server_certificate_is_refused_saying_why(
    cluster: Cluster, certs: TlsFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    problem: str, words: str,
) -> None:
    bad = load_optfile(_bad_optfile(certs, tmp_path, problem))
    text = await _refused(cluster, caplog, load_optfile(certs.optfile), bad)
    assert "connection to b@127.0.0.1 (127.0.0.1:" in text and words in text
    # The server hears why from the client's alert.
    assert "refused connection from unknown node" in text and "TLS: the peer" in text


async def test_client_without_certificate_is_refused(
    cluster: Cluster, certs: TlsFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = certs.optfile.read_text()
    client = text[text.index("{client"):]
    anonymous = client.replace(f'{{certfile, "{certs.cert}"}},', "").replace(
        f'{{keyfile, "{certs.key}"}},', "")
    path = tmp_path / "anon.conf"
    path.write_text(text[:text.index("{client")] + anonymous)
    caplog_text = await _refused(cluster, caplog, load_optfile(path), load_optfile(certs.optfile))
    assert "requires a client certificate" in caplog_text or "sent no certificate" in caplog_text
    assert "sent no certificate" in caplog_text


# -- the optfile reader ----------------------------------------------------------------------------


def test_unknown_option_names_the_option_and_the_file(tmp_path: Path, certs: TlsFiles) -> None:
    path = _variant(certs, tmp_path, "x.conf", "{verify, verify_peer}", "{reuse_sessions, true}")
    with pytest.raises(OptfileError, match=r"x\.conf: server option 'reuse_sessions' is not "
                                           "supported"):
        load_optfile(path)


@pytest.mark.parametrize(("text", "words"), [
    ("[{server, []}].", "no {client, [...]} entry"),
    ("{server, []}.", "must be a list"),
    ("[{server, [{certfile, 1}]}, {client, []}].", "server option 'certfile': expected a file"),
    ("[{server, []}, {client, [{fail_if_no_peer_cert, true}]}].",
     "client option 'fail_if_no_peer_cert' is not supported"),
    ("[{server, []}, {client, []}] garbage.", "not an Erlang term list"),
    ("[{server, []}, {client, [{verify, verify_peer}]}].", "server has no certfile"),
    ("[{server, [{versions, ['tlsv1.1']}]}, {client, []}].", "'tlsv1.1' is not supported"),
    ("[{server, [{customize_hostname_check, [{match_fun, x}]}]}, {client, []}].",
     "server option 'customize_hostname_check' is not supported"),
    ("[{server, []}, {client, [{customize_hostname_check, [{match_fun, fun(_, _) -> false end}]}]}].",
     "only [] or [{match_fun, fun(_, _) -> true end}]"),
    ("[{server, []}, {client, [{customize_hostname_check, [{match_fun, fun(A, B) -> A end}]}]}].",
     "unexpected 'A'"),
])
def test_bad_optfiles_say_what_is_wrong(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "opt.conf"
    path.write_text(text)
    with pytest.raises(OptfileError) as info:
        load_optfile(path)
    assert str(path) in str(info.value)
    assert words in str(info.value)


def test_every_documented_option_is_read(tmp_path: Path, certs: TlsFiles) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(certs.key.read_bytes(), None)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    ))
    path = tmp_path / "all.conf"
    common = (f'{{certfile, "{certs.cert}"}}, {{keyfile, <<"{locked}">>}}, '
              f'{{password, "s3cret"}}, {{cacertfile, "{certs.ca}"}}, {{verify, verify_peer}}, '
              "{versions, ['tlsv1.2', 'tlsv1.3']}, {secure_renegotiate, true}, {depth, 2}, "
              '{ciphers, ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"]}')
    path.write_text(f"%% every option\n[{{server, [{common}, {{fail_if_no_peer_cert, true}}]}},\n"
                    f" {{client, [{common}, {{server_name_indication, \"127.0.0.1\"}}, "
                    "{customize_hostname_check, []}]}].\n")
    config = load_optfile(path)
    assert config.server.verify_mode == ssl.CERT_REQUIRED
    assert config.client.check_hostname
    assert config.server_name == "127.0.0.1"
    assert config.client_depth == 2
    assert config.server.minimum_version == ssl.TLSVersion.TLSv1_2
    names = {c["name"] for c in config.server.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names == {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"}


def test_wrong_password_says_so(tmp_path: Path, certs: TlsFiles) -> None:
    path = _variant(certs, tmp_path, "pw.conf", "{verify, verify_peer}",
                    '{password, "nope"}, {verify, verify_peer}')
    # The key is not encrypted: OpenSSL ignores the password; an encrypted one with a wrong
    # password fails with a message naming both options.
    load_optfile(path)
    key = tmp_path / "enc.pem"
    from cryptography.hazmat.primitives import serialization

    k = serialization.load_pem_private_key(certs.key.read_bytes(), None)
    key.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.BestAvailableEncryption(b"right")))
    bad = path.read_text().replace(str(certs.key), str(key))
    path.write_text(bad)
    with pytest.raises(OptfileError, match=r"'certfile'.*'keyfile'.*wrong password"):
        load_optfile(path)


def _client_option(certs: TlsFiles, path: Path, option: str) -> Path:
    """``certs``'s optfile with ``option`` added to the client side, written to ``path``."""
    text = certs.optfile.read_text()
    client_at = text.index("{client")
    path.write_text(text[:client_at] + text[client_at:].replace(
        "{verify, verify_peer}", f"{{verify, verify_peer}}, {option}"))
    return path


async def test_sni_disable_skips_the_name_check(
    cluster: Cluster, certs: TlsFiles, tmp_path: Path
) -> None:
    bad = load_optfile(_bad_optfile(certs, tmp_path, "wrong_name"))
    relaxed = _client_option(certs, tmp_path / "relaxed.conf", "{server_name_indication, disable}")
    a, _ = await cluster.node("a@127.0.0.1", tls=load_optfile(relaxed))
    await cluster.node("b@127.0.0.1", tls=bad)
    assert await a.connect("b@127.0.0.1")


async def test_match_any_fun_skips_the_name_check(
    cluster: Cluster, certs: TlsFiles, tmp_path: Path
) -> None:
    bad = load_optfile(_bad_optfile(certs, tmp_path, "wrong_name"))
    relaxed = _client_option(
        certs, tmp_path / "match_any.conf",
        "\n    {customize_hostname_check, [{match_fun, fun(_, _) -> true end}]}",
    )
    config = load_optfile(relaxed)
    assert not config.client.check_hostname
    assert config.client.verify_mode == ssl.CERT_REQUIRED  # still authenticated by the CA
    a, _ = await cluster.node("a@127.0.0.1", tls=config)
    await cluster.node("b@127.0.0.1", tls=bad)
    assert await a.connect("b@127.0.0.1")


# -- the session alone ---------------------------------------------------------------------------


def test_session_pair_moves_large_data_in_whole_records(certs: TlsFiles) -> None:
    config = load_optfile(certs.optfile)
    client = config.client_session("127.0.0.1")
    server = config.server_session()
    wire = client.start()
    assert looks_like_tls(wire)
    for _ in range(10):
        server.receive(wire)
        back = server.data_to_send()
        client.receive(back)
        wire = client.data_to_send()
        if client.established and server.established and not wire:
            break
    assert client.established and server.established
    data = bytes(range(256)) * 4000
    sealed = client.seal(data)
    assert server.receive(sealed) == data
    # Record by record, the plaintext comes out in order, never part of a record early.
    got = bytearray()
    for i in range(0, len(sealed := client.seal(data)), 7001):
        got += server.receive(sealed[i:i + 7001])
    assert bytes(got) == data
    server.receive(client.close_notify())
    assert server.peer_closed


def test_plain_handshake_bytes_never_look_like_tls() -> None:
    from beamlink.distribution import flags
    from beamlink.distribution.handshake import Initiator

    hs = Initiator("a@h", "c", peer_name="b@h", flags=flags.advertised_flags(hidden=False),
                   creation=1)
    assert not looks_like_tls(hs.data_to_send())


def test_manager_uses_four_byte_handshake_headers_over_tls(certs: TlsFiles) -> None:
    async def resolve(peer: Atom) -> tuple[str, int]:
        raise AssertionError(peer)

    manager = ConnectionManager(local_name="a@h", cookie="c", creation=1, handler=Recorder(),
                                resolver=resolve, tls=load_optfile(certs.optfile))
    assert manager._header == 4


def test_tls_session_requires_server_name_consistency(certs: TlsFiles) -> None:
    config = load_optfile(certs.optfile)
    with pytest.raises(ValueError, match="check_hostname"):
        TlsConfig(server=config.server, client=config.client, server_name=False)
    assert isinstance(config.client_session("x"), TlsSession)


async def test_watchdog_ticks_over_tls_while_the_loop_is_stalled(
    cluster: Cluster, certs: TlsFiles
) -> None:
    """Ticks written by the watchdog thread are sealed TLS records between the loop's records:
    the peer decrypts them, and messages sent after the stall still arrive."""
    tls = load_optfile(certs.optfile)
    a, rec_a = await cluster.node("a@127.0.0.1", tls=tls, net_ticktime=2.0)
    b, rec_b = await cluster.node("b@127.0.0.1", tls=tls, net_ticktime=2.0)
    assert await a.connect("b@127.0.0.1")
    dog = a.watchdog
    assert dog is not None
    before = dog.stats.ticks
    (b_side,) = b.connections()
    read_before = b_side.traffic.bytes_in
    await block_loop(3.0)  # longer than net_ticktime: only the watchdog's ticks keep it up
    assert dog.stats.ticks - before >= 6
    a.send(Atom("b@127.0.0.1"), control.send(Pid(Atom("b@127.0.0.1"), 1, 0, 2)), "after")
    await rec_b.wait_for(lambda: rec_b.messages)
    assert rec_b.messages[-1][2] == b"after"  # a str travels as a binary
    assert b_side.traffic.bytes_in - read_before > 4 * 6  # records, larger than plain ticks
    await asyncio.sleep(2.5)
    assert a.connected_nodes() == [Atom("b@127.0.0.1")]
    assert [e for e in rec_a.events + rec_b.events if e[0] == "down"] == []
