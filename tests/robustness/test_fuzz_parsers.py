"""Fuzzing the sans-I/O wire parsers (issue 12): the distribution handshake, the frame reader and
the EPMD request/response readers, as ``tests/etf`` fuzzes the codec.

Inputs are valid byte streams (real transcripts of the encoders and state machines) mutated by
hypothesis (bytes flipped, inserted, deleted, a prefix cut, another stream spliced in) or plain
garbage, fed in random chunks and byte at a time. Only the documented exception of each parser may
come out (`HandshakeError`, `FrameError`, `EpmdProtocolError`), every event has its documented
type, and a parser that raised stays broken. Each test runs a bounded number of examples.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamlink.distribution import control
from beamlink.distribution import flags as dflags
from beamlink.distribution.frames import FrameError, FrameReader, FrameWriter
from beamlink.distribution.handshake import (
    Acceptor,
    AliveQuery,
    HandshakeComplete,
    HandshakeError,
    Initiator,
    PeerName,
    Status,
)
from beamlink.epmd.protocol import (
    NEED_DATA,
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
from beamlink.etf import Atom, Pid
from tests.support.frames import same_outcome

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
A = "a@host.example"
B = "b@host.example"
VISIBLE = dflags.advertised_flags(hidden=False)
PID = Pid(Atom(A), 5, 0, 7)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """One of ``seeds`` with up to 4 random edits (or, sometimes, pure garbage)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "cut", "splice", "max"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "cut":
            del data[at:]
        elif kind == "splice":
            other = draw(st.sampled_from(seeds))
            data[at:] = other[draw(st.integers(0, len(other))) :]
        elif kind == "max" and at < len(data):
            data[at] = 0xFF
    return bytes(data)


chunkings = st.one_of(st.just(1), st.integers(2, 64), st.just(1 << 20))


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


# --- handshake ---------------------------------------------------------------------------------


def _transcripts() -> tuple[list[bytes], list[bytes]]:
    """What an acceptor and what an initiator receive in real handshakes (v6 and v5, every
    status the acceptor can answer)."""
    to_acceptor, to_initiator = [], []
    for version in (6, 5):
        for status in (Status.OK, Status.OK_SIMULTANEOUS, Status.ALIVE, Status.NOT_ALLOWED):
            initiator = Initiator(A, "c", peer_name=B, flags=VISIBLE, creation=11, version=version)
            acceptor = Acceptor(B, "c", flags=VISIBLE, creation=22)
            got_a, got_i = b"", b""
            for _ in range(6):
                out = initiator.data_to_send()
                got_a += out
                try:
                    for event in acceptor.receive_data(out):
                        if isinstance(event, PeerName):
                            acceptor.decide(status)
                except HandshakeError:
                    pass
                out = acceptor.data_to_send()
                got_i += out
                try:
                    for event in initiator.receive_data(out):
                        if isinstance(event, AliveQuery):
                            initiator.answer_alive(True)
                except HandshakeError:
                    pass
            to_acceptor.append(got_a)
            to_initiator.append(got_i)
    return to_acceptor, to_initiator


TO_ACCEPTOR, TO_INITIATOR = _transcripts()


def _drive(hs: Initiator | Acceptor, data: bytes, size: int) -> None:
    """Feed ``data`` in chunks of ``size``, answering the events as a node would; only
    `HandshakeError` may escape, after which the object stays finished."""
    try:
        for piece in chunks(data, size):
            for event in hs.receive_data(piece):
                if isinstance(event, PeerName):
                    assert isinstance(hs, Acceptor)
                    hs.decide(Status.OK)
                elif isinstance(event, AliveQuery):
                    assert isinstance(hs, Initiator)
                    hs.answer_alive(True)
                else:
                    assert isinstance(event, HandshakeComplete), event
            hs.data_to_send()
    except HandshakeError:
        try:
            hs.receive_data(b"x")
        except HandshakeError:
            return
        raise AssertionError("a handshake that raised accepted more data") from None


@FUZZ
@given(mutated(TO_ACCEPTOR), chunkings)
def test_handshake_acceptor_fuzz(data: bytes, size: int) -> None:
    _drive(Acceptor(B, "c", flags=VISIBLE, creation=22), data, size)


@FUZZ
@given(mutated(TO_INITIATOR), chunkings)
def test_handshake_initiator_fuzz(data: bytes, size: int) -> None:
    _drive(Initiator(A, "c", peer_name=B, flags=VISIBLE, creation=11), data, size)


