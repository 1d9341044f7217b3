"""Frames after the handshake: both body forms, ticks, fragments, limits, garbage."""

from __future__ import annotations

import struct
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beamlink import etf
from beamlink.distribution import control, flags
from beamlink.distribution.frames import TICK, FrameError, FrameReader, FrameWriter
from beamlink.etf import Atom, Pid, encode
from tests.support.frames import same_outcome

PID = Pid(Atom("a@h.example"), 5, 0, 7)
PASS_THROUGH = FrameWriter(flags.MANDATORY)
HEADER = FrameWriter(flags.MANDATORY | flags.FRAGMENTS)
# A REG_SEND of {hello, <<"w">>, 42} to 'foo' as an OTP 25 node sent it with FRAGMENTS agreed.
ERLANG_FRAME = (
    b"\x00\x00\x009\x83D\x00h\x04a\x06Xw\x0be@127.0.0.2\x00\x00\x00\t\x00\x00\x00\x00"
    b"\x16\x08\xaf0w\x00w\x03fooh\x03w\x05hellom\x00\x00\x00\x01wa*"
)

terms = st.recursive(
    st.integers(-(2**70), 2**70)
    | st.binary(max_size=40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10).filter(lambda s: s not in ("true", "false")).map(Atom),
    lambda inner: st.lists(inner, max_size=5).map(tuple) | st.tuples(inner, inner),
    max_leaves=20,
)


def fragments(seq: int, control_msg: tuple[Any, ...], message: Any, size: int) -> list[bytes]:
    """Frames of one message cut into fragments of `size` body bytes, the way erts sends them."""
    body = encode(control_msg)[1:] + encode(message)[1:]
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    frames = []
    for n, chunk in enumerate(chunks):
        frag_id = len(chunks) - n
        if n == 0:
            head = struct.pack(">BBQQB", 131, 69, seq, frag_id, 0)
        else:
            head = struct.pack(">BBQQ", 131, 70, seq, frag_id)
        frames.append(struct.pack(">I", len(head) + len(chunk)) + head + chunk)
    return frames


@pytest.mark.parametrize("writer", [PASS_THROUGH, HEADER], ids=["pass-through", "header"])
def test_round_trip_with_and_without_message(writer: FrameWriter) -> None:
    reader = FrameReader()
    data = writer.frame(control.reg_send(PID, Atom("foo")), (Atom("hi"), b"x", 1))
    data += TICK + writer.frame(control.link(PID, PID))
    assert reader.feed(data) == [
        ((control.REG_SEND, PID, Atom(""), Atom("foo")), (Atom("hi"), b"x", 1)),
        ((control.LINK, PID, PID), control.NO_MESSAGE),
    ]
    assert reader.buffered == 0


def test_writer_form_follows_the_agreed_flags() -> None:
    assert HEADER.frame(control.link(PID, PID))[4:7] == b"\x83D\x00"
    assert PASS_THROUGH.frame(control.link(PID, PID))[4:6] == b"p\x83"


def test_erlang_header_frame_decodes() -> None:
    [(ctl, msg)] = FrameReader().feed(ERLANG_FRAME)
    assert ctl == (6, Pid(Atom("e@127.0.0.2"), 9, 0, 0x1608AF30), Atom(""), Atom("foo"))
    assert msg == (Atom("hello"), b"w", 42)
    assert HEADER.frame(ctl, msg) == ERLANG_FRAME


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(terms, st.booleans()), min_size=1, max_size=8), st.integers(1, 64))
def test_any_split_of_many_frames_gives_the_same_messages(
    items: list[tuple[Any, bool]], chunk: int
) -> None:
    writer = HEADER if chunk % 2 else PASS_THROUGH
    frames = [
        (control.send(PID), term)
        if with_msg
        else (control.unlink_id(3, PID, PID), control.NO_MESSAGE)
        for term, with_msg in items
    ]
    data = b"".join(writer.frame(c, m) + TICK for c, m in frames)
    reader = FrameReader()
    got = []
    for i in range(0, len(data), chunk):
        got += reader.feed(data[i : i + chunk])
    assert got == frames
    assert reader.buffered == 0


