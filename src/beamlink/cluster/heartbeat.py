"""Gossip heartbeat formats (sans-I/O): node name -> datagram -> node name, or a rejection.

Two formats:

``SealedHeartbeats`` (beamlink's own, the default)::

    MAGIC (b"BLG1") | nonce (12 random bytes) | ChaCha20-Poly1305(key, nonce, plaintext, aad=MAGIC)
    plaintext = sent_at (uint64 big-endian, ms since the epoch) | node name (UTF-8)

The key is HKDF-SHA256(secret, salt=SALT, info=INFO). A datagram is accepted only if it
authenticates, its timestamp lies within ``max_skew_ms`` of our clock and its nonce was not seen
within that window (replays are dropped). Nothing is deserialised: the name is UTF-8 text checked
against the node-name shape.

``LibclusterHeartbeats`` (``libcluster_compat``), libcluster's Gossip format::

    plain:      b"heartbeat::" | term_to_binary(%{node: node()})
    encrypted:  iv (16 random bytes) | AES-256-CBC(SHA-256(secret), iv, PKCS#7-padded plain)

It has no authentication (CBC, no MAC) and no replay protection; that is libcluster's design,
kept only for interoperability. The term is decoded with ``beamlink.etf`` only after a size cap,
with a depth cap, and only a one-entry map ``#{node => Atom}`` is accepted.

Every rejection is a ``HeartbeatRejected`` whose ``reason`` is one of ``REASONS``.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from collections import OrderedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from beamlink.errors import RemoteProtocolError
from beamlink.etf import Atom, DecodeError, decode, encode

MAX_DATAGRAM = 512
MAX_NODE_NAME = 255
REASONS = ("garbage", "auth", "stale", "replay", "oversize", "bad-name")

MAGIC = b"BLG1"
NONCE_SIZE = 12
TIMESTAMP = struct.Struct(">Q")
SALT = b"beamlink gossip v1"
INFO = b"heartbeat key"

LIBCLUSTER_PREFIX = b"heartbeat::"
AES_BLOCK = 16
LIBCLUSTER_MAX_TERM = MAX_NODE_NAME + 32


class HeartbeatRejected(RemoteProtocolError, ValueError):
    """A datagram that is not an acceptable heartbeat; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in REASONS, reason
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


def check_node_name(name: str) -> str:
    """``name`` if it has the shape ``alive@host`` with printable, non-space characters."""
    alive, sep, host = name.partition("@")
    if (
        not sep
        or not alive
        or not host
        or "@" in host
        or len(name.encode()) > MAX_NODE_NAME
        or not all(c.isprintable() and not c.isspace() for c in name)
    ):
        raise HeartbeatRejected("bad-name", repr(name[:80]))
    return name


class SealedHeartbeats:
    """beamlink's authenticated, encrypted, replay-protected heartbeats (see the module doc)."""

    def __init__(self, secret: str | bytes, *, max_skew_ms: int = 30_000) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=INFO).derive(raw)
        self._aead = ChaCha20Poly1305(key)
        self.max_skew_ms = max_skew_ms
        self._seen: OrderedDict[bytes, int] = OrderedDict()

    def seal(self, node: str, *, now_ms: int | None = None) -> bytes:
        sent_at = int(time.time() * 1000) if now_ms is None else now_ms
        nonce = os.urandom(NONCE_SIZE)
        plaintext = TIMESTAMP.pack(sent_at) + check_node_name(node).encode()
        return MAGIC + nonce + self._aead.encrypt(nonce, plaintext, MAGIC)

    def open(self, datagram: bytes, *, now_ms: int | None = None) -> str:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if len(datagram) > MAX_DATAGRAM:
            raise HeartbeatRejected("oversize", f"{len(datagram)} bytes")
        minimum = len(MAGIC) + NONCE_SIZE + TIMESTAMP.size + 16
        if len(datagram) <= minimum or not datagram.startswith(MAGIC):
            raise HeartbeatRejected("garbage", "not a beamlink heartbeat")
        nonce = datagram[len(MAGIC) : len(MAGIC) + NONCE_SIZE]
        try:
            plaintext = self._aead.decrypt(nonce, datagram[len(MAGIC) + NONCE_SIZE :], MAGIC)
        except InvalidTag:
            raise HeartbeatRejected("auth", "wrong secret or tampered") from None
        (sent_at,) = TIMESTAMP.unpack_from(plaintext)
        if abs(now - sent_at) > self.max_skew_ms:
            raise HeartbeatRejected("stale", f"sent {now - sent_at} ms ago")
        self._forget(now)
        if nonce in self._seen:
            raise HeartbeatRejected("replay", "nonce already seen")
        self._seen[nonce] = sent_at
        try:
            name = plaintext[TIMESTAMP.size :].decode()
        except UnicodeDecodeError:
            raise HeartbeatRejected("bad-name", "not UTF-8") from None
        return check_node_name(name)

    def _forget(self, now: int) -> None:
        """Drop nonces older than the skew window (they would be rejected as stale anyway)."""
        while self._seen:
            nonce, sent_at = next(iter(self._seen.items()))
            if now - sent_at <= self.max_skew_ms and len(self._seen) < 100_000:
                break
            del self._seen[nonce]


class LibclusterHeartbeats:
    """libcluster's Gossip heartbeat, plain or AES-256-CBC (see the module doc)."""

    def __init__(self, secret: str | bytes | None) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        self._key = None if raw is None else hashlib.sha256(raw).digest()

    def seal(self, node: str) -> bytes:
        message = LIBCLUSTER_PREFIX + encode({Atom("node"): Atom(check_node_name(node))})
        if self._key is None:
            return message
        iv = os.urandom(AES_BLOCK)
        padder = padding.PKCS7(AES_BLOCK * 8).padder()
        padded = padder.update(message) + padder.finalize()
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(iv)).encryptor()
        return iv + encryptor.update(padded) + encryptor.finalize()

    def open(self, datagram: bytes) -> str:
        if len(datagram) > MAX_DATAGRAM:
            raise HeartbeatRejected("oversize", f"{len(datagram)} bytes")
        message = datagram if self._key is None else self._decrypt(datagram)
        if not message.startswith(LIBCLUSTER_PREFIX):
            raise HeartbeatRejected("garbage", "no heartbeat:: prefix")
        body = message[len(LIBCLUSTER_PREFIX) :]
        if len(body) > LIBCLUSTER_MAX_TERM:
            raise HeartbeatRejected("oversize", f"term of {len(body)} bytes")
        try:
            term = decode(body, max_depth=2, max_size=LIBCLUSTER_MAX_TERM)
        except DecodeError as exc:
            raise HeartbeatRejected("garbage", f"bad term: {exc}") from None
        if not (
            isinstance(term, dict)
            and len(term) == 1
            and isinstance(term.get(Atom("node")), Atom)
        ):
            raise HeartbeatRejected("garbage", "not %{node: atom}")
        return check_node_name(str(term[Atom("node")]))

    def _decrypt(self, datagram: bytes) -> bytes:
        assert self._key is not None
        body = len(datagram) - AES_BLOCK
        if body <= 0 or body % AES_BLOCK:
            raise HeartbeatRejected("garbage", "not iv + whole AES blocks")
        iv, ciphertext = datagram[:AES_BLOCK], datagram[AES_BLOCK:]
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(AES_BLOCK * 8).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise HeartbeatRejected("auth", "bad padding (wrong secret?)") from None


Heartbeats = SealedHeartbeats | LibclusterHeartbeats
