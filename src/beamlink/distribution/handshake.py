"""Sans-I/O state machines for the distribution handshake (both roles, versions 6 and 5).

Theory of operation (the h11 way): a handshake object never touches a socket. The caller feeds
received bytes with `receive_data`, which returns the events they produced, and writes whatever
`data_to_send` returns. Messages use 2-byte length framing (4-byte over TLS: OTP's
``inet_tls_dist`` runs the handshake on a ``{packet, 4}`` socket; ``header=4``); each is bounded by
`MAX_HANDSHAKE_MESSAGE`. Bytes after the last handshake message belong to the connection and are
kept in `trailing_data`.

Rule 1: anything the peer sends that breaks the protocol raises `HandshakeError` naming the state
and the reason; after it, `data_to_send` may still hold a final status message (``not_allowed``)
worth writing before closing. A handshake object that raised is finished.
Rule 2: decisions that need the node (is the peer already connected? who wins a simultaneous
connect?) are not taken here: the acceptor emits `PeerName` and waits for `decide`; the initiator
emits `AliveQuery` and waits for `answer_alive`.

Steps (dist_util.erl, erl_dist_protocol "Distribution Handshake"):
  initiator                                  acceptor
  send_name  'N' Flags:64 Creation:32 Nlen:16 Name   (or v5: 'n' Version:16 Flags:32 Name)
                                             recv_name -> PeerName -> decide(status)
                                             send_status 's' + ok | ok_simultaneous | nok |
                                               not_allowed | alive (then wait 'strue'/'sfalse')
                                             send_challenge 'N' Flags:64 Challenge:32
                                               Creation:32 Nlen:16 Name
  (v5 only) send_complement 'c' FlagsHigh:32 Creation:32
  send_challenge_reply 'r' Challenge:32 Digest:16
                                             send_challenge_ack 'a' Digest:16

Challenge reflection (issue 12): the digest MD5(cookie ++ challenge) names neither side, so an
endpoint we dial can hand us a challenge that some acceptor issued to it and replay our digest
there. OTP has no defence against this (dist_util:handshake_we_started computes the digest of
whatever challenge arrives). Here a node's acceptors remember every challenge they issued in the
last `REFLECTION_WINDOW` seconds (a `RecentChallenges` shared through ``issued_challenges``), and
the node's initiators refuse to answer one of them (code ``reflected``). This only catches
reflection back into the same node;
a challenge relayed from another node cannot be recognised, which is why names learnt from
unauthenticated sources must match an allow list, and why TLS distribution is the answer on
networks with untrusted hosts (see docs/robustness.md).

Names from the wire are checked before anything else uses them: UTF-8, at most 255 bytes,
exactly one ``@`` with non-empty parts, and no control or whitespace characters (they would
forge log lines).
"""

from __future__ import annotations

import hmac
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

from beamlink.distribution import flags as dflags
from beamlink.distribution.cookie import digest, new_challenge
from beamlink.errors import RemoteProtocolError

MAX_HANDSHAKE_MESSAGE = 2048
REFLECTION_WINDOW = 60.0  # seconds an issued challenge is remembered
MAX_NAME_BYTES = 255
DIGEST_SIZE = 16

TAG_NAME_V6 = ord("N")
TAG_NAME_V5 = ord("n")
TAG_STATUS = ord("s")
TAG_COMPLEMENT = ord("c")
TAG_REPLY = ord("r")
TAG_ACK = ord("a")
V5_VERSION = 5

_NAME_V6 = struct.Struct(">BQIH")  # 'N', Flags, Creation, Nlen
_NAME_V5 = struct.Struct(">BHI")  # 'n', Version, Flags
_CHALLENGE_V6 = struct.Struct(">BQIIH")  # 'N', Flags, Challenge, Creation, Nlen
_COMPLEMENT = struct.Struct(">BII")  # 'c', FlagsHigh, Creation
_REPLY = struct.Struct(">BI")  # 'r', Challenge (then Digest)
_LENGTHS = {2: struct.Struct(">H"), 4: struct.Struct(">I")}