@pytest.mark.parametrize("size", [1, 7, 64])
def test_interleaved_fragments_are_reassembled(size: int) -> None:
    big = (Atom("data"), bytes(range(256)) * 3)
    small = [1000, 2000, 3000]
    a = fragments(1, control.send(PID), big, size)
    b = fragments(2, control.reg_send(PID, Atom("x")), small, size)
    interleaved = (
        [frame for pair in zip(a, b, strict=False) for frame in pair] + a[len(b) :] + b[len(a) :]
    )
    reader = FrameReader()
    got = []
    for frame in interleaved:
        got += reader.feed(frame)
    assert sorted(got, key=lambda f: f[0][0]) == [
        (control.send(PID), big),
        (control.reg_send(PID, Atom("x")), small),
    ]
    assert reader.buffered == 0


@settings(max_examples=100, deadline=None)
@given(
    st.binary(max_size=3000) | st.sampled_from([b"x" * 70_000]),
    st.integers(1, 5000),
    st.integers(1, 3000),
    st.booleans(),
)
def test_fragmented_binaries_and_long_controls_in_any_split(
    message: bytes, size: int, read: int, long_control: bool
) -> None:
    """A binary message is joined straight out of its fragments: every fragment size and read
    split gives the same binary, also when the control term does not fit in the first fragment
    (then the whole message is joined and decoded)."""
    to = Atom("t" * 250 if long_control else "t")
    ctl = control.reg_send(PID, to)
    frames = fragments(3, ctl, message, size) + fragments(4, ctl, (message, 1), size)
    data = b"".join(frames)
    reader = FrameReader()
    got = []
    for i in range(0, len(data), read):
        got += reader.feed(data[i : i + read])
    assert got == [(ctl, message), (ctl, (message, 1))]
    assert type(got[0][1]) is bytes
    assert reader.buffered == 0


def test_single_fragment_message() -> None:
    [frame] = fragments(9, control.send(PID), Atom("one"), 10_000)
    assert FrameReader().feed(frame) == [(control.send(PID), Atom("one"))]


def test_reassembly_is_bounded() -> None:
    reader = FrameReader(max_reassembly_bytes=100)
    frames = fragments(1, control.send(PID), b"x" * 500, 60)
    with pytest.raises(FrameError, match="reassembly"):
        for frame in frames:
            reader.feed(frame)


@pytest.mark.parametrize(
    "body, match",
    [
        (b"\x83D\x01\x00", "atom cache"),  # atom-cache refs never negotiated
        (b"\x83E" + struct.pack(">QQB", 1, 2, 1), "atom cache"),
        (b"\x83F" + struct.pack(">QQ", 1, 1) + b"x", "expected none"),  # continuation, no start
        (b"\x83E" + struct.pack(">QQB", 1, 0, 0), "fragment id 0"),
        (b"\x83E" + struct.pack(">QQ", 1, 2), "truncated"),
        (b"\x83Z\x00", "unknown distribution header"),
        (b"q", "unknown frame kind"),
        (b"p\x83a\x01", "not a tuple"),  # control is an integer
        (b"p\x83h\x01a\x02\x83a\x01\x00", "message term"),  # junk after the message
        (b"p\x83h\x01", "undecodable"),
        (b"p\x84", "undecodable"),
    ],
)
def test_protocol_violations_raise_frame_error(body: bytes, match: str) -> None:
    with pytest.raises(FrameError, match=match):
        FrameReader().feed(struct.pack(">I", len(body)) + body)


def test_duplicate_fragment_start_is_rejected() -> None:
    first = fragments(4, control.send(PID), b"y" * 100, 30)[0]
    reader = FrameReader()
    reader.feed(first)
    with pytest.raises(FrameError, match="started twice"):
        reader.feed(first)


def test_oversized_frame_is_rejected_before_it_arrives() -> None:
    reader = FrameReader(max_frame_size=1000)
    with pytest.raises(FrameError, match="exceeds"):
        reader.feed(struct.pack(">I", 1001))


