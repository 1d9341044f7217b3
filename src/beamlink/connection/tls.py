"""TLS for distribution connections, done sans-I/O over memory BIOs (``ssl.SSLObject``).

Why not asyncio's ``ssl=`` transport: the loop watchdog writes ticks from its own thread while the
loop is stalled, and asyncio's SSL state belongs to the loop. Here `DistConnection` owns one
`TlsSession` and every byte in or out passes through it under the connection's write lock:
`receive` turns wire bytes into plaintext (running the TLS handshake first), `seal` turns
plaintext into whole TLS records, `data_to_send` hands out what TLS itself wants sent (handshake
messages, alerts, session tickets). A write that holds the lock therefore always puts whole records
on the socket, whoever makes it.

As in OTP's ``inet_tls_dist``, the distribution port speaks TLS from its first byte, the client
checks the server's certificate against the host part of the peer's node name (as a DNS name; an
IP host is also checked as an IP address), and the distribution handshake that follows uses 4-byte
length headers. `TlsConfig` carries the two sides' ``ssl.SSLContext`` objects; build it yourself
or read an OTP ``ssl_dist_optfile`` with `beamlink.connection.optfile.load_optfile`.

`TlsError` explains failures in words an operator can act on (`explain_ssl_error`): a peer that
speaks plain TCP, an unknown CA, an expired or wrong-name certificate, a missing client
certificate, no common TLS version.
"""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass

from beamlink.errors import RemoteProtocolError

__all__ = ["TlsConfig", "TlsError", "TlsSession", "explain_ssl_error", "looks_like_tls"]

READ_SIZE = 1 << 17


class TlsError(RemoteProtocolError):
    """A TLS handshake or record failed; the message says why and what to check."""


@dataclass(frozen=True)
class TlsConfig:
    """The TLS setup of a node: ``server`` for accepted connections, ``client`` for dialled ones.

    ``server_name``: what the client checks the server's certificate against. True (default, as
    OTP does): the host part of the peer's node name, also sent as SNI; a string: always that name;
    False: no SNI and no name check (the client context must then have ``check_hostname`` off).
    ``depth``: the longest certificate chain accepted below the trusted CA (OTP's ``depth``;
    None: OpenSSL's limit). Enforced on Python 3.13+ (``get_verified_chain``).
    """

    server: ssl.SSLContext
    client: ssl.SSLContext
    server_name: bool | str = True
    server_depth: int | None = None
    client_depth: int | None = None

    def __post_init__(self) -> None:
        if self.server_name is False and self.client.check_hostname:
            raise ValueError("server_name=False needs a client context with check_hostname off")

    def server_session(self) -> TlsSession:
        """The TLS state of one accepted connection."""
        return TlsSession(self.server, server_side=True, depth=self.server_depth)

    def client_session(self, peer_host: str) -> TlsSession:
        """The TLS state of one connection dialled to a node on ``peer_host``."""
        if self.server_name is True:
            name: str | None = peer_host
        else:
            name = self.server_name or None
        return TlsSession(self.client, server_side=False, server_hostname=name,
                          depth=self.client_depth)


def looks_like_tls(data: bytes) -> bool:
    """True when ``data`` starts like a TLS record (handshake or alert, protocol 3.x): what a TLS
    peer sends first, and never what starts a plain distribution handshake message."""
    return len(data) >= 2 and data[0] in (0x15, 0x16) and data[1] == 0x03


