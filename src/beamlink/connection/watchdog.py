"""The loop watchdog: measures the event loop's lag, names what blocked it, and keeps distribution
connections ticking while the loop is stalled.

One watchdog serves one event loop (every `ConnectionManager` on that loop attaches to it) and has
two halves:

- on the loop, a *beat* timer every ``period`` (a quarter of the stall threshold) records how late
  it ran: that lateness is the loop's lag (`LagStats`). A beat at least ``threshold`` late ends a
  stall: it logs one rate-limited WARNING naming what blocked the loop (INFO when the loop sat
  idle in its selector meanwhile: the process lacked CPU or another thread held the GIL).
- a daemon thread wakes every ``period``. When the beat is overdue it *samples* the loop thread's
  stack (``sys._current_frames()``) and the running asyncio task, so the warning can name the
  culprit (the location seen most often during the stall), and it writes ticks to every connection
  that is up (`DistConnection.tick_now`: between frames, under the connection's write lock), so
  peers do not declare this node down however long user code blocks the loop.

What the thread cannot do: run while C code holds the GIL (a long computation in an extension that
does not release it); then neither samples nor ticks happen until the GIL is free. Python code
(even a pure-Python busy loop) gives the GIL up every ``sys.getswitchinterval()`` (5 ms).
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import inspect
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

from beamlink.logs import RateLimiter
from beamlink.settings import DEFAULT_STALL_THRESHOLD

log = logging.getLogger(__name__)

MIN_PERIOD = 0.005
MAX_PERIOD = 1.0
# A stall that goes on this long is reported while it lasts (a deadlocked loop never ends one).
STILL_BLOCKED_AFTER = 60.0
WARNING_INTERVAL = 60.0
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SELECTORS = os.sep + "selectors.py"
_ASYNCIO_EVENTS = os.sep + os.path.join("asyncio", "events.py")


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    """Where the standard library and installed packages live (asked only once a stall is
    reported: sysconfig costs start-up time)."""
    import sysconfig

    return tuple(
        {os.path.normcase(p) + os.sep for key in ("stdlib", "platstdlib", "purelib", "platlib")
         if (p := sysconfig.get_paths().get(key))}
    )


class Tickable(Protocol):
    """A connection the watchdog can keep alive from its own thread."""

    net_ticktime: float

    def tick_now(self) -> bool:
        """Write one tick between frames if possible now (thread-safe); True when written."""


class Watched(Protocol):
    """What attaches to a watchdog: something with connections to keep ticking."""

    def connections(self) -> Sequence[Tickable]:
        """The connections that are up now."""


class LagStats:
    """Lag observations (seconds): a histogram over `LAG_BUCKETS`, the last and the largest lag,
    and the count of stalls (lags at or above the threshold). Written by the loop only."""

    __slots__ = ("buckets", "count", "last", "max", "stalls", "sum", "ticks")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LAG_BUCKETS) + 1)  # the last one is +Inf
        self.count = 0
        self.sum = 0.0
        self.last = 0.0
        self.max = 0.0
        self.stalls = 0
        self.ticks = 0  # ticks the watchdog thread wrote (written by the thread only)

    def observe(self, lag: float) -> None:
        self.buckets[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
        self.count += 1
        self.sum += lag
        self.last = lag
        if lag > self.max:
            self.max = lag

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus histograms want them, ending with ``+Inf``."""
        counts = list(self.buckets)
        out, total = [], 0
        for bound, count in zip([*map(str, LAG_BUCKETS), "+Inf"], counts, strict=True):
            total += count
            out.append((bound, total))
        return out


@dataclass(frozen=True)
class Culprit:
    """Where the loop thread was when sampled: the asyncio task (if any) and a code location."""

    task: str | None
    where: str  # "path:line in function"
    innermost: str  # the innermost frame, when it is library code called from ``where``
    idle: bool = False  # the loop was waiting in its selector: nothing on the loop ran

    def describe(self) -> str:
        running = f"task {self.task}" if self.task else "a callback (no task)"
        inner = f", inside {self.innermost}" if self.innermost != self.where else ""
        return f"{running} at {self.where}{inner}"