def test_truncated_frame_waits() -> None:
    data = PASS_THROUGH.frame(control.send(PID), b"payload")
    reader = FrameReader()
    assert reader.feed(data[:-1]) == []
    assert reader.feed(data[-1:]) == [(control.send(PID), b"payload")]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 16))
def test_garbage_only_raises_frame_error(data: bytes, chunk: int) -> None:
    reader = FrameReader(max_frame_size=10_000, max_reassembly_bytes=10_000)
    try:
        for i in range(0, len(data), chunk):
            for ctl, _msg in reader.feed(data[i : i + chunk]):
                assert type(ctl) is tuple and type(ctl[0]) is int
    except FrameError:
        pass


@pytest.mark.parametrize("writer", [PASS_THROUGH, HEADER], ids=["pass-through", "header"])
def test_large_message_round_trip(writer: FrameWriter) -> None:
    big = bytes(range(256)) * 1000
    assert FrameReader().feed(writer.frame(control.send(PID), big)) == [(control.send(PID), big)]


@pytest.mark.parametrize("writer", [PASS_THROUGH, HEADER], ids=["pass-through", "header"])
@pytest.mark.parametrize("ctl", [control.send(PID), control.reg_send(PID, Atom("rx"))])
def test_binary_frame_is_the_frame_in_two_pieces(writer: FrameWriter, ctl: tuple) -> None:
    big = bytes(range(256)) * 1000
    head, payload = writer.binary_frame(ctl, big)
    assert payload is big  # not copied
    assert head + payload == writer.frame(ctl, big)


def test_many_interleaved_senders_decode_exactly() -> None:
    """More senders than the reader remembers, interleaved: every control term is right."""
    senders = [Pid(Atom("a@h.example"), n, 0, 7) for n in range(10)]
    frames = [
        (control.reg_send(senders[(i * 7) % 10], Atom(f"to{i % 3}")), (Atom("m"), i))
        for i in range(200)
    ]
    data = b"".join(HEADER.frame(c, m) for c, m in frames)
    reader = FrameReader()
    got = []
    for i in range(0, len(data), 97):
        got += reader.feed(data[i : i + 97])
    assert got == frames
    assert all(type(c[1]) is Pid and c[1].id == f[0][1].id for (c, _), f in zip(got, frames, strict=True))


def test_a_remembered_control_term_never_extends_past_its_frame() -> None:
    """A frame cut inside a control term the reader knows must not borrow the next frame's bytes."""
    pid = Pid(Atom("a@h.example"), 5, 0, 0)  # its encoding ends with a 0 byte
    good = HEADER.frame(control.send(pid), 1)
    ctl = encode(control.send(pid))[1:]
    assert ctl[-1] == 0
    cut = struct.pack(">I", 3 + len(ctl) - 1) + b"\x83D\x00" + ctl[:-1]
    reader = FrameReader()
    assert reader.feed(good) == [(control.send(pid), 1)]
    with pytest.raises(FrameError, match="runs past its frame"):
        reader.feed(cut + good)


def test_messages_with_lists_are_fresh_objects_every_time() -> None:
    message = (Atom("m"), [Atom("a"), 1000])
    frame = HEADER.frame(control.send(PID), message)
    reader = FrameReader()
    got = [m for _c, m in reader.feed(frame * 4)]
    assert got == [message] * 4
    assert len({id(m[1]) for m in got}) == 4


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), terms), min_size=1, max_size=30))
def test_writer_frames_equal_freshly_encoded_ones(sends: list[tuple[int, int, Any]]) -> None:
    """The writer's remembered frame heads give the bytes a writer without history gives."""
    pids = [Pid(Atom("a@h.example"), n, 0, 7) for n in range(4)]
    names = [Atom(f"n{n}") for n in range(4)]
    for writer_flags in (flags.MANDATORY, flags.MANDATORY | flags.FRAGMENTS):
        writer = FrameWriter(writer_flags)
        for sender, dest, message in sends:
            for ctl in (
                control.reg_send(pids[sender], names[dest]),
                control.send(pids[dest]),
                control.send_sender(pids[sender], pids[dest]),
            ):
                assert writer.frame(ctl, message) == FrameWriter(writer_flags).frame(ctl, message)


