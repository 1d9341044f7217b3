"""Frames of a connected distribution channel (after the handshake), sans-I/O.

Every frame is ``Len:32`` then ``Len`` bytes; ``Len == 0`` is a tick. Forms of the body
(erl_ext_dist "Distribution Header", erts dist.c):

- ``112, 131 ControlTerm [, 131 Message]``: pass-through, used when neither FRAGMENTS nor
  DIST_HDR_ATOM_CACHE was agreed.
- ``131, 68, NumberOfAtomCacheRefs, ControlTerm [, Message]``: the normal header. The terms carry
  no 131 of their own. Erlang uses this form for every message once FRAGMENTS is agreed (with
  zero atom-cache refs because we never offer DIST_HDR_ATOM_CACHE) and rejects pass-through
  frames then; `FrameWriter` therefore follows the agreed flags.
- ``131, 69, SequenceId:64, FragmentId:64, NumberOfAtomCacheRefs, ...`` starts a fragmented
  message of FragmentId fragments; ``131, 70, SequenceId:64, FragmentId:64, ...`` continues it,
  FragmentId counting down to 1. Fragments of different sequences may interleave.

Atom-cache references are refused (`FrameError`): we do not offer DIST_HDR_ATOM_CACHE, so a peer
using them broke the protocol. Memory is bounded: one frame by `max_frame_size`, the fragments
waiting for reassembly by `max_reassembly_bytes` in total, and what decoding one frame's terms
allocates by `max_term_memory` (the codec's memory budget, see docs/etf.md "Safety"; a frame
too small to reach it, at `ALLOC_PER_BYTE` bytes of memory per input byte, is decoded without
the bookkeeping).

Speed: `FrameReader.feed` extracts every complete frame of a read in one pass, decoding at
offsets of the read itself (the codec copies anything but `bytes`). With the compiled codec, the
frames of the common form (ticks, and ``131, 68, 0`` frames whose terms it decodes) are walked
and decoded by one C call (`beamlink.etf.read_frames`) up to the first frame of any other kind
or with any problem, which this module's Python code then handles exactly as without the
compiled codec (so the errors are the same), and the C call resumes after it. An incomplete
frame is kept as the list of its reads; the read completing it gives only the missing bytes to
its one join (so a big frame arriving in many reads costs linear time, not quadratic) and is
scanned in place after them. A fragmented message keeps a copy of each fragment's payload; when
the message is one binary (the usual big message) that binary is joined straight out of them, so
a 1 MiB binary is copied twice after the socket's read (payloads, join), not four times (reads
joined, payloads, payloads joined, binary sliced out).

In the Python path (the pure codec, and frames the C loop leaves to it): the control term of a
message (SEND, REG_SEND, SEND_SENDER, ALIAS_SEND) is byte-identical for every message one sender
sends to one destination, so the reader remembers the last few such control terms that came more
than once, with their bytes, and recognises them with one comparison instead of decoding them
(a ``131, 68, 0`` frame whose control term is the newest of them is handled in the read loop
itself, without the calls of the general path: ~0.3-0.5 µs of the pure codec's ~2.5 µs per
frame); the message itself goes through `decode_body_exact`, which memoizes small immutable terms.
`FrameWriter` likewise keeps the encoded frame head (header and control term) of those
operations.
"""

from __future__ import annotations

import reprlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from beamlink.distribution import flags as dflags
from beamlink.distribution.control import ALIAS_SEND, NO_MESSAGE, REG_SEND, SEND, SEND_SENDER
from beamlink.errors import RemoteProtocolError
from beamlink.etf import (
    ALLOC_PER_BYTE,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_SIZE,
    DecodeError,
    MemoryBudgetError,
    binary_span,
    decode_body_exact,
    decode_body_from,
    decode_from,
    encode,
    with_memory_budget,
)
from beamlink.etf import read_frames as _read_frames
from beamlink.etf.tags import BINARY_EXT

PASS_THROUGH = 112
VERSION_MAGIC = 131
DIST_HEADER = 68
DIST_FRAG_HEADER = 69
DIST_FRAG_CONT = 70