class Status(str, Enum):
    """What the acceptor answers to a name (``send_status``)."""

    OK = "ok"
    OK_SIMULTANEOUS = "ok_simultaneous"
    NOK = "nok"
    NOT_ALLOWED = "not_allowed"
    ALIVE = "alive"


class HandshakeError(RemoteProtocolError):
    """The handshake failed in `state` for `reason`; `code` is a short machine-readable cause.

    Codes: ``malformed``, ``oversized``, ``unexpected``, ``bad_name``, ``name_mismatch``,
    ``missing_flags``, ``bad_cookie``, ``refused`` (peer answered `status`), ``sfalse``,
    ``old_peer``, ``reflected`` (the peer sent a challenge one of our acceptors issued).
    """

    def __init__(self, state: str, code: str, reason: str, *, status: Status | None = None) -> None:
        super().__init__(f"handshake failed in state {state}: {reason}")
        self.state = state
        self.code = code
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class PeerName:
    """Acceptor: the initiator introduced itself; answer with `Acceptor.decide`."""

    name: str
    flags: int
    creation: int | None
    version: int


@dataclass(frozen=True)
class AliveQuery:
    """Initiator: the acceptor thinks we are still connected; answer with `answer_alive`."""

    name: str


@dataclass(frozen=True)
class HandshakeComplete:
    """Both sides proved the cookie; `flags` are the agreed flags (ours AND the peer's)."""

    name: str
    flags: int
    peer_flags: int
    creation: int
    version: int


Event = PeerName | AliveQuery | HandshakeComplete


class RecentChallenges:
    """Challenges issued by acceptors within `window` seconds (at most `limit` of them)."""

    def __init__(self, window: float = REFLECTION_WINDOW, limit: int = 65536) -> None:
        self.window = window
        self.limit = limit
        self._issued: OrderedDict[int, float] = OrderedDict()

    def add(self, challenge: int) -> None:
        self._expire()
        self._issued.pop(challenge, None)
        self._issued[challenge] = time.monotonic()
        while len(self._issued) > self.limit:
            self._issued.popitem(last=False)

    def __contains__(self, challenge: object) -> bool:
        self._expire()
        return challenge in self._issued

    def _expire(self) -> None:
        horizon = time.monotonic() - self.window
        issued = self._issued
        while issued:
            oldest = next(iter(issued))
            if issued[oldest] >= horizon:
                return
            del issued[oldest]