class TlsSession:
    """One connection's TLS state: wire bytes in and out, plaintext to and from the caller.

    Not thread-safe by itself: the caller serializes every call (`DistConnection` holds its lock).
    """

    __slots__ = ("_depth", "_in", "_obj", "_out", "established", "peer_closed", "server_side")

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        depth: int | None = None,
    ) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(
            self._in, self._out, server_side=server_side, server_hostname=server_hostname
        )
        self._depth = depth
        self.server_side = server_side
        self.established = False
        self.peer_closed = False

    def start(self) -> bytes:
        """Begin the TLS handshake; the bytes to send (a client's hello; nothing for a server)."""
        self._handshake()
        return self._out.read()

    def receive(self, data: bytes) -> bytes:
        """Feed wire bytes; returns the plaintext they completed (b"" while the TLS handshake
        runs). Check `established` and `data_to_send` afterwards. Raises `TlsError`."""
        self._in.write(data)
        if not self.established:
            self._handshake()
            if not self.established:
                return b""
        read = self._obj.read
        chunks: list[bytes] = []
        while True:
            try:
                chunk = read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
                break
            except ssl.SSLError as exc:
                raise TlsError(explain_ssl_error(exc, server_side=self.server_side)) from exc
            if not chunk:  # the peer's close_notify (ssl returns b"" for it)
                self.peer_closed = True
                break
            chunks.append(chunk)
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    def _handshake(self) -> None:
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLError as exc:
            raise TlsError(explain_ssl_error(exc, server_side=self.server_side)) from exc
        self._check_depth()
        self.established = True

    def _check_depth(self) -> None:
        if self._depth is None:
            return
        chain = getattr(self._obj, "get_verified_chain", None)
        if chain is None:
            return
        certs = chain()
        # OTP's depth counts intermediate CAs: 0 = the peer's certificate is signed by the root.
        if certs and len(certs) - 2 > self._depth:
            raise TlsError(
                f"TLS: the peer's certificate chain has {len(certs) - 2} intermediate CAs, more "
                f"than depth {self._depth} allows"
            )

    def seal(self, data: bytes) -> bytes:
        """``data`` as TLS records, with anything TLS had queued before them."""
        self._obj.write(data)
        return self._out.read()

    def data_to_send(self) -> bytes:
        """Wire bytes TLS wants sent now (handshake messages, alerts, tickets); b"" if none."""
        return self._out.read() if self._out.pending else b""

    def close_notify(self) -> bytes:
        """The close_notify alert to send before closing the socket (b"" if not established)."""
        if self.established:
            with contextlib.suppress(ssl.SSLError):  # wants the peer's close_notify: not waited
                self._obj.unwrap()
        return self._out.read()

    @property
    def version(self) -> str | None:
        """The negotiated protocol (``"TLSv1.3"``...) once established."""
        return self._obj.version()

    @property
    def cipher(self) -> str | None:
        found = self._obj.cipher()
        return None if found is None else found[0]


_REASONS = {
    "WRONG_VERSION_NUMBER": "the peer does not speak TLS: it looks like a plain TCP distribution "
    "node; start every node of the cluster with TLS (erl -proto_dist inet_tls -ssl_dist_optfile "
    "FILE, beamlink --ssl-dist-optfile FILE) or none",
    "HTTP_REQUEST": "the peer sent an HTTP request, not TLS",
    "UNKNOWN_PROTOCOL": "the peer does not speak TLS",
    "RECORD_LAYER_FAILURE": "the peer does not speak TLS",
    "PACKET_LENGTH_TOO_LONG": "the peer does not speak TLS",
    "TLSV1_ALERT_UNKNOWN_CA": "the peer does not trust our certificate: its cacertfile lacks the "
    "CA that signed our certfile",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the peer says our certificate has expired: renew our "
    "certfile",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the peer rejected our certificate (bad certificate; a wrong "
    "host name in it, or not valid for this use?)",
    "TLSV1_ALERT_ACCESS_DENIED": "the peer denied access to our certificate",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the peer ended the TLS handshake (no common cipher suite, or "
    "it rejected our certificate)",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the peer rejected our certificate (certificate unknown: a "
    "wrong host name in it, or not signed by a CA it trusts?)",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "the peer rejected our certificate (unsupported)",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the peer requires a client certificate: give the client "
    "section of our optfile a certfile and keyfile",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the peer sent no certificate and we require one "
    "(fail_if_no_peer_cert): give the peer's client section a certfile",
    "TLSV1_ALERT_PROTOCOL_VERSION": "no TLS version in common with the peer: check versions",
    "UNSUPPORTED_PROTOCOL": "no TLS version in common with the peer: check versions",
    "NO_PROTOCOLS_AVAILABLE": "no TLS version in common with the peer: check versions",
    "TLSV1_ALERT_INSUFFICIENT_SECURITY": "no cipher suite in common with the peer: check ciphers",
    "NO_SHARED_CIPHER": "no cipher suite in common with the peer: check ciphers",
    "UNEXPECTED_MESSAGE": "the peer broke the TLS protocol (unexpected message)",
}


def explain_ssl_error(exc: ssl.SSLError, *, server_side: bool) -> str:
    """What an ``ssl`` failure means for a distribution connection, and what to do."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or str(exc)
        lowered = detail.lower()
        who = "client" if server_side else "server"
        if "expired" in lowered:
            hint = f"the {who}'s certificate has expired: renew it"
        elif "not yet valid" in lowered:
            hint = f"the {who}'s certificate is not valid yet (check the clocks)"
        elif "mismatch" in lowered:
            hint = (f"the {who}'s certificate is not for the host in its node name: its "
                    "subjectAltName must hold that host (DNS:host, and IP:addr,DNS:addr for an IP)")
        elif "issuer" in lowered or "self-signed" in lowered or "self signed" in lowered:
            hint = (f"the {who}'s certificate is not signed by a CA in our cacertfile (unknown "
                    "CA): give every node the same CA")
        else:
            hint = f"the {who}'s certificate did not verify"
        return f"TLS: {hint} ({detail})"
    reason = exc.reason or ""
    known = _REASONS.get(reason)
    if known is None:
        return f"TLS: {exc}"
    return f"TLS: {known} ({reason})"