TICK = b"\x00\x00\x00\x00"
DEFAULT_MAX_FRAME_SIZE = DEFAULT_MAX_SIZE
DEFAULT_MAX_REASSEMBLY_BYTES = DEFAULT_MAX_SIZE
#: What decoding the terms of one frame may allocate (beyond the frame's own bytes).
DEFAULT_MAX_TERM_MEMORY = 64 * 1024 * 1024

_U32 = struct.Struct(">I")
_FRAG = struct.Struct(">QQ")
_FRAG_HEADER_SIZE = 2 + _FRAG.size  # 131, 69|70, SequenceId, FragmentId
_HEADER_PREFIX = bytes([VERSION_MAGIC, DIST_HEADER, 0])
_COPY_LIMIT = 64 * 1024
_BINARY_TAG = bytes([BINARY_EXT])
_VERSIONED_BINARY_TAG = bytes([VERSION_MAGIC, BINARY_EXT])

#: A message that is one binary of at least this many bytes is better framed by
#: `FrameWriter.binary_frame` (written without copying its bytes) than by `FrameWriter.frame`.
BIG_BINARY = 64 * 1024

#: Operations whose control terms are remembered (by both reader and writer): they hold only
#: the operation, pids, atoms and references, so equal tuples have identical encodings.
_MESSAGE_OPS = frozenset({SEND, REG_SEND, SEND_SENDER, ALIAS_SEND})
_RECENT_CONTROLS = 4  # reader: how many recent control terms are recognised by their bytes
_SEEN_CONTROLS = 64  # reader: how many control terms seen once are remembered as candidates
_MAX_CONTROL_BYTES = 256
_WRITER_CACHE_LIMIT = 4096


class FrameError(RemoteProtocolError, ValueError):
    """A frame that breaks the protocol; the connection must be dropped."""


Frame = tuple[tuple[Any, ...], Any]
_T = TypeVar("_T")


@dataclass
class _Partial:
    """A fragmented message being reassembled."""

    next_id: int
    parts: list[bytes] = field(default_factory=list)  # the fragments' payloads, in order
    size: int = 0


