"""Run a `FrameReader` over the same reads with and without the compiled frame loop
(`beamlink.etf.read_frames`), so tests can check that both give the same results and errors."""

from __future__ import annotations

from unittest import mock

from beamlink.distribution import frames
from beamlink.distribution.frames import FrameError, FrameReader


def outcome(reads: list[bytes], *, compiled: bool, **limits: int) -> tuple[list[str], str]:
    """What a fresh reader gives for ``reads``: the repr of each `feed`'s messages (repr, so that
    ``1 == 1.0 == True`` cannot hide a difference), then the FrameError that stopped it (type and
    text) or the bytes it still buffers."""
    reader = FrameReader(**limits)
    got: list[str] = []
    loop = frames._read_frames if compiled else None
    with mock.patch.object(frames, "_read_frames", loop):
        try:
            for piece in reads:
                got.append(repr(reader.feed(piece)))
        except FrameError as exc:
            return got, f"{type(exc).__name__}: {exc} (cause {exc.__cause__!r})"
    return got, f"buffered {reader.buffered}"


def same_outcome(reads: list[bytes], **limits: int) -> tuple[list[str], str]:
    """`outcome` of ``reads`` with the compiled loop, asserted equal to the pure Python one's."""
    compiled = outcome(reads, compiled=True, **limits)
    assert compiled == outcome(reads, compiled=False, **limits)
    return compiled
