"""Sans-I/O EPMD messages: known bytes, round trips (hypothesis), byte-at-a-time feeding, garbage."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beamlink.epmd.protocol import (
    ALIVE2_REQ,
    NEED_DATA,
    NODE_TYPE_HIDDEN,
    NODE_TYPE_NORMAL,
    Alive2Request,
    Alive2Response,
    EpmdProtocolError,
    NamesRequest,
    NamesResponse,
    NodeAddress,
    Port2Response,
    PortPlease2Request,
    Request,
    RequestReader,
    Response,
    ResponseReader,
    encode_request,
    encode_response,
)

names_st = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=255
)
u16 = st.integers(0, 0xFFFF)
nodes_st = st.builds(
    NodeAddress,
    port=u16,
    node_type=st.sampled_from([NODE_TYPE_NORMAL, NODE_TYPE_HIDDEN]) | st.integers(0, 255),
    protocol=st.integers(0, 255),
    highest_version=u16,
    lowest_version=u16,
    name=names_st,
    extra=st.binary(max_size=1020),
)
requests_st: st.SearchStrategy[Request] = st.one_of(
    st.builds(Alive2Request, nodes_st),
    st.builds(PortPlease2Request, names_st),
    st.just(NamesRequest()),
)
alive2_responses = st.one_of(
    st.builds(Alive2Response, st.integers(0, 255), st.integers(0, 0xFFFFFFFF), st.just(True)),
    st.builds(Alive2Response, st.integers(0, 255), u16, st.just(False)),
)
port2_responses = st.one_of(
    st.builds(Port2Response, st.just(0), nodes_st),
    st.builds(Port2Response, st.integers(1, 255), st.none()),
)
names_responses = st.builds(
    NamesResponse,
    st.integers(0, 0xFFFFFFFF),
    st.lists(st.tuples(names_st, u16), max_size=20).map(tuple),
)


def request_for(response: Response) -> Request:
    """A request whose answer has the shape of ``response``."""
    if isinstance(response, Alive2Response):
        return Alive2Request(NodeAddress(1, NODE_TYPE_NORMAL, 0, 6, 5, "a"))
    if isinstance(response, Port2Response):
        return PortPlease2Request("a")
    return NamesRequest()


def parse_request(chunks: list[bytes]) -> Request:
    reader = RequestReader()
    for chunk in chunks:
        assert reader.next_event() is NEED_DATA
        reader.feed(chunk)
    event = reader.next_event()
    assert not isinstance(event, type(NEED_DATA))
    return event


def parse_response(request: Request, chunks: list[bytes]) -> Response:
    reader = ResponseReader(request)
    for chunk in chunks:
        reader.feed(chunk)
    if isinstance(request, NamesRequest):
        assert reader.next_event() is NEED_DATA
        reader.feed_eof()
    event = reader.next_event()
    assert not isinstance(event, type(NEED_DATA))
    return event


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def test_known_bytes_match_the_spec() -> None:
    node = NodeAddress(5000, NODE_TYPE_NORMAL, 0, 6, 5, "foo")
    assert encode_request(Alive2Request(node)) == (
        b"\x00\x10" + bytes([120]) + b"\x13\x88" + b"M\x00" + b"\x00\x06\x00\x05"
        + b"\x00\x03foo" + b"\x00\x00"
    )
    assert encode_request(PortPlease2Request("foo")) == b"\x00\x04zfoo"
    assert encode_request(NamesRequest()) == b"\x00\x01n"
    assert encode_response(Alive2Response(0, 0x01020304)) == b"v\x00\x01\x02\x03\x04"
    assert encode_response(Alive2Response(0, 3, extended=False)) == b"y\x00\x00\x03"
    assert encode_response(Port2Response(1)) == b"w\x01"
    assert encode_response(NamesResponse(4369, (("foo", 5000),))) == (
        b"\x00\x00\x11\x11name foo at port 5000\n"
    )


@given(requests_st, st.lists(st.integers(0, 5000), max_size=6))
def test_request_round_trip_any_split(request: Request, cuts: list[int]) -> None:
    data = encode_request(request)
    assert parse_request(split(data, cuts)) == request


@given(requests_st)
def test_request_byte_at_a_time(request: Request) -> None:
    data = encode_request(request)
    assert parse_request([data[i : i + 1] for i in range(len(data))]) == request


@given(st.one_of(alive2_responses, port2_responses, names_responses), st.lists(st.integers(0, 5000), max_size=6))
def test_response_round_trip_any_split(response: Response, cuts: list[int]) -> None:
    data = encode_response(response)
    assert parse_response(request_for(response), split(data, cuts)) == response


@given(st.one_of(alive2_responses, port2_responses, names_responses))
def test_response_byte_at_a_time(response: Response) -> None:
    data = encode_response(response)
    request = request_for(response)
    assert parse_response(request, [data[i : i + 1] for i in range(len(data))]) == response


def test_alive2_resp_16_bit_creation_is_parsed() -> None:
    request = Alive2Request(NodeAddress(1, NODE_TYPE_NORMAL, 0, 5, 5, "a"))
    assert parse_response(request, [b"y\x00\x00\x02"]) == Alive2Response(0, 2, extended=False)
    assert parse_response(request, [b"v\x01\x00\x00\x00\x63"]) == Alive2Response(1, 99)


def test_port_please_name_with_trailing_nul_is_accepted() -> None:
    assert parse_request([b"\x00\x05zfoo\x00"]) == PortPlease2Request("foo")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x00", "length 0"),
        (b"\x00\x05Xabcd", "unknown request code 88"),
        (b"\x00\x02n\x00", "NAMES_REQ has 1 bytes"),
        (b"\x00\x01z", "1..255 characters"),
        (b"\x00\x04z\xff\xfe\xfd", "not valid UTF-8"),
        (b"\x00\x04za\nb", "control character"),
        (b"\x00\x05x\x00\x01M\x00", "truncated"),
        (b"\x00\x0dx\x00\x01M\x00\x00\x06\x00\x05\x00\x00\x00\x00", "name length 0"),
        (b"\x00\x0fx\x00\x01M\x00\x00\x06\x00\x05\x00\x01a\x00\x00!", "1 bytes after its extra"),
        (b"\x00\x01nn", "unexpected bytes"),
    ],
)
def test_malformed_requests_are_named(data: bytes, reason: str) -> None:
    reader = RequestReader()
    reader.feed(data)
    with pytest.raises(EpmdProtocolError, match=reason):
        reader.next_event()
    with pytest.raises(EpmdProtocolError, match=reason):
        reader.next_event()


def test_unknown_code_is_rejected_before_the_body_arrives() -> None:
    reader = RequestReader()
    reader.feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(EpmdProtocolError, match="unknown request code 84"):
        reader.next_event()


@pytest.mark.parametrize(
    ("request_", "data", "reason"),
    [
        (NamesRequest(), b"\x00\x00\x11\x11garbage\n", "malformed NAMES line"),
        (NamesRequest(), b"\x00\x00\x11\x11name a at port 1", "newline"),
        (NamesRequest(), b"\x00\x00", "closed in the middle"),
        (NamesRequest(), b"\x00\x00\x11\x11name a at port 99999\n", "not a 16-bit port"),
        (PortPlease2Request("a"), b"v\x00", "expected PORT2_RESP"),
        (PortPlease2Request("a"), b"w\x00\x00\x01M", "closed in the middle"),
        (Alive2Request(NodeAddress(1, 77, 0, 6, 5, "a")), b"w\x00", "expected ALIVE2"),
        (Alive2Request(NodeAddress(1, 77, 0, 6, 5, "a")), b"v\x00\x00", "closed in the middle"),
        (Alive2Request(NodeAddress(1, 77, 0, 6, 5, "a")), b"v\x00\x00\x00\x00\x05!", "unexpected"),
    ],
)
def test_malformed_responses_are_named(request_: Request, data: bytes, reason: str) -> None:
    reader = ResponseReader(request_)
    reader.feed(data)
    reader.feed_eof()
    with pytest.raises(EpmdProtocolError, match=reason):
        reader.next_event()
        reader.next_event()


@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=5))
def test_request_reader_garbage_only_raises_protocol_errors(data: bytes, cuts: list[int]) -> None:
    reader = RequestReader()
    try:
        for chunk in split(data, cuts):
            reader.feed(chunk)
            reader.next_event()
    except EpmdProtocolError:
        return


@given(
    st.sampled_from([NamesRequest(), PortPlease2Request("a"), Alive2Request(NodeAddress(1, 77, 0, 6, 5, "a"))]),
    st.binary(max_size=300),
)
def test_response_reader_garbage_only_raises_protocol_errors(request_: Request, data: bytes) -> None:
    reader = ResponseReader(request_)
    try:
        for i in range(len(data)):
            reader.feed(data[i : i + 1])
            reader.next_event()
        reader.feed_eof()
        reader.next_event()
    except EpmdProtocolError:
        return


@given(requests_st, st.data())
def test_truncated_requests_need_more_data(request: Request, data: st.DataObject) -> None:
    encoded = encode_request(request)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    reader = RequestReader()
    reader.feed(encoded[:cut])
    assert reader.next_event() is NEED_DATA


def test_encoders_refuse_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="16 bits"):
        encode_request(Alive2Request(NodeAddress(70000, 77, 0, 6, 5, "a")))
    with pytest.raises(ValueError, match=r"1\.\.255"):
        encode_request(PortPlease2Request(""))
    with pytest.raises(ValueError, match="32 bits"):
        encode_response(Alive2Response(0, 1 << 32))
    with pytest.raises(ValueError, match="exactly when"):
        encode_response(Port2Response(0))
    assert struct.unpack(">H", encode_request(NamesRequest())[:2]) == (1,)
    assert encode_request(Alive2Request(NodeAddress(1, 77, 0, 6, 5, "a")))[2] == ALIVE2_REQ
