"""EPMD wire messages: constants, encoders and incremental parsers (sans-I/O, never touches a socket).

Source: OTP's ``erl_dist_protocol`` guide, section "EPMD Protocol", and ``erts/epmd/src/epmd_srv.c``.

Theory of operation
-------------------
Every EPMD conversation is one request on a fresh TCP connection:

* a request is ``Len:16`` followed by ``Len`` bytes whose first byte is the request code;
* a response has no length prefix; its shape depends on the request it answers:
  ALIVE2 -> ``ALIVE2_X_RESP``/``ALIVE2_RESP`` (and the connection then stays open: it *is* the
  registration), PORT_PLEASE2 -> ``PORT2_RESP`` (then EPMD closes), NAMES -> ``EPMDPort:32`` then
  ``"name N at port P\\n"`` lines until EPMD closes.

``RequestReader`` (server side) and ``ResponseReader`` (client side) are fed bytes with ``feed`` and
asked for the next message with ``next_event``, which returns a message or ``NEED_DATA``. Each
reads exactly one message; bytes after it are a protocol error. Malformed input raises
``EpmdProtocolError`` naming what was wrong; a reader that raised stays broken.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from beamlink.errors import EpmdError, RemoteProtocolError
from beamlink.settings import DEFAULT_EPMD_PORT

# Default TCP port of EPMD (erl_dist_protocol: "EPMD Protocol").
EPMD_DEFAULT_PORT: Final = DEFAULT_EPMD_PORT

# Request and response codes (erl_dist_protocol: "EPMD Protocol"; epmd.h).
ALIVE2_REQ: Final = 120
ALIVE2_RESP: Final = 121
ALIVE2_X_RESP: Final = 118
PORT_PLEASE2_REQ: Final = 122
PORT2_RESP: Final = 119
NAMES_REQ: Final = 110

# ALIVE2_REQ field values (erl_dist_protocol: "Register a Node in EPMD").
NODE_TYPE_NORMAL: Final = 77
NODE_TYPE_HIDDEN: Final = 72
PROTOCOL_TCP_IPV4: Final = 0
DIST_VERSION_5: Final = 5
DIST_VERSION_6: Final = 6

# Result byte of ALIVE2 and PORT2 responses: 0 is success, anything else an error.
RESULT_OK: Final = 0
RESULT_ERROR: Final = 1
# Creation sent by epmd_srv.c together with a failed ALIVE2 result.
ERROR_CREATION: Final = 99

# Limits from epmd_srv.c: a node name is 1..255 characters of UTF-8 (MAXSYMLEN bytes at most);
# the extra field is at most MAXSYMLEN bytes.
MAX_NAME_CHARS: Final = 255
MAX_SYMLEN: Final = 255 * 4
# A NAMES answer larger than this is refused rather than buffered.
MAX_NAMES_RESPONSE: Final = 1 << 20

_NODE_FIXED = struct.Struct(">HBBHHH")  # port, type, protocol, high, low, nlen
_NAMES_LINE = re.compile(rb"name (.+) at port (\d{1,5})")
# Stricter than epmd_srv.c (which only refuses NUL): a newline in a name would forge NAMES lines.
_CONTROL = re.compile("[\x00-\x1f\x7f]")


class EpmdProtocolError(RemoteProtocolError, EpmdError, ValueError):
    """Bytes that do not follow the EPMD protocol.

    ``empty`` is True when the peer closed the connection before sending a single byte (an EPMD
    half-way through starting does that; anything that answered with bytes is not EPMD).
    """

    empty: bool = False


@dataclass(frozen=True)
class NodeAddress:
    """What a node registers (ALIVE2_REQ) and what PORT_PLEASE2 returns (PORT2_RESP)."""

    port: int
    node_type: int
    protocol: int
    highest_version: int
    lowest_version: int
    name: str
    extra: bytes = b""

    @property
    def hidden(self) -> bool:
        """True for a hidden node (node type 72)."""
        return self.node_type == NODE_TYPE_HIDDEN


@dataclass(frozen=True)
class Alive2Request:
    """ALIVE2_REQ: register ``node``; the connection stays open while it is registered."""

    node: NodeAddress


@dataclass(frozen=True)
class PortPlease2Request:
    """PORT_PLEASE2_REQ: where does node ``name`` (the part before ``@``) listen?"""

    name: str


@dataclass(frozen=True)
class NamesRequest:
    """NAMES_REQ: list the registered names and ports."""


Request = Alive2Request | PortPlease2Request | NamesRequest


@dataclass(frozen=True)
class Alive2Response:
    """ALIVE2_X_RESP (``extended``, 32-bit creation) or ALIVE2_RESP (16-bit creation)."""

    result: int
    creation: int
    extended: bool = True


@dataclass(frozen=True)
class Port2Response:
    """PORT2_RESP: ``node`` is set when ``result`` is 0 and None otherwise."""

    result: int
    node: NodeAddress | None = None


@dataclass(frozen=True)
class NamesResponse:
    """NAMES answer: the port EPMD listens on and the registered ``(name, port)`` pairs."""

    epmd_port: int
    nodes: tuple[tuple[str, int], ...] = ()


Response = Alive2Response | Port2Response | NamesResponse


class NeedData:
    """Type of the ``NEED_DATA`` sentinel: feed more bytes."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


