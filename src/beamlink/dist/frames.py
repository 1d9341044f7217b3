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
waiting for reassembly by `max_reassembly_bytes` in total.

Speed: `FrameReader.feed` extracts every complete frame of a read in one pass, decoding at
offsets of one immutable buffer (the codec copies anything but `bytes`); only an incomplete
tail is kept, and joined to the next read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from beamlink.dist import flags as dflags
from beamlink.dist.control import NO_MESSAGE
from beamlink.etf import DEFAULT_MAX_SIZE, DecodeError, decode_body_from, decode_from, encode

PASS_THROUGH = 112
VERSION_MAGIC = 131
DIST_HEADER = 68
DIST_FRAG_HEADER = 69
DIST_FRAG_CONT = 70

TICK = b"\x00\x00\x00\x00"
DEFAULT_MAX_FRAME_SIZE = DEFAULT_MAX_SIZE
DEFAULT_MAX_REASSEMBLY_BYTES = DEFAULT_MAX_SIZE

_U32 = struct.Struct(">I")
_FRAG = struct.Struct(">QQ")
_FRAG_HEADER_SIZE = 2 + _FRAG.size  # 131, 69|70, SequenceId, FragmentId
_HEADER_PREFIX = bytes([VERSION_MAGIC, DIST_HEADER, 0])
_COPY_LIMIT = 64 * 1024


class FrameError(ValueError):
    """A frame that breaks the protocol; the connection must be dropped."""


Frame = tuple[tuple[Any, ...], Any]


@dataclass
class _Partial:
    """A fragmented message being reassembled."""

    next_id: int
    parts: list[bytes] = field(default_factory=list)
    size: int = 0


class FrameReader:
    """Turns received bytes into ``(control, message)`` pairs; ticks produce nothing."""

    def __init__(
        self,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_reassembly_bytes: int = DEFAULT_MAX_REASSEMBLY_BYTES,
    ) -> None:
        self.max_frame_size = max_frame_size
        self.max_reassembly_bytes = max_reassembly_bytes
        self._rest = b""
        self._partials: dict[int, _Partial] = {}
        self._pending_bytes = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame or message."""
        return len(self._rest) + self._pending_bytes

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the messages of every frame they completed."""
        buf = self._rest + data if self._rest else bytes(data)
        out: list[Frame] = []
        pos = 0
        size = len(buf)
        max_frame = self.max_frame_size
        while size - pos >= 4:
            (length,) = _U32.unpack_from(buf, pos)
            if length > max_frame:
                raise FrameError(f"frame of {length} bytes exceeds the limit of {max_frame}")
            end = pos + 4 + length
            if end > size:
                break
            if length:
                start = pos + 4
                if length > 3 and buf[start + 1] == DIST_HEADER and buf[start] == VERSION_MAGIC:
                    # The common case with FRAGMENTS agreed: 131, 68, 0 (no atom cache refs).
                    _check_no_atom_cache(buf[start + 2])
                    out.append(_decode_pair(buf, start + 3, end, bare=True))
                else:
                    self._frame(buf, start, end, out)
            pos = end
        self._rest = buf[pos:] if pos < size else b""
        return out

    def _frame(self, buf: bytes, start: int, end: int, out: list[Frame]) -> None:
        kind = buf[start]
        if kind == PASS_THROUGH:
            out.append(_decode_pair(buf, start + 1, end, bare=False))
            return
        if kind != VERSION_MAGIC or end - start < 3:
            raise FrameError(f"unknown frame kind {kind} ({end - start} bytes)")
        tag = buf[start + 1]
        if tag == DIST_HEADER:
            _check_no_atom_cache(buf[start + 2])
            out.append(_decode_pair(buf, start + 3, end, bare=True))
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
                out.append(_decode_pair(buf, data_start, end, bare=True))
                return
            partial = self._partials[seq] = _Partial(next_id=frag_id - 1)
        else:
            found = self._partials.get(seq)
            if found is None or found.next_id != frag_id:
                expected = "none" if found is None else found.next_id
                raise FrameError(f"fragment {frag_id} of sequence {seq} (expected {expected})")
            partial = found
            partial.next_id -= 1
        chunk = bytes(buf[data_start:end])
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
            whole = b"".join(partial.parts)
            out.append(_decode_pair(whole, 0, len(whole), bare=True))


def _check_no_atom_cache(count: int) -> None:
    if count:
        raise FrameError(
            f"peer used {count} atom cache refs, but DIST_HDR_ATOM_CACHE was not negotiated"
        )


def _decode_pair(buf: bytes, start: int, end: int, *, bare: bool) -> Frame:
    """Decode ControlTerm [Message] in ``buf[start:end]``; ``bare`` terms lack their 131."""
    decode = decode_body_from if bare else _decode_with_version
    try:
        control, pos = decode(buf, start)
        if pos == end:
            message: Any = NO_MESSAGE
        elif pos > end:
            raise FrameError("control term runs past its frame")
        else:
            message, pos = decode(buf, pos)
            if pos != end:
                raise FrameError(f"message term ends {pos - end:+d} bytes from its frame's end")
    except DecodeError as exc:
        raise FrameError(f"undecodable term: {exc}") from exc
    if type(control) is not tuple or not control or type(control[0]) is not int:
        raise FrameError(f"control message is not a tuple starting with an operation: {control!r}")
    return control, message


def _decode_with_version(buf: bytes, pos: int) -> tuple[Any, int]:
    # The frame size is already bounded, so the buffer's size is the inflation cap.
    return decode_from(buf, pos, max_size=len(buf))


class FrameWriter:
    """Encodes ``(control, message)`` into frames, in the form the agreed flags ask for."""

    def __init__(self, agreed_flags: int) -> None:
        self.header_form = bool(agreed_flags & (dflags.FRAGMENTS | dflags.DIST_HDR_ATOM_CACHE))

    def frame(self, control: tuple[Any, ...], message: Any = NO_MESSAGE) -> bytes:
        """One complete frame (length included), ready to be joined with others in one write."""
        ctl = encode(control)
        msg = b"" if message is NO_MESSAGE else encode(message)
        if not self.header_form:
            return b"".join((_U32.pack(1 + len(ctl) + len(msg)), b"p", ctl, msg))
        # Header form: the terms go without their leading 131.
        length = 2 + len(ctl) + (len(msg) - 1 if msg else 0)
        return b"".join((_U32.pack(length), _HEADER_PREFIX, ctl[1:], _without_version(msg)))


def _without_version(term: bytes) -> bytes | memoryview:
    """`term` minus its leading 131; big terms are sliced with a memoryview, not copied."""
    if len(term) > _COPY_LIMIT:
        return memoryview(term)[1:]
    return term[1:]