# --- frames ------------------------------------------------------------------------------------

_MESSAGES: list[tuple[tuple[Any, ...], Any]] = [
    (control.send(PID), (Atom("hello"), [1, 2.5, b"bin"], {"k": [[]]})),
    (control.reg_send(PID, Atom("name")), "text"),
    (control.link(PID, PID), None),
]


def _frame_seeds() -> list[bytes]:
    seeds = []
    for agreed in (dflags.MANDATORY, dflags.MANDATORY | dflags.FRAGMENTS):
        writer = FrameWriter(agreed)
        seeds.append(b"".join(writer.frame(c, m) if m is not None else writer.frame(c)
                              for c, m in _MESSAGES) + b"\x00\x00\x00\x00")
    # A fragmented message (header 69, continuation 70), as erts sends them.
    body = FrameWriter(dflags.MANDATORY | dflags.FRAGMENTS).frame(*_MESSAGES[0])[7:]
    half = len(body) // 2
    frag = (b"\x83E" + (7).to_bytes(8, "big") + (2).to_bytes(8, "big") + b"\x00" + body[:half],
            b"\x83F" + (7).to_bytes(8, "big") + (1).to_bytes(8, "big") + body[half:])
    seeds.append(b"".join(len(f).to_bytes(4, "big") + f for f in frag))
    return seeds


FRAME_SEEDS = _frame_seeds()


@FUZZ
@given(mutated(FRAME_SEEDS), chunkings)
def test_frame_reader_fuzz(data: bytes, size: int) -> None:
    limits = {"max_frame_size": 1 << 16, "max_reassembly_bytes": 1 << 16,
              "max_term_memory": 1 << 20}
    reader = FrameReader(**limits)
    try:
        for piece in chunks(data, size):
            for ctl, _message in reader.feed(piece):
                assert type(ctl) is tuple and ctl and type(ctl[0]) is int
    except FrameError:
        pass  # the connection is dropped: nothing of the reader is used again
    else:
        assert reader.buffered <= len(data)
    # The compiled frame loop (when built) gives the same messages and errors as Python's.
    same_outcome(chunks(data, size), **limits)


def test_frame_seeds_are_valid() -> None:
    """The seeds decode as they are (so the mutations start from real traffic)."""
    for seed in FRAME_SEEDS:
        assert FrameReader().feed(seed)


# --- EPMD --------------------------------------------------------------------------------------

_NODE = NodeAddress(5000, 77, 0, 6, 5, "foo", b"extra")
REQUESTS: list[Request] = [Alive2Request(_NODE), PortPlease2Request("foo"), NamesRequest()]
RESPONSES: list[tuple[Request, Response]] = [
    (REQUESTS[0], Alive2Response(0, 0x01020304)),
    (REQUESTS[0], Alive2Response(0, 3, extended=False)),
    (REQUESTS[1], Port2Response(0, _NODE)),
    (REQUESTS[1], Port2Response(1)),
    (REQUESTS[2], NamesResponse(4369, (("foo", 5000), ("bar", 6000)))),
]


@FUZZ
@given(mutated([encode_request(r) for r in REQUESTS]), chunkings)
def test_epmd_request_reader_fuzz(data: bytes, size: int) -> None:
    reader = RequestReader()
    try:
        for piece in chunks(data, size):
            reader.feed(piece)
            event = reader.next_event()
            assert event is NEED_DATA or isinstance(
                event, (Alive2Request, PortPlease2Request, NamesRequest)
            )
    except EpmdProtocolError:
        try:
            reader.next_event()
        except EpmdProtocolError:
            return
        raise AssertionError("a reader that raised answered again") from None


@FUZZ
@given(st.integers(0, len(RESPONSES) - 1), st.data(), chunkings)
def test_epmd_response_reader_fuzz(index: int, data: st.DataObject, size: int) -> None:
    request, _ = RESPONSES[index]
    seeds = [encode_response(r) for q, r in RESPONSES if q is request]
    raw = data.draw(mutated(seeds))
    reader = ResponseReader(request)
    try:
        for piece in chunks(raw, size):
            reader.feed(piece)
            event = reader.next_event()
            assert event is NEED_DATA or isinstance(
                event, (Alive2Response, Port2Response, NamesResponse)
            )
        reader.feed_eof()
        event = reader.next_event()
        assert event is NEED_DATA or isinstance(event, (Alive2Response, Port2Response, NamesResponse))
    except EpmdProtocolError:
        pass
