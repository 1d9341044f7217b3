"""TLS distribution against real OTP nodes started with ``-proto_dist inet_tls -ssl_dist_optfile``
(OTP 25 host, OTP 27 and OTP 29 chroots, Elixir): both directions, TLS 1.3 and 1.2, mutual
verification, one optfile shared by every node, messages and RPC across, ticks, and mismatches
that fail fast on both sides (plain vs TLS, unknown CA, wrong-name certificate).

The certificates live in a directory the runtime sees at the same path as the host (a chroot's
``/tmp/D`` is symlinked from the host's ``/tmp/D``), so the very same optfile is read by both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from beamlink.cli.tls import make_ca, make_cert, optfile_text, tls_init, write_pair
from beamlink.connection import load_optfile
from beamlink.etf import Atom
from beamlink.node import Node
from tests.node.interop import COOKIE, start_erl, term
from tests.support.erlang import RUNTIME_LABELS, ErlRuntime, free_port, runtime
from tests.support.fixtures import PeerFactory, _epmd_hygiene, peers

pytestmark = pytest.mark.interop
__all__ = ["_epmd_hygiene", "peers"]

@pytest.fixture(params=RUNTIME_LABELS)
def tls_runtime(request: pytest.FixtureRequest) -> ErlRuntime:
    return runtime(request.param)


@contextlib.contextmanager
def shared_dir(rt: ErlRuntime) -> Iterator[Path]:
    """A directory at the same path for the host and ``rt`` (a symlink on the host to the
    chroot's copy)."""
    with rt.tempdir() as (host_path, runtime_path):
        if rt.root is None:
            yield host_path
            return
        link = Path(runtime_path)
        link.symlink_to(host_path)
        try:
            yield link
        finally:
            link.unlink()


def tls_args(optfile: Path) -> tuple[str, ...]:
    return ("-proto_dist", "inet_tls", "-ssl_dist_optfile", str(optfile))


def with_versions(optfile: Path, versions: str) -> Path:
    """A copy of ``optfile`` allowing only ``versions`` (an Erlang list text)."""
    out = optfile.with_name(f"opt-{versions.strip('[]').replace(chr(39), '')}.conf")
    out.write_text(optfile.read_text().replace("['tlsv1.3', 'tlsv1.2']", versions))
    return out


@pytest.mark.parametrize("versions", ["['tlsv1.3']", "['tlsv1.2']"])
async def test_both_directions_messages_and_rpc(
    tls_runtime: ErlRuntime, peers: PeerFactory, versions: str
) -> None:
    label = tls_runtime.label
    with shared_dir(tls_runtime) as d:
        files = tls_init(d, ["py@127.0.0.1", "erl@127.0.0.1"])
        optfile = with_versions(files.optfile, versions)
        epmd = free_port()
        async with Node.start(
            f"py_{label}@127.0.0.1", COOKIE, epmd_port=epmd, listen_host="127.0.0.1",
            tls=load_optfile(optfile),
        ) as node:
            erl = await start_erl(peers, tls_runtime, f"erl_{label}@127.0.0.1", epmd_port=epmd,
                                  extra_args=tls_args(optfile))
            # Erlang dials us.
            assert await erl.aeval(f"net_adm:ping('{node.name}')") == "pong"
            conn = node.manager.connections()[0]
            assert conn.tls is not None
            expected = "TLSv1.3" if "1.3" in versions else "TLSv1.2"
            assert conn.tls.version == expected
            assert await term(erl, f"rpc:call('{node.name}', erlang, node, [])") == node.name
            # Erlang's side of the connection is TLS too (#net_address.protocol).
            info = f"{{ok, I}} = net_kernel:node_info('{node.name}'), "
            assert await term(erl, info + "element(4, proplists:get_value(address, I))") == \
                Atom("tls")
            assert await erl.aeval(f"erlang:disconnect_node('{node.name}')") == "true"
            for _ in range(100):
                if not node.nodes():
                    break
                await asyncio.sleep(0.05)
            # We dial Erlang.
            assert await node.ping(erl.name)
            assert node.manager.connections()[0].tls.version == expected  # type: ignore[union-attr]
            assert await node.rpc(erl.name, "erlang", "node", []) == Atom(erl.name)
            big = "x" * 300_000  # many TLS records, fragments of one message
            assert await node.rpc(erl.name, "erlang", "byte_size", [big.encode()]) == 300_000
            assert await term(erl, "nodes()") == [node.name]


async def test_elixir_over_tls(peers: PeerFactory) -> None:
    rt = runtime("otp27")
    with shared_dir(rt) as d:
        files = tls_init(d, ["py@127.0.0.1", "ex@127.0.0.1"])
        epmd = free_port()
        async with Node.start("py_ex@127.0.0.1", COOKIE, epmd_port=epmd,
                              listen_host="127.0.0.1", tls=load_optfile(files.optfile)) as node:
            ex = await start_erl(peers, rt, "ex_tls@127.0.0.1", epmd_port=epmd, elixir=True,
                                 extra_args=tls_args(files.optfile))
            assert await ex.aeval(f"Node.ping(:'{node.name}')") == "pong"
            assert await node.rpc(ex.name, "Elixir.String", "upcase", ["tls"]) == b"TLS"


async def test_ticks_keep_a_quiet_tls_connection_up(peers: PeerFactory) -> None:
    rt = runtime("otp25")
    with shared_dir(rt) as d:
        files = tls_init(d, ["py@127.0.0.1", "erl@127.0.0.1"])
        epmd = free_port()
        async with Node.start("py_tick@127.0.0.1", COOKIE, epmd_port=epmd, net_ticktime=4,
                              listen_host="127.0.0.1", tls=load_optfile(files.optfile)) as node:
            erl = await start_erl(peers, rt, "erl_tick@127.0.0.1", epmd_port=epmd,
                                  extra_args=(*tls_args(files.optfile),
                                              "-kernel", "net_ticktime", "4"))
            assert await node.ping(erl.name)
            await asyncio.sleep(9)  # more than two tick times of silence but for ticks
            assert node.nodes() == [Atom(erl.name)]
            assert await term(erl, "nodes()") == [node.name]


async def test_plain_erlang_dialling_a_tls_node_fails_fast_on_both_sides(
    peers: PeerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    rt = runtime("otp25")
    with shared_dir(rt) as d:
        files = tls_init(d, ["py@127.0.0.1"])
        epmd = free_port()
        async with Node.start("py_m1@127.0.0.1", COOKIE, epmd_port=epmd,
                              listen_host="127.0.0.1", tls=load_optfile(files.optfile)) as node:
            erl = await start_erl(peers, rt, "erl_m1@127.0.0.1", epmd_port=epmd)
            with caplog.at_level(logging.WARNING):
                start = asyncio.get_running_loop().time()
                assert await erl.aeval(f"net_adm:ping('{node.name}')") == "pang"
                assert asyncio.get_running_loop().time() - start < 5  # not a handshake timeout
            assert "does not speak TLS" in caplog.text


async def test_tls_erlang_dialling_a_plain_node_is_refused_saying_why(
    peers: PeerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    rt = runtime("otp25")
    with shared_dir(rt) as d:
        files = tls_init(d, ["erl@127.0.0.1"])
        epmd = free_port()
        async with Node.start("py_m2@127.0.0.1", COOKIE, epmd_port=epmd,
                              listen_host="127.0.0.1") as node:
            erl = await start_erl(peers, rt, "erl_m2@127.0.0.1", epmd_port=epmd,
                                  extra_args=tls_args(files.optfile))
            with caplog.at_level(logging.WARNING):
                assert await erl.aeval(f"net_adm:ping('{node.name}')") == "pang"
            assert "the peer speaks TLS but this node runs plain TCP" in caplog.text
            # And we, plain, dialling the TLS node: the peer answers in TLS, we say so.
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                assert not await node.ping(erl.name)
            assert "TLS" in caplog.text


@pytest.mark.parametrize("problem", ["unknown_ca", "wrong_name", "expired"])
async def test_bad_certificates_fail_on_both_sides(
    peers: PeerFactory, caplog: pytest.LogCaptureFixture, problem: str
) -> None:
    """Erlang holds a certificate we must refuse; each side says why in its log."""
    import datetime

    rt = runtime("otp25")
    with shared_dir(rt) as d:
        files = tls_init(d, ["py@127.0.0.1", "erl@127.0.0.1"])
        if problem == "unknown_ca":
            other_ca = make_ca("another CA")
            cert, key = make_cert(other_ca, "erl", ["127.0.0.1"])
        elif problem == "wrong_name":
            cert, key = make_cert(_ca(d), "erl", ["elsewhere.example"])
        else:
            cert, key = make_cert(
                _ca(d), "erl", ["127.0.0.1"], days=1,
                not_before=datetime.datetime.now(datetime.timezone.utc)
                - datetime.timedelta(days=3),
            )
        write_pair(cert, key, d / "bad.pem", d / "bad-key.pem")
        bad = d / "bad.conf"
        bad.write_text(optfile_text(files.ca, d / "bad.pem", d / "bad-key.pem"))
        epmd = free_port()
        async with Node.start("py_m3@127.0.0.1", COOKIE, epmd_port=epmd,
                              listen_host="127.0.0.1", tls=load_optfile(files.optfile)) as node:
            erl = await start_erl(peers, rt, "erl_m3@127.0.0.1", epmd_port=epmd,
                                  extra_args=tls_args(bad))
            with caplog.at_level(logging.WARNING):
                assert not await node.ping(erl.name)
            words = {"unknown_ca": "not signed by a CA in our cacertfile",
                     "wrong_name": "not for the host in its node name",
                     "expired": "has expired"}[problem]
            assert words in caplog.text
            # Erlang dialling us: its TLS client gets our alert. A server checks no client host
            # name (OTP's default too), so a wrong-name client certificate is accepted.
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                answer = await erl.aeval(f"net_adm:ping('{node.name}')")
            if problem == "wrong_name":
                assert answer == "pong"
            else:
                assert answer == "pang"
                assert words.replace("server", "client") in caplog.text or "TLS" in caplog.text


MATCH_ANY = "{customize_hostname_check, [{match_fun, fun(_, _) -> true end}]}"


async def test_match_any_fun_authenticates_by_ca_alone_both_ways(
    tls_runtime: ErlRuntime, peers: PeerFactory
) -> None:
    """The Swarm optfile's way of turning the host name check off (node names are task IPs the
    certificate cannot know), which OTP 25 honours too: both nodes hold a certificate for another
    name and still connect in both directions."""
    label = tls_runtime.label
    with shared_dir(tls_runtime) as d:
        files = tls_init(d, ["py@elsewhere.example"])
        text = files.optfile.read_text()
        client_at = text.index("{client")
        optfile = d / "match_any.conf"
        optfile.write_text(text[:client_at] + text[client_at:].replace(
            "{verify, verify_peer}", "{verify, verify_peer}, " + MATCH_ANY))
        epmd = free_port()
        async with Node.start(
            f"py_any_{label}@127.0.0.1", COOKIE, epmd_port=epmd, listen_host="127.0.0.1",
            tls=load_optfile(optfile),
        ) as node:
            erl = await start_erl(peers, tls_runtime, f"erl_any_{label}@127.0.0.1",
                                  epmd_port=epmd, extra_args=tls_args(optfile))
            assert await erl.aeval(f"net_adm:ping('{node.name}')") == "pong"
            assert await erl.aeval(f"erlang:disconnect_node('{node.name}')") == "true"
            for _ in range(100):
                if not node.nodes():
                    break
                await asyncio.sleep(0.05)
            assert await node.ping(erl.name)


def _ca(d: Path) -> tuple[object, object]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((d / "ca-key.pem").read_bytes(), None)
    return cert, key  # type: ignore[return-value]