def _check_u8(value: int, what: str) -> None:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{what} {value} does not fit in 8 bits")


def _check_u16(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what} {value} does not fit in 16 bits")


def encode_name(name: str) -> bytes:
    """UTF-8 bytes of a node name, checked against the limits real EPMD enforces."""
    if not 0 < len(name) <= MAX_NAME_CHARS:
        raise ValueError(f"node name must be 1..{MAX_NAME_CHARS} characters, got {len(name)}")
    if _CONTROL.search(name):
        raise ValueError(f"node name {name!r} contains a control character")
    return name.encode("utf-8")


def _encode_node_body(node: NodeAddress) -> bytes:
    name = encode_name(node.name)
    if len(node.extra) > MAX_SYMLEN:
        raise ValueError(f"extra field is {len(node.extra)} bytes, at most {MAX_SYMLEN} allowed")
    _check_u16(node.port, "port")
    _check_u8(node.node_type, "node type")
    _check_u8(node.protocol, "protocol")
    _check_u16(node.highest_version, "highest version")
    _check_u16(node.lowest_version, "lowest version")
    return (
        _NODE_FIXED.pack(
            node.port,
            node.node_type,
            node.protocol,
            node.highest_version,
            node.lowest_version,
            len(name),
        )
        + name
        + struct.pack(">H", len(node.extra))
        + node.extra
    )


def encode_request(request: Request) -> bytes:
    """The bytes a client sends for ``request``, length prefix included."""
    if isinstance(request, Alive2Request):
        body = bytes([ALIVE2_REQ]) + _encode_node_body(request.node)
    elif isinstance(request, PortPlease2Request):
        body = bytes([PORT_PLEASE2_REQ]) + encode_name(request.name)
    else:
        body = bytes([NAMES_REQ])
    return struct.pack(">H", len(body)) + body


def encode_response(response: Response) -> bytes:
    """The bytes EPMD sends for ``response``."""
    if isinstance(response, Alive2Response):
        _check_u8(response.result, "result")
        if response.extended:
            if not 0 <= response.creation <= 0xFFFFFFFF:
                raise ValueError(f"creation {response.creation} does not fit in 32 bits")
            return struct.pack(">BBI", ALIVE2_X_RESP, response.result, response.creation)
        _check_u16(response.creation, "creation")
        return struct.pack(">BBH", ALIVE2_RESP, response.result, response.creation)
    if isinstance(response, Port2Response):
        _check_u8(response.result, "result")
        if (response.result == RESULT_OK) != (response.node is not None):
            raise ValueError("PORT2_RESP carries a node exactly when its result is 0")
        head = bytes([PORT2_RESP, response.result])
        return head if response.node is None else head + _encode_node_body(response.node)
    if not 0 <= response.epmd_port <= 0xFFFFFFFF:
        raise ValueError(f"EPMD port {response.epmd_port} does not fit in 32 bits")
    lines = []
    for name, port in response.nodes:
        _check_u16(port, "port")
        lines.append(b"name " + encode_name(name) + f" at port {port}\n".encode())
    return struct.pack(">I", response.epmd_port) + b"".join(lines)