class FrameReader:
    """Turns received bytes into ``(control, message)`` pairs; ticks produce nothing."""

    def __init__(
        self,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_reassembly_bytes: int = DEFAULT_MAX_REASSEMBLY_BYTES,
        max_term_memory: int = DEFAULT_MAX_TERM_MEMORY,
    ) -> None:
        self.max_frame_size = max_frame_size
        self.max_reassembly_bytes = max_reassembly_bytes
        self.max_term_memory = max_term_memory
        self._unbudgeted_size = max_term_memory // ALLOC_PER_BYTE  # frames up to this skip it
        self._rest: list[bytes] = []  # reads holding an incomplete frame
        self._rest_size = 0
        self._rest_needed = 0  # bytes the incomplete frame needs (4 while its length is unknown)
        self._partials: dict[int, _Partial] = {}
        self._pending_bytes = 0
        # (encoding, control term) of recent message-carrying control terms, newest first,
        # and the encodings of those seen once (candidates).
        self._controls: list[tuple[bytes, tuple[Any, ...]]] = []
        self._seen_controls: set[bytes] = set()

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame or message."""
        return self._rest_size + self._pending_bytes

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the messages of every frame they completed."""
        if type(data) is not bytes:
            data = bytes(data)
        out: list[Frame] = []
        pos = 0
        if self._rest:
            pos = self._complete_rest(data, out)
            if pos < 0:
                return out
        size = len(data)
        max_frame = self.max_frame_size
        needed = 4
        read_frames = _read_frames
        unbudgeted = self._unbudgeted_size
        controls = self._controls
        unpack_length = _U32.unpack_from
        while size - pos >= 4:
            if read_frames is not None:
                # The common frames are decoded in C up to the first one left to this loop.
                pos = read_frames(
                    data, pos, max_frame, unbudgeted, DEFAULT_MAX_DEPTH, NO_MESSAGE, out
                )
                if size - pos < 4:
                    break
            (length,) = unpack_length(data, pos)
            if length > max_frame:
                raise FrameError(f"frame of {length} bytes exceeds the limit of {max_frame}")
            end = pos + 4 + length
            if end > size:
                needed = 4 + length
                break
            if (
                3 < length <= unbudgeted
                and controls
                and data[pos + 5] == DIST_HEADER
                and data[pos + 4] == VERSION_MAGIC
                and not data[pos + 6]
                and data.startswith(controls[0][0], pos + 7, end)
            ):
                # What `_one` does for a 131, 68, 0 frame whose control term is the newest
                # remembered one (a stream of messages), without its calls.
                raw, control = controls[0]
                start = pos + 7 + len(raw)
                out.append((control, NO_MESSAGE if start == end else _message(data, start, end)))
            elif length:
                self._one(data, pos + 4, end, out)
            pos = end
        if pos < size:
            self._rest = [data[pos:]]  # at most one frame's start
            self._rest_size = size - pos
            self._rest_needed = needed
        return out

    def _complete_rest(self, data: bytes, out: list[Frame]) -> int:
        """Finish the incomplete frame kept from earlier reads with the start of ``data``; return
        where in ``data`` the next frame starts, or -1 if ``data`` did not complete it (kept)."""
        rest = self._rest
        before = self._rest_size
        needed = self._rest_needed
        if before + len(data) >= 4 and needed == 4:  # its length is complete now
            (length,) = _U32.unpack(b"".join(rest) + data[: 4 - before])  # before < 4 here
            if length > self.max_frame_size:
                raise FrameError(
                    f"frame of {length} bytes exceeds the limit of {self.max_frame_size}"
                )
            needed = self._rest_needed = 4 + length
        if before + len(data) < needed:
            rest.append(data)
            self._rest_size += len(data)
            return -1
        # Only the missing part of this one frame is joined; the rest of ``data`` is scanned
        # where it is (joining whole reads copied every byte of a stream of frames once more).
        take = needed - before
        frame = b"".join([*rest, memoryview(data)[:take]])
        self._rest = []
        self._rest_size = 0
        self._rest_needed = 0
        if needed > 4:
            self._one(frame, 4, needed, out)
        return take

    def _one(self, buf: bytes, start: int, end: int, out: list[Frame]) -> None:
        """Decode the (non-tick) frame body ``buf[start:end]`` into ``out``."""
        if end - start > 3 and buf[start + 1] == DIST_HEADER and buf[start] == VERSION_MAGIC:
            # The common case with FRAGMENTS agreed: 131, 68, 0 (no atom cache refs).
            if buf[start + 2]:
                _check_no_atom_cache(buf[start + 2])
            if end - start <= self._unbudgeted_size:
                out.append(self._bare_pair(buf, start + 3, end))
            else:
                out.append(self._budgeted(self._bare_pair, buf, start + 3, end))
        else:
            self._frame(buf, start, end, out)

    def _frame(self, buf: bytes, start: int, end: int, out: list[Frame]) -> None:
        kind = buf[start]
        if kind == PASS_THROUGH:
            # Always budgeted: a compressed term may inflate far beyond the frame.
            out.append(self._budgeted(_decode_pair, buf, start + 1, end, always=True))
            return
        if kind != VERSION_MAGIC or end - start < 3:
            raise FrameError(f"unknown frame kind {kind} ({end - start} bytes)")
        tag = buf[start + 1]
        if tag == DIST_HEADER:
            _check_no_atom_cache(buf[start + 2])
            out.append(self._budgeted(self._bare_pair, buf, start + 3, end))
        elif tag in (DIST_FRAG_HEADER, DIST_FRAG_CONT):
            self._fragment(buf, start, end, tag, out)
        else:
            raise FrameError(f"unknown distribution header 131,{tag}")

    def _fragment(self, buf: bytes, start: int, end: int, tag: int, out: list[Frame]) -> None:
        if end - start < _FRAG_HEADER_SIZE + (tag == DIST_FRAG_HEADER):
            raise FrameError("truncated fragment header")
        seq, frag_id = _FRAG.unpack_from(buf, start + 2)
        data_start = start + _FRAG_HEADER_SIZE
        if frag_id == 0:
            raise FrameError(f"fragment id 0 in sequence {seq}")
        if tag == DIST_FRAG_HEADER:
            _check_no_atom_cache(buf[data_start])
            data_start += 1
            if seq in self._partials:
                raise FrameError(f"sequence {seq} started twice")
            if frag_id == 1:
                out.append(self._budgeted(self._bare_pair, buf, data_start, end))
                return
            partial = self._partials[seq] = _Partial(next_id=frag_id - 1)
        else:
            found = self._partials.get(seq)
            if found is None or found.next_id != frag_id:
                expected = "none" if found is None else found.next_id
                raise FrameError(f"fragment {frag_id} of sequence {seq} (expected {expected})")
            partial = found
            partial.next_id -= 1
        chunk = buf[data_start:end]
        partial.parts.append(chunk)
        partial.size += len(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes > self.max_reassembly_bytes:
            raise FrameError(
                f"fragments waiting for reassembly exceed {self.max_reassembly_bytes} bytes"
            )
        if frag_id == 1 and tag == DIST_FRAG_CONT:
            del self._partials[seq]
            self._pending_bytes -= partial.size
            out.append(self._reassembled(partial.parts, partial.size))

    def _reassembled(self, parts: list[bytes], size: int) -> Frame:
        """Decode a reassembled ControlTerm [Message]. The control term is decoded from the
        first fragment when it fits there; a message that is one binary (the usual big message)
        is then joined straight out of the fragments, any other message decoded from their
        join. A control term that does not fit in the first fragment is decoded from the join
        with the message."""
        first = parts[0]
        try:
            if len(first) <= self._unbudgeted_size:
                control, pos = self._control(first, 0, size)
            else:
                control, pos = with_memory_budget(
                    self.max_term_memory, self._control, first, 0, size
                )
        except FrameError:
            if len(first) == size:
                raise
            whole = b"".join(parts)
            return self._budgeted(self._bare_pair, whole, 0, size)
        if pos == size:
            return control, NO_MESSAGE
        span = binary_span(first, pos)
        if span is not None and span[1] == size:
            return control, b"".join([memoryview(first)[span[0] :], *parts[1:]])
        # Budgeted (and reported) as the whole reassembled frame, as when the control term was
        # decoded again with the message.
        message = self._budgeted(
            lambda buf, _, end: _message(buf, pos, end), b"".join(parts), 0, size
        )
        return control, message

    def _budgeted(
        self,
        decode: Callable[[bytes, int, int], _T],
        buf: bytes,
        start: int,
        end: int,
        *,
        always: bool = False,
    ) -> _T:
        """``decode(buf, start, end)`` within the memory budget if the terms could exceed it."""
        if end - start <= self._unbudgeted_size and not always:
            return decode(buf, start, end)
        try:
            return with_memory_budget(self.max_term_memory, decode, buf, start, end)  # type: ignore[no-any-return]
        except FrameError as exc:
            if isinstance(exc.__cause__, MemoryBudgetError):
                raise FrameError(
                    f"a frame of {end - start} bytes needs more than the memory budget of "
                    f"{self.max_term_memory} bytes to decode (max_term_memory)"
                ) from exc.__cause__
            raise

    def _bare_pair(self, buf: bytes, start: int, end: int) -> Frame:
        """Decode ControlTerm [Message] (terms without their 131) in ``buf[start:end]``."""
        control, pos = self._control(buf, start, end)
        if pos == end:
            return control, NO_MESSAGE
        return control, _message(buf, pos, end)

    def _control(self, buf: bytes, start: int, end: int) -> tuple[tuple[Any, ...], int]:
        """The control term at ``buf[start]`` (of a frame ending at ``end``) and where it ends."""
        controls = self._controls
        for index, known in enumerate(controls):
            if buf.startswith(known[0], start, end):
                if index:  # most recently used first
                    controls.insert(0, controls.pop(index))
                return known[1], start + len(known[0])
        try:
            control, pos = decode_body_from(buf, start)
        except DecodeError as exc:
            raise FrameError(f"undecodable term: {exc}") from exc
        _check_control(control, pos, end)
        if control[0] in _MESSAGE_OPS and pos - start <= _MAX_CONTROL_BYTES:
            self._remember(buf[start:pos], control)
        return control, pos

    def _remember(self, raw: bytes, control: tuple[Any, ...]) -> None:
        """Keep a control term seen for the second time among the recent ones, so that one-off
        terms (the reply of each call goes to a new process) do not push out the streams."""
        if raw in self._seen_controls:
            self._controls.insert(0, (raw, control))
            del self._controls[_RECENT_CONTROLS:]
            return
        if len(self._seen_controls) >= _SEEN_CONTROLS:
            self._seen_controls.clear()
        self._seen_controls.add(raw)


def _message(buf: bytes, start: int, end: int) -> Any:
    """Decode the message term that fills ``buf[start:end]`` (no 131 of its own)."""
    try:
        return decode_body_exact(buf, start, end)
    except DecodeError as exc:
        raise FrameError(f"undecodable term: {exc}") from exc


def _check_control(control: Any, pos: int, end: int) -> None:
    if type(control) is not tuple or not control or type(control[0]) is not int:
        raise FrameError(
            "control message is not a tuple starting with an operation: " + reprlib.repr(control)
        )
    if pos > end:
        raise FrameError("control term runs past its frame")


def _check_no_atom_cache(count: int) -> None:
    if count:
        raise FrameError(
            f"peer used {count} atom cache refs, but DIST_HDR_ATOM_CACHE was not negotiated"
        )


def _decode_pair(buf: bytes, start: int, end: int) -> Frame:
    """Decode 131 ControlTerm [131 Message] (a pass-through frame) in ``buf[start:end]``."""
    # The frame size is already bounded, so the buffer's size is the inflation cap.
    try:
        control, pos = decode_from(buf, start, max_size=len(buf))
        _check_control(control, pos, end)
        if pos == end:
            return control, NO_MESSAGE
        message, pos = decode_from(buf, pos, max_size=len(buf))
    except DecodeError as exc:
        raise FrameError(f"undecodable term: {exc}") from exc
    if pos != end:
        raise FrameError(f"message term ends {pos - end:+d} bytes from its frame's end")
    return control, message


class FrameWriter:
    """Encodes ``(control, message)`` into frames, in the form the agreed flags ask for."""

    def __init__(self, agreed_flags: int) -> None:
        self.header_form = bool(agreed_flags & (dflags.FRAGMENTS | dflags.DIST_HDR_ATOM_CACHE))
        # control term of a message operation -> its frame head (header byte(s) and the term)
        self._heads: dict[tuple[Any, ...], bytes] = {}

    def frame(self, control: tuple[Any, ...], message: Any = NO_MESSAGE) -> bytes:
        """One complete frame (length included), ready to be joined with others in one write."""
        head = self._heads.get(control) if control[0] in _MESSAGE_OPS else None
        if head is None:
            head = self._head(control)
        if message is NO_MESSAGE:
            return _U32.pack(len(head)) + head
        msg = encode(message)
        if not self.header_form:
            return b"".join((_U32.pack(len(head) + len(msg)), head, msg))
        # Header form: the message goes without its leading 131 (big ones are not copied).
        body = memoryview(msg)[1:] if len(msg) > _COPY_LIMIT else msg[1:]
        return b"".join((_U32.pack(len(head) + len(body)), head, body))

    def binary_frame(self, control: tuple[Any, ...], payload: bytes) -> tuple[bytes, bytes]:
        """The frame of a message that is one binary, ``payload``, as two pieces to write one
        after the other: everything before the binary's bytes, and ``payload`` itself, never
        copied (`frame` of the same would copy it twice: into the encoding, then into the
        frame). Meant for big binaries (`BIG_BINARY` bytes and more)."""
        head = self._heads.get(control) if control[0] in _MESSAGE_OPS else None
        if head is None:
            head = self._head(control)
        size = len(payload)
        # The message's encoding: BINARY_EXT, its length, the bytes (131 first when not in the
        # header form).
        tag = _BINARY_TAG if self.header_form else _VERSIONED_BINARY_TAG
        return _U32.pack(len(head) + len(tag) + 4 + size) + head + tag + _U32.pack(size), payload

    def _head(self, control: tuple[Any, ...]) -> bytes:
        ctl = encode(control)
        head = _HEADER_PREFIX + ctl[1:] if self.header_form else b"p" + ctl
        if control[0] in _MESSAGE_OPS:
            if len(self._heads) >= _WRITER_CACHE_LIMIT:
                self._heads.clear()
            self._heads[control] = head
        return head