def _location(code_file: str, line: int | None, function: str) -> str:
    return f"{code_file}:{line} in {function}"


def _is_library(filename: str) -> bool:
    return os.path.normcase(filename).startswith(_library_dirs()) or filename.startswith("<")


def _loop_entry_frame() -> FrameType | None:
    """The frame that runs the loop when the loop itself is C code (uvloop): the first frame
    outside the running coroutines. When it is the loop thread's innermost frame, no Python code
    runs there: the loop waits in its C poll. None under asyncio's loop (its poll is in
    selectors.py, which `_sample` recognises) or when not called from a coroutine."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and not frame.f_code.co_flags & inspect.CO_COROUTINE:
        frame = frame.f_back
    while frame is not None and frame.f_code.co_flags & inspect.CO_COROUTINE:
        frame = frame.f_back
    if frame is None or frame.f_code.co_filename.endswith(_ASYNCIO_EVENTS):
        return None
    return frame


class LoopWatchdog:
    """Watches one event loop; get it with `LoopWatchdog.attach`, release it with `detach`."""

    _by_loop: dict[asyncio.AbstractEventLoop, LoopWatchdog] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float) -> None:
        self.loop = loop
        self.stats = LagStats()
        self._owners: dict[Watched, float] = {}
        self.threshold = threshold
        self._loop_thread = threading.get_ident()
        self._warnings = RateLimiter(interval=WARNING_INTERVAL)
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._last_beat = time.monotonic()
        self._samples: Counter[Culprit] = Counter()
        self._samples_lock = threading.Lock()
        self._stall_ticks = 0
        self._entry = _loop_entry_frame()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="beamlink-loop-watchdog", daemon=True
        )

    # -- attaching (loop thread) --------------------------------------------------------------

    @classmethod
    def attach(cls, owner: Watched, threshold: float = DEFAULT_STALL_THRESHOLD) -> LoopWatchdog:
        """The running loop's watchdog (started on first use) with ``owner`` attached.

        With several owners the smallest threshold wins. Call from the loop's thread.
        """
        if not threshold > 0:
            raise ValueError(f"stall threshold must be > 0 seconds, got {threshold!r}")
        loop = asyncio.get_running_loop()
        dog = cls._by_loop.get(loop)
        if dog is None or dog._stop.is_set():
            dog = cls._by_loop[loop] = cls(loop, threshold)
            dog._owners[owner] = threshold
            dog._start()
        else:
            dog._owners[owner] = threshold
            dog.threshold = min(dog._owners.values())
        return dog

    def detach(self, owner: Watched) -> None:
        """Release ``owner``; the last one stops the watchdog."""
        self._owners.pop(owner, None)
        if self._owners:
            self.threshold = min(self._owners.values())
            return
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._by_loop.get(self.loop) is self:
            del self._by_loop[self.loop]

    @property
    def period(self) -> float:
        """Seconds between beats and between the thread's looks."""
        return min(MAX_PERIOD, max(MIN_PERIOD, self.threshold / 4))

    def _start(self) -> None:
        self._schedule()
        self._thread.start()

    # -- the loop half ------------------------------------------------------------------------

    def _schedule(self) -> None:
        period = self.period
        self._due = self.loop.time() + period
        self._timer = self.loop.call_later(period, self._beat)

    def _beat(self) -> None:
        lag = max(0.0, self.loop.time() - self._due)
        self._last_beat = time.monotonic()
        self.stats.observe(lag)
        if lag >= self.threshold:
            self.stats.stalls += 1
            self._report(lag)
        elif self._samples or self._stall_ticks:
            with self._samples_lock:
                self._samples.clear()
                self._stall_ticks = 0
        if not self._stop.is_set():
            self._schedule()

    def _report(self, lag: float) -> None:
        with self._samples_lock:
            samples, self._samples = self._samples, Counter()
            ticks, self._stall_ticks = self._stall_ticks, 0
        culprit = samples.most_common(1)[0][0] if samples else None
        if culprit is None or culprit.idle:
            # Nothing on the loop ran long: the thread did not get the CPU or the GIL (a busy
            # machine, another thread computing). Worth knowing, not a bug in the code on the loop.
            self._warnings.log(
                log,
                logging.INFO,
                "idle",
                "event loop lagged %.3f s (threshold %.3f s) while %s: this process was short of "
                "CPU, or another thread held the GIL",
                lag,
                self.threshold,
                "idle in its selector" if culprit is not None else "not sampled",
            )
            return
        seen = samples[culprit]
        what = culprit.describe()
        key: object = culprit.where
        detail = f"; {seen} of {sum(samples.values())} samples there"
        if ticks:
            plural = "" if ticks == 1 else "s"
            detail += f"; the watchdog wrote {ticks} tick{plural} to keep peers connected"
        self._warnings.log(
            log,
            logging.WARNING,
            key,
            "event loop blocked for %.3f s (threshold %.3f s) by %s%s; move blocking code off the "
            "loop: a plain (not async) RPC target or GenServer callback runs in the worker pool, "
            "or await asyncio.to_thread(...)",
            lag,
            self.threshold,
            what,
            detail,
        )

    # -- the thread half ----------------------------------------------------------------------

    def _run(self) -> None:
        ticked: dict[Tickable, float] = {}
        long_reported = False
        while not self._stop.wait(self.period):
            loop = self.loop
            if loop.is_closed():
                return
            now = time.monotonic()
            overdue = now - self._last_beat - self.period
            if not loop.is_running() or overdue < self.period:
                ticked.clear()
                long_reported = False
                continue
            if overdue >= self.threshold / 2:
                self._sample()
            self._tick_connections(now, overdue, ticked)
            if overdue >= STILL_BLOCKED_AFTER and not long_reported:
                long_reported = True
                with self._samples_lock:
                    common = self._samples.most_common(1)
                log.warning(
                    "event loop blocked for %.0f s so far by %s",
                    overdue,
                    common[0][0].describe() if common else "an unknown culprit",
                )

    def _tick_connections(self, now: float, overdue: float, ticked: dict[Tickable, float]) -> None:
        for owner in list(self._owners):
            try:
                conns = list(owner.connections())
            except RuntimeError:  # changed while copied; look again next time
                continue
            for conn in conns:
                interval = conn.net_ticktime / 4
                last = ticked.get(conn)
                due = overdue >= interval / 4 if last is None else now - last >= interval
                if due and conn.tick_now():
                    ticked[conn] = now
                    self.stats.ticks += 1
                    with self._samples_lock:
                        self._stall_ticks += 1

    def _sample(self) -> None:
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return
        try:
            task = asyncio.current_task(self.loop)
        except RuntimeError:  # an interpreter that only answers for the calling thread's loop
            task = None
        task_name = None
        if task is not None:
            coro = task.get_coro()
            qualname = getattr(coro, "__qualname__", type(coro).__name__)
            task_name = f"{task.get_name()!r} ({qualname})"
        idle = task is None and (
            frame.f_code.co_filename.endswith(_SELECTORS) or frame is self._entry
        )
        innermost = _location(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)
        where = innermost
        walker: FrameType | None = frame
        while walker is not None:
            code = walker.f_code
            if not _is_library(code.co_filename) and code.co_filename != __file__:
                where = _location(code.co_filename, walker.f_lineno, code.co_name)
                break
            walker = walker.f_back
        del frame, walker
        with self._samples_lock:
            self._samples[Culprit(task_name, where, innermost, idle)] += 1