def _decode_name(raw: bytes, where: str) -> str:
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EpmdProtocolError(f"{where}: node name is not valid UTF-8") from exc
    if _CONTROL.search(name):
        raise EpmdProtocolError(f"{where}: node name {name!r} contains a control character")
    if not 0 < len(name) <= MAX_NAME_CHARS:
        raise EpmdProtocolError(f"{where}: node name must be 1..{MAX_NAME_CHARS} characters")
    return name


def _decode_node(data: bytes, offset: int, where: str) -> tuple[NodeAddress, int] | None:
    """Parse the ALIVE2 node fields at ``offset``; None when ``data`` ends too early."""
    end = offset + _NODE_FIXED.size
    if len(data) < end:
        return None
    port, node_type, protocol, high, low, nlen = _NODE_FIXED.unpack_from(data, offset)
    if nlen == 0 or nlen > MAX_SYMLEN:
        raise EpmdProtocolError(f"{where}: node name length {nlen} is not in 1..{MAX_SYMLEN}")
    if len(data) < end + nlen + 2:
        return None
    name = _decode_name(data[end : end + nlen], where)
    (elen,) = struct.unpack_from(">H", data, end + nlen)
    if elen > MAX_SYMLEN:
        raise EpmdProtocolError(f"{where}: extra field length {elen} exceeds {MAX_SYMLEN}")
    extra_start = end + nlen + 2
    if len(data) < extra_start + elen:
        return None
    extra = bytes(data[extra_start : extra_start + elen])
    return NodeAddress(port, node_type, protocol, high, low, name, extra), extra_start + elen


_Message = TypeVar("_Message")


class _Reader(Generic[_Message]):
    """Shared shape of the two readers: buffered bytes, one message, sticky errors."""

    _what = "message"

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._done = False
        self._broken: EpmdProtocolError | None = None

    def next_event(self) -> _Message | NeedData:
        """The message once complete, else ``NEED_DATA``; raises ``EpmdProtocolError``
        (and the same error again on every later call)."""
        if self._broken is not None:
            raise self._broken
        if self._done:
            if self._buffer:
                raise EpmdProtocolError(
                    f"{len(self._buffer)} unexpected bytes after the {self._what}"
                )
            return NEED_DATA
        try:
            return self._parse()
        except EpmdProtocolError as exc:
            self._broken = exc
            raise

    def _parse(self) -> _Message | NeedData:
        raise NotImplementedError


class RequestReader(_Reader["Request"]):
    """Server side: parses the one request that opens an EPMD connection."""

    _what = "request"

    def feed(self, data: bytes) -> None:
        """Add bytes received from the client."""
        self._buffer += data

    def _parse(self) -> Request | NeedData:
        buf = self._buffer
        if len(buf) < 2:
            return NEED_DATA
        (length,) = struct.unpack_from(">H", buf)
        if length == 0:
            raise EpmdProtocolError("request with length 0")
        if len(buf) < 3:
            return NEED_DATA
        code = buf[2]
        if code not in (ALIVE2_REQ, PORT_PLEASE2_REQ, NAMES_REQ):
            raise EpmdProtocolError(f"unknown request code {code}")
        if len(buf) < 2 + length:
            return NEED_DATA
        if len(buf) > 2 + length:
            raise EpmdProtocolError(f"{len(buf) - 2 - length} unexpected bytes after the request")
        body = bytes(buf[2:])
        request = self._decode_body(code, body)
        self._done = True
        buf.clear()
        return request

    @staticmethod
    def _decode_body(code: int, body: bytes) -> Request:
        if code == NAMES_REQ:
            if len(body) != 1:
                raise EpmdProtocolError(f"NAMES_REQ has {len(body) - 1} bytes after its code")
            return NamesRequest()
        if code == PORT_PLEASE2_REQ:
            # C clients may NUL-terminate the name; epmd_srv.c strips one trailing NUL.
            raw = body[1:-1] if body.endswith(b"\x00") else body[1:]
            return PortPlease2Request(_decode_name(raw, "PORT_PLEASE2_REQ"))
        parsed = _decode_node(body, 1, "ALIVE2_REQ")
        if parsed is None:
            raise EpmdProtocolError(f"ALIVE2_REQ of {len(body)} bytes is truncated")
        node, end = parsed
        if end != len(body):
            raise EpmdProtocolError(f"ALIVE2_REQ has {len(body) - end} bytes after its extra field")
        return Alive2Request(node)