class _Handshake:
    """Shared buffering, length framing and output of both roles."""

    def __init__(
        self, local_name: str, cookie: str, flags: int, creation: int, header: int = 2
    ) -> None:
        if header not in _LENGTHS:
            raise ValueError(f"handshake length header of {header} bytes (2, or 4 over TLS)")
        self._length = _LENGTHS[header]
        self.local_name = str(local_name)
        self._name_bytes = _name_to_bytes(self.local_name, "init")
        self.cookie = cookie
        self.flags = flags
        self.creation = creation
        self.state = "init"
        self.trailing_data = b""
        self._inbuf = bytearray()
        self._outbuf = bytearray()

    @property
    def complete(self) -> bool:
        return self.state == "complete"

    def data_to_send(self) -> bytes:
        """Bytes to write to the peer now (framed); empty when there is nothing."""
        out = bytes(self._outbuf)
        self._outbuf.clear()
        return out

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; returns the events they completed."""
        if self.state in ("complete", "failed", "refused"):
            if self.state == "complete":
                self.trailing_data += data
                return []
            raise HandshakeError(self.state, "unexpected", "data after the handshake ended")
        self._inbuf += data
        events: list[Event] = []
        while self.state not in ("complete", "failed", "refused") and not self._waiting():
            message = self._next_message()
            if message is None:
                break
            try:
                event = self._handle(message)
            except HandshakeError:
                self.state = "failed"
                raise
            if event is not None:
                events.append(event)
        if self.state == "complete":
            self.trailing_data = bytes(self._inbuf)
            self._inbuf.clear()
        return events

    def _waiting(self) -> bool:
        """True while the state machine waits for its caller, not for the peer."""
        return False

    def _next_message(self) -> bytes | None:
        size = self._length.size
        if len(self._inbuf) < size:
            return None
        (length,) = self._length.unpack_from(self._inbuf)
        if length == 0:
            self._fail("malformed", "empty handshake message")
        if length > MAX_HANDSHAKE_MESSAGE:
            self._fail("oversized", f"message of {length} bytes (max {MAX_HANDSHAKE_MESSAGE})")
        if len(self._inbuf) < size + length:
            return None
        message = bytes(self._inbuf[size : size + length])
        del self._inbuf[: size + length]
        return message

    def _handle(self, message: bytes) -> Event | None:
        raise NotImplementedError

    def _send(self, message: bytes) -> None:
        self._outbuf += self._length.pack(len(message))
        self._outbuf += message

    def _send_status(self, status: str) -> None:
        self._send(b"s" + status.encode("ascii"))

    def _fail(self, code: str, reason: str, *, status: Status | None = None) -> None:
        state = self.state
        self.state = "failed"
        raise HandshakeError(state, code, reason, status=status)

    def _check_flags(self, peer_flags: int, required: int) -> None:
        missing = dflags.missing_mandatory(peer_flags, required)
        if missing:
            self._fail(
                "missing_flags",
                "peer lacks mandatory flags " + ", ".join(dflags.flag_names(missing)),
            )


class Initiator(_Handshake):
    """The side that dialled. The first message is ready in `data_to_send` at construction."""

    def __init__(
        self,
        local_name: str,
        cookie: str,
        *,
        peer_name: str,
        flags: int,
        creation: int,
        version: int = 6,
        required_flags: int = dflags.MANDATORY,
        issued_challenges: RecentChallenges | None = None,
        header: int = 2,
    ) -> None:
        super().__init__(local_name, cookie, flags, creation, header)
        self.issued_challenges = issued_challenges
        if version not in (5, 6):
            raise ValueError(f"handshake version {version} (5 or 6)")
        self.peer_name = str(peer_name)
        self.version = version
        self.required_flags = required_flags
        self._my_challenge = new_challenge()
        self._peer_flags = 0
        self._peer_creation = 0
        if version == 6:
            self._send(
                _NAME_V6.pack(TAG_NAME_V6, flags, creation, len(self._name_bytes))
                + self._name_bytes
            )
        else:
            self._send(
                _NAME_V5.pack(TAG_NAME_V5, V5_VERSION, flags & 0xFFFFFFFF) + self._name_bytes
            )
        self.state = "await_status"

    def _waiting(self) -> bool:
        return self.state == "await_alive_answer"

    def answer_alive(self, still_wanted: bool) -> None:
        """Answer `AliveQuery`: True (``strue``) continues this attempt, False ends it."""
        if self.state != "await_alive_answer":
            raise RuntimeError(f"answer_alive in state {self.state}")
        self._send_status("true" if still_wanted else "false")
        self.state = "await_challenge" if still_wanted else "refused"

    def _handle(self, message: bytes) -> Event | None:
        if self.state == "await_status":
            return self._on_status(message)
        if self.state == "await_challenge":
            self._on_challenge(message)
            return None
        if self.state == "await_ack":
            return self._on_ack(message)
        self._fail("unexpected", f"message {message[:1]!r} not expected")
        return None

    def _on_status(self, message: bytes) -> Event | None:
        if message[0] != TAG_STATUS:
            self._fail("unexpected", f"expected status 's', got {message[:1]!r}")
        text = message[1:]
        if text in (b"ok", b"ok_simultaneous"):
            self.state = "await_challenge"
            return None
        if text == b"alive":
            self.state = "await_alive_answer"
            return AliveQuery(self.peer_name)
        if text in (b"nok", b"not_allowed"):
            status = Status(text.decode())
            self._fail("refused", f"peer answered {status.value}", status=status)
        self._fail("unexpected", f"unknown status {text[:40]!r}")
        return None

    def _on_challenge(self, message: bytes) -> None:
        if message[0] == TAG_NAME_V5:
            self._fail("old_peer", "peer sent a version 5 challenge (OTP 22 or older)")
        if message[0] != TAG_NAME_V6 or len(message) < _CHALLENGE_V6.size:
            self._fail(
                "malformed", f"bad challenge message {message[:1]!r} of {len(message)} bytes"
            )
        _, peer_flags, challenge, creation, nlen = _CHALLENGE_V6.unpack_from(message)
        name_end = _CHALLENGE_V6.size + nlen
        if len(message) < name_end:
            self._fail("malformed", "challenge name runs past the message")
        name = _bytes_to_name(message[_CHALLENGE_V6.size : name_end], self.state)
        if name != self.peer_name:
            self._fail("name_mismatch", f"dialled {self.peer_name!r} but {name!r} answered")
        peer_flags = dflags.expand(peer_flags)
        self._check_flags(peer_flags, self.required_flags)
        if self.issued_challenges is not None and challenge in self.issued_challenges:
            self._fail(
                "reflected",
                f"{self.peer_name} sent a challenge one of our acceptors issued: someone is "
                "relaying a handshake (challenge reflection); not answering it",
            )
        self._peer_flags = peer_flags
        self._peer_creation = creation
        if self.version == 5:
            self._send(_COMPLEMENT.pack(TAG_COMPLEMENT, self.flags >> 32, self.creation))
        self._send(_REPLY.pack(TAG_REPLY, self._my_challenge) + digest(self.cookie, challenge))
        self.state = "await_ack"

    def _on_ack(self, message: bytes) -> Event:
        if message[0] != TAG_ACK or len(message) != 1 + DIGEST_SIZE:
            self._fail("malformed", f"bad challenge ack {message[:1]!r} of {len(message)} bytes")
        if not hmac.compare_digest(message[1:], digest(self.cookie, self._my_challenge)):
            self._fail(
                "bad_cookie", f"wrong cookie: {self.peer_name}'s challenge ack does not match"
            )
        self.state = "complete"
        return HandshakeComplete(
            name=self.peer_name,
            flags=self.flags & self._peer_flags,
            peer_flags=self._peer_flags,
            creation=self._peer_creation,
            version=self.version,
        )


class Acceptor(_Handshake):
    """The side that accepted the socket: waits for the name, then for `decide`."""

    def __init__(
        self,
        local_name: str,
        cookie: str,
        *,
        flags: int,
        creation: int,
        required_flags: int = dflags.MANDATORY,
        issued_challenges: RecentChallenges | None = None,
        header: int = 2,
    ) -> None:
        super().__init__(local_name, cookie, flags, creation, header)
        self.required_flags = required_flags
        self.issued_challenges = issued_challenges
        self.peer_name = ""
        self.version = 6
        self._peer_flags = 0
        self._peer_creation: int | None = None
        self._my_challenge = new_challenge()
        self.state = "await_name"

    def _waiting(self) -> bool:
        return self.state == "await_decision"

    def decide(self, status: Status) -> None:
        """Answer `PeerName`. ``nok``/``not_allowed`` end the handshake (flush, then close)."""
        if self.state != "await_decision":
            raise RuntimeError(f"decide in state {self.state}")
        self._send_status(status.value)
        if status in (Status.NOK, Status.NOT_ALLOWED):
            self.state = "refused"
        elif status is Status.ALIVE:
            self.state = "await_alive_reply"
        else:
            self._send_challenge()

    def _send_challenge(self) -> None:
        if self.issued_challenges is not None:
            self.issued_challenges.add(self._my_challenge)
        self._send(
            _CHALLENGE_V6.pack(
                TAG_NAME_V6, self.flags, self._my_challenge, self.creation, len(self._name_bytes)
            )
            + self._name_bytes
        )
        self.state = "await_complement" if self.version == 5 else "await_reply"

    def _handle(self, message: bytes) -> Event | None:
        if self.state == "await_name":
            return self._on_name(message)
        if self.state == "await_alive_reply":
            self._on_alive_reply(message)
            return None
        if self.state == "await_complement":
            self._on_complement(message)
            return None
        if self.state == "await_reply":
            return self._on_reply(message)
        self._fail("unexpected", f"message {message[:1]!r} not expected")
        return None

    def _on_name(self, message: bytes) -> Event:
        tag = message[0]
        if tag == TAG_NAME_V6 and len(message) >= _NAME_V6.size:
            _, peer_flags, creation, nlen = _NAME_V6.unpack_from(message)
            name_end = _NAME_V6.size + nlen
            if len(message) < name_end:
                self._fail("malformed", "name runs past the message")
            raw_name = message[_NAME_V6.size : name_end]
            self._peer_creation = creation
            required = self.required_flags
        elif tag == TAG_NAME_V5 and len(message) >= _NAME_V5.size:
            _, _version, peer_flags = _NAME_V5.unpack_from(message)
            raw_name = message[_NAME_V5.size :]
            self.version = 5
            # The high flag bits arrive later in the complement (dist_util:check_dflags/2).
            required = self.required_flags & 0xFFFFFFFF
        else:
            self._fail("malformed", f"bad name message {message[:1]!r} of {len(message)} bytes")
        name = _bytes_to_name(raw_name, self.state)
        peer_flags = dflags.expand(peer_flags)
        self.peer_name = name
        if peer_flags & dflags.NAME_ME:
            self._refuse("bad_name", "peer asks for a dynamic name (NAME_ME), not supported")
        missing = dflags.missing_mandatory(peer_flags, required)
        if missing:
            self._refuse(
                "missing_flags",
                f"{name} lacks mandatory flags " + ", ".join(dflags.flag_names(missing)),
            )
        self._peer_flags = peer_flags
        self.state = "await_decision"
        return PeerName(name, peer_flags, self._peer_creation, self.version)

    def _refuse(self, code: str, reason: str) -> None:
        self._send_status(Status.NOT_ALLOWED.value)
        self._fail(code, reason)

    def _on_alive_reply(self, message: bytes) -> None:
        if message == b"strue":
            self._send_challenge()
            return
        if message == b"sfalse":
            self._fail("sfalse", f"{self.peer_name} withdrew its attempt (sfalse)")
        self._fail("unexpected", f"expected strue/sfalse, got {message[:40]!r}")

    def _on_complement(self, message: bytes) -> None:
        if message[0] != TAG_COMPLEMENT or len(message) != _COMPLEMENT.size:
            self._fail("malformed", f"bad complement {message[:1]!r} of {len(message)} bytes")
        _, flags_high, creation = _COMPLEMENT.unpack(message)
        self._peer_flags |= flags_high << 32
        self._peer_creation = creation
        self._check_flags(self._peer_flags, self.required_flags)
        self.state = "await_reply"

    def _on_reply(self, message: bytes) -> Event:
        if message[0] != TAG_REPLY or len(message) != _REPLY.size + DIGEST_SIZE:
            self._fail("malformed", f"bad challenge reply {message[:1]!r} of {len(message)} bytes")
        _, peer_challenge = _REPLY.unpack_from(message)
        if not hmac.compare_digest(message[_REPLY.size :], digest(self.cookie, self._my_challenge)):
            self._fail(
                "bad_cookie", f"wrong cookie: {self.peer_name}'s challenge reply does not match"
            )
        self._send(bytes([TAG_ACK]) + digest(self.cookie, peer_challenge))
        self.state = "complete"
        return HandshakeComplete(
            name=self.peer_name,
            flags=self.flags & self._peer_flags,
            peer_flags=self._peer_flags,
            creation=self._peer_creation or 0,
            version=self.version,
        )


def _name_to_bytes(name: str, state: str) -> bytes:
    raw = name.encode("utf-8")
    if not raw or len(raw) > MAX_NAME_BYTES:
        raise HandshakeError(state, "bad_name", f"local node name of {len(raw)} bytes")
    return raw


def _bytes_to_name(raw: bytes, state: str) -> str:
    """A node name from the wire: utf-8, exactly one '@' with non-empty parts (is_name_ok), no
    control or whitespace characters."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HandshakeError(state, "bad_name", f"node name {raw[:40]!r} is not utf-8") from None
    left, sep, right = name.partition("@")
    if len(raw) > MAX_NAME_BYTES or not left or not sep or not right or "@" in right:
        raise HandshakeError(state, "bad_name", f"invalid node name {name[:80]!r}")
    if not name.isprintable() or any(c.isspace() for c in name):
        raise HandshakeError(
            state, "bad_name", f"node name {name[:80]!r} has control or whitespace characters"
        )
    return name
