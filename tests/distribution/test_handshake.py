"""The sans-I/O handshake: both roles, v6/v5, statuses, byte-at-a-time, garbage and limits."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beamlink.distribution import flags
from beamlink.distribution.cookie import digest
from beamlink.distribution.handshake import (
    MAX_HANDSHAKE_MESSAGE,
    Acceptor,
    AliveQuery,
    HandshakeComplete,
    HandshakeError,
    Initiator,
    PeerName,
    Status,
)

A = "a@host.example"
B = "b@host.example"
VISIBLE = flags.advertised_flags(hidden=False)
HIDDEN = flags.advertised_flags(hidden=True)


def pair(
    *,
    version: int = 6,
    cookie_a: str = "c",
    cookie_b: str = "c",
    flags_a: int = VISIBLE,
    flags_b: int = VISIBLE,
    dialled: str = B,
) -> tuple[Initiator, Acceptor]:
    initiator = Initiator(
        A, cookie_a, peer_name=dialled, flags=flags_a, creation=11, version=version
    )
    acceptor = Acceptor(B, cookie_b, flags=flags_b, creation=22)
    return initiator, acceptor


def feed(hs: Initiator | Acceptor, data: bytes, *, byte_at_a_time: bool) -> list[object]:
    if not byte_at_a_time:
        return list(hs.receive_data(data))
    events: list[object] = []
    for i in range(len(data)):
        events += hs.receive_data(data[i : i + 1])
    return events


def run(
    initiator: Initiator,
    acceptor: Acceptor,
    status: Status = Status.OK,
    *,
    byte_at_a_time: bool = False,
) -> tuple[list[object], list[object]]:
    """Shuttle bytes until both sides stop producing; returns (initiator events, acceptor events)."""
    ev_i: list[object] = []
    ev_a: list[object] = []
    for _ in range(10):
        out_i = initiator.data_to_send()
        if out_i:
            for ev in feed(acceptor, out_i, byte_at_a_time=byte_at_a_time):
                ev_a.append(ev)
                if isinstance(ev, PeerName):
                    acceptor.decide(status)
        out_a = acceptor.data_to_send()
        if out_a:
            for ev in feed(initiator, out_a, byte_at_a_time=byte_at_a_time):
                ev_i.append(ev)
                if isinstance(ev, AliveQuery):
                    initiator.answer_alive(True)
        if not out_i and not out_a:
            break
    return ev_i, ev_a


@pytest.mark.parametrize("version", [6, 5])
@pytest.mark.parametrize("byte_at_a_time", [False, True])
@pytest.mark.parametrize("status", [Status.OK, Status.OK_SIMULTANEOUS, Status.ALIVE])
def test_complete_handshake(version: int, byte_at_a_time: bool, status: Status) -> None:
    initiator, acceptor = pair(version=version)
    ev_i, ev_a = run(initiator, acceptor, status, byte_at_a_time=byte_at_a_time)
    assert isinstance(ev_a[0], PeerName)
    assert ev_a[0].name == A and ev_a[0].version == version
    assert ev_a[0].creation == (11 if version == 6 else None)
    done_a = ev_a[-1]
    done_i = ev_i[-1]
    assert isinstance(done_a, HandshakeComplete) and isinstance(done_i, HandshakeComplete)
    assert (done_i.name, done_a.name) == (B, A)
    assert (done_i.creation, done_a.creation) == (22, 11)
    assert done_i.flags == done_a.flags == VISIBLE
    assert initiator.complete and acceptor.complete
    assert (status is Status.ALIVE) == any(isinstance(e, AliveQuery) for e in ev_i)


def test_hidden_side_makes_a_hidden_connection() -> None:
    initiator, acceptor = pair(flags_a=HIDDEN)
    ev_i, ev_a = run(initiator, acceptor)
    for done in (ev_i[-1], ev_a[-1]):
        assert isinstance(done, HandshakeComplete)
        assert not done.flags & flags.PUBLISHED


def test_bytes_after_the_last_message_are_kept() -> None:
    initiator, acceptor = pair()
    initiator_out = initiator.data_to_send()
    acceptor.receive_data(initiator_out)
    acceptor.decide(Status.OK)
    initiator.receive_data(acceptor.data_to_send())
    acceptor.receive_data(initiator.data_to_send())
    events = initiator.receive_data(acceptor.data_to_send() + b"\x00\x00\x00\x00rest")
    assert isinstance(events[0], HandshakeComplete)
    assert initiator.trailing_data == b"\x00\x00\x00\x00rest"


@pytest.mark.parametrize("status", [Status.NOK, Status.NOT_ALLOWED])
def test_refusals_reach_the_initiator(status: Status) -> None:
    initiator, acceptor = pair()
    acceptor.receive_data(initiator.data_to_send())
    acceptor.decide(status)
    assert acceptor.state == "refused"
    with pytest.raises(HandshakeError) as err:
        initiator.receive_data(acceptor.data_to_send())
    assert err.value.code == "refused" and err.value.status is status


def test_sfalse_ends_the_alive_exchange() -> None:
    initiator, acceptor = pair()
    acceptor.receive_data(initiator.data_to_send())
    acceptor.decide(Status.ALIVE)
    assert isinstance(initiator.receive_data(acceptor.data_to_send())[0], AliveQuery)
    initiator.answer_alive(False)
    assert initiator.state == "refused"
    with pytest.raises(HandshakeError) as err:
        acceptor.receive_data(initiator.data_to_send())
    assert err.value.code == "sfalse"


@pytest.mark.parametrize("version", [6, 5])
def test_wrong_cookie_is_detected_by_the_acceptor(version: int) -> None:
    initiator, acceptor = pair(version=version, cookie_b="other")
    with pytest.raises(HandshakeError) as err:
        run(initiator, acceptor)
    assert err.value.code == "bad_cookie" and err.value.state == "await_reply"
    assert acceptor.data_to_send() == b"", "no ack for a wrong digest"


def test_wrong_ack_is_detected_by_the_initiator() -> None:
    initiator, acceptor = pair()
    acceptor.receive_data(initiator.data_to_send())
    acceptor.decide(Status.OK)
    initiator.receive_data(acceptor.data_to_send())
    bad_ack = b"a" + digest("wrong", 1)
    with pytest.raises(HandshakeError) as err:
        initiator.receive_data(struct.pack(">H", len(bad_ack)) + bad_ack)
    assert err.value.code == "bad_cookie" and err.value.state == "await_ack"


def test_the_dialled_name_is_checked() -> None:
    initiator, acceptor = pair(dialled="b@elsewhere.example")
    with pytest.raises(HandshakeError) as err:
        run(initiator, acceptor)
    assert err.value.code == "name_mismatch" and err.value.state == "await_challenge"


@pytest.mark.parametrize("missing", [flags.UNLINK_ID, flags.V4_NC, flags.BIG_CREATION])
def test_mandatory_flags_are_required_by_the_acceptor(missing: int) -> None:
    initiator, acceptor = pair(flags_a=VISIBLE & ~missing & ~flags.MANDATORY_25_DIGEST)
    with pytest.raises(HandshakeError) as err:
        acceptor.receive_data(initiator.data_to_send())
    assert err.value.code == "missing_flags"
    assert flags.flag_names(missing)[0] in err.value.reason
    assert acceptor.data_to_send().endswith(b"snot_allowed")


def test_mandatory_flags_are_required_by_the_initiator() -> None:
    initiator, acceptor = pair(flags_b=VISIBLE & ~flags.V4_NC)
    with pytest.raises(HandshakeError) as err:
        run(initiator, acceptor)
    assert err.value.code == "missing_flags" and err.value.state == "await_challenge"


def test_v5_complement_supplies_the_high_flags() -> None:
    initiator, acceptor = pair(version=5)
    name_msg = initiator.data_to_send()
    assert name_msg[2:3] == b"n"
    ev = acceptor.receive_data(name_msg)
    assert isinstance(ev[0], PeerName) and not ev[0].flags >> 32
    acceptor.decide(Status.OK)
    initiator.receive_data(acceptor.data_to_send())
    reply = initiator.data_to_send()
    assert reply[2:3] == b"c", "complement comes before the challenge reply"
    events = acceptor.receive_data(reply)
    assert isinstance(events[0], HandshakeComplete) and events[0].peer_flags == VISIBLE


def test_mandatory_25_digest_stands_for_the_25_set() -> None:
    short = (VISIBLE & ~flags.MANDATORY_25) | flags.MANDATORY_25_DIGEST
    initiator, acceptor = pair(flags_a=short)
    _ev_i, ev_a = run(initiator, acceptor)
    assert isinstance(ev_a[-1], HandshakeComplete)
    assert ev_a[0].flags & flags.MANDATORY_25 == flags.MANDATORY_25  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00\x00",  # empty message
        struct.pack(">H", MAX_HANDSHAKE_MESSAGE + 1),  # oversized
        b"\x00\x01X",  # unknown tag
        b"\x00\x05N\x00\x00\x00\x00",  # truncated 'N'
        struct.pack(">HBQIH", 15 + 1, ord("N"), VISIBLE, 1, 40) + b"x",  # name past the end
        struct.pack(">HBQIH", 15 + 4, ord("N"), VISIBLE, 1, 4) + b"noat",  # no '@'
        struct.pack(">HBQIH", 15 + 4, ord("N"), VISIBLE, 1, 4) + b"a@\xff\xfe",  # not utf-8
    ],
)
def test_bad_names_are_rejected(frame: bytes) -> None:
    acceptor = Acceptor(B, "c", flags=VISIBLE, creation=1)
    with pytest.raises(HandshakeError) as err:
        acceptor.receive_data(frame)
    assert err.value.state == "await_name"
    with pytest.raises(HandshakeError):
        acceptor.receive_data(b"more")


def test_truncated_input_waits_without_events() -> None:
    initiator, acceptor = pair()
    data = initiator.data_to_send()
    assert acceptor.receive_data(data[:-1]) == []
    assert acceptor.state == "await_name"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_garbage_to_the_acceptor_never_escapes_handshake_error(data: bytes, split: bool) -> None:
    acceptor = Acceptor(B, "c", flags=VISIBLE, creation=1)
    try:
        for ev in feed(acceptor, data, byte_at_a_time=split):
            assert isinstance(ev, PeerName)
    except HandshakeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_garbage_to_the_initiator_never_escapes_handshake_error(data: bytes, split: bool) -> None:
    initiator = Initiator(A, "c", peer_name=B, flags=VISIBLE, creation=1)
    try:
        for ev in feed(initiator, data, byte_at_a_time=split):
            assert isinstance(ev, AliveQuery)
    except HandshakeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_valid_exchanges_fail_cleanly(data: st.DataObject) -> None:
    """Flip one byte of one message of a real exchange: complete or HandshakeError, nothing else."""
    initiator, acceptor = pair()
    target = data.draw(st.sampled_from(["name", "challenge", "reply", "ack"]))
    stream = {"name": initiator.data_to_send()}

    def mutate(key: str, raw: bytes) -> bytes:
        if key != target:
            return raw
        i = data.draw(st.integers(0, len(raw) - 1))
        return raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1 :]

    try:
        for ev in acceptor.receive_data(mutate("name", stream["name"])):
            if isinstance(ev, PeerName):
                acceptor.decide(Status.OK)
        initiator.receive_data(mutate("challenge", acceptor.data_to_send()))
        acceptor.receive_data(mutate("reply", initiator.data_to_send()))
        initiator.receive_data(mutate("ack", acceptor.data_to_send()))
    except HandshakeError:
        return
    assert initiator.state in ("complete", "await_ack", "await_challenge", "await_status")