class ResponseReader(_Reader["Response"]):
    """Client side: parses EPMD's answer to ``request``.

    For NAMES the answer ends when EPMD closes the connection: call ``feed_eof`` then.
    """

    _what = "response"

    def __init__(self, request: Request) -> None:
        super().__init__()
        self._request = request
        self._eof = False

    def feed(self, data: bytes) -> None:
        """Add bytes received from EPMD."""
        if self._eof:
            raise EpmdProtocolError("bytes fed after end of stream")
        self._buffer += data

    def feed_eof(self) -> None:
        """EPMD closed the connection."""
        self._eof = True

    def _parse(self) -> Response | NeedData:
        buf = self._buffer
        if isinstance(self._request, NamesRequest):
            response: Response | None = self._parse_names()
        elif isinstance(self._request, PortPlease2Request):
            response = self._parse_port2()
        else:
            response = self._parse_alive2()
        if response is None:
            if self._eof:
                error = EpmdProtocolError(
                    f"connection closed in the middle of a response ({len(buf)} bytes)"
                )
                error.empty = not buf
                raise error
            return NEED_DATA
        self._done = True
        return response

    def _parse_alive2(self) -> Alive2Response | None:
        buf = self._buffer
        if not buf:
            return None
        if buf[0] == ALIVE2_X_RESP:
            if len(buf) < 6:
                return None
            _, result, creation = struct.unpack_from(">BBI", buf)
            del buf[:6]
            return Alive2Response(result, creation, extended=True)
        if buf[0] == ALIVE2_RESP:
            if len(buf) < 4:
                return None
            _, result, creation = struct.unpack_from(">BBH", buf)
            del buf[:4]
            return Alive2Response(result, creation, extended=False)
        raise EpmdProtocolError(f"expected ALIVE2_X_RESP or ALIVE2_RESP, got code {buf[0]}")

    def _parse_port2(self) -> Port2Response | None:
        buf = self._buffer
        if not buf:
            return None
        if buf[0] != PORT2_RESP:
            raise EpmdProtocolError(f"expected PORT2_RESP, got code {buf[0]}")
        if len(buf) < 2:
            return None
        result = buf[1]
        if result != RESULT_OK:
            del buf[:2]
            return Port2Response(result)
        parsed = _decode_node(bytes(buf), 2, "PORT2_RESP")
        if parsed is None:
            return None
        node, end = parsed
        del buf[:end]
        return Port2Response(result, node)

    def _parse_names(self) -> NamesResponse | None:
        buf = self._buffer
        if len(buf) > MAX_NAMES_RESPONSE:
            raise EpmdProtocolError(f"NAMES answer exceeds {MAX_NAMES_RESPONSE} bytes")
        if not self._eof or len(buf) < 4:
            return None
        (epmd_port,) = struct.unpack_from(">I", buf)
        text = bytes(buf[4:])
        if text and not text.endswith(b"\n"):
            raise EpmdProtocolError("NAMES answer does not end with a newline")
        nodes = []
        for line in text.split(b"\n")[:-1]:
            match = _NAMES_LINE.fullmatch(line)
            if match is None:
                raise EpmdProtocolError(f"malformed NAMES line {line[:80]!r}")
            name = _decode_name(match.group(1), "NAMES answer")
            port = int(match.group(2))
            if port > 0xFFFF:
                raise EpmdProtocolError(f"NAMES line gives port {port}, not a 16-bit port")
            nodes.append((name, port))
        buf.clear()
        return NamesResponse(epmd_port, tuple(nodes))