# --- the compiled frame loop (beamlink.etf.read_frames) against the Python one -----------------

MAX_FRAME = 4096


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


@st.composite
def frame_streams(draw: st.DrawFn) -> bytes:
    """Frames of every kind a peer may send, well-formed or not, back to back."""
    pieces = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(
            ["message", "message", "message", "no_message", "tick", "pass_through", "fragments",
             "too_long", "atom_cache", "not_a_tuple", "trailing", "short", "garbage", "edited"]
        ))
        to = draw(st.sampled_from([PID, Atom("name"), 7]))
        ctl = draw(st.sampled_from([
            control.send(PID), control.reg_send(PID, Atom("name")), control.alias_send(PID, PID),
            (control.SEND_SENDER, PID, to), (control.SEND, Atom(""), to), (99, PID),
        ]))
        message = draw(terms)
        if kind == "message":
            pieces.append(HEADER.frame(ctl, message))
        elif kind == "no_message":
            pieces.append(HEADER.frame(control.link(PID, PID)))
        elif kind == "tick":
            pieces.append(TICK)
        elif kind == "pass_through":
            pieces.append(PASS_THROUGH.frame(ctl, message))
        elif kind == "fragments":
            pieces += fragments(draw(st.integers(0, 3)), ctl, message, draw(st.integers(1, 40)))
        elif kind == "too_long":
            pieces.append(struct.pack(">I", MAX_FRAME + 1) + b"\x83D\x00")
        elif kind == "atom_cache":
            pieces.append(_frame(b"\x83D\x01" + HEADER.frame(ctl, message)[7:]))
        elif kind == "not_a_tuple":
            pieces.append(_frame(b"\x83D\x00" + encode(message)[1:] + encode(message)[1:]))
        elif kind == "trailing":
            pieces.append(_frame(HEADER.frame(ctl, message)[4:] + draw(st.binary(min_size=1, max_size=4))))
        elif kind == "short":
            pieces.append(_frame(HEADER.frame(ctl, message)[4 : draw(st.integers(4, 12))]))
        elif kind == "garbage":
            pieces.append(_frame(b"\x83D\x00" + draw(st.binary(max_size=20))))
        else:  # one byte of a good frame's body changed
            body = bytearray(HEADER.frame(ctl, message)[4:])
            body[draw(st.integers(3, len(body) - 1))] = draw(st.integers(0, 255))
            pieces.append(_frame(bytes(body)))
    return b"".join(pieces)


@pytest.mark.skipif(not etf.ACCELERATED, reason="the compiled codec is not in use")
@settings(max_examples=200, deadline=None)
@given(frame_streams(), st.lists(st.integers(0, 4000), max_size=6))
def test_compiled_frame_loop_agrees_with_python(data: bytes, cuts: list[int]) -> None:
    """Any stream, split at any points: the same messages from each read, the same error (or
    the same bytes left over) with and without the compiled loop."""
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    reads = [data[a:b] for a, b in pairwise(points)]
    same_outcome(reads, max_frame_size=MAX_FRAME, max_reassembly_bytes=MAX_FRAME)


@pytest.mark.skipif(not etf.ACCELERATED, reason="the compiled codec is not in use")
def test_compiled_frame_loop_takes_the_common_frames() -> None:
    """The compiled loop really runs: it decodes header frames and stops at others."""
    out: list[Any] = []
    ctl = control.reg_send(PID, Atom("foo"))
    data = HEADER.frame(ctl, 1) + TICK + HEADER.frame(ctl) + PASS_THROUGH.frame(ctl, 2)
    assert etf.read_frames is not None
    stop = etf.read_frames(data, 0, 1 << 20, 1 << 20, 512, control.NO_MESSAGE, out)
    assert out == [(ctl, 1), (ctl, control.NO_MESSAGE)]
    assert stop == len(data) - len(PASS_THROUGH.frame(ctl, 2))
