"""Where synchronous user code runs: a bounded worker pool, so a blocking call blocks only the
process that made it, as in Erlang.

A node runs on one asyncio event loop. Coroutine functions run on it; plain (synchronous)
functions reached by RPC, and synchronous GenServer callbacks, are *submitted* here and run in one
of ``workers`` threads (default `DEFAULT_WORKERS`), concurrently, while the loop goes on with
everything else (ticks, other processes, other calls). Beyond ``workers`` calls at once, calls wait
for a free thread in arrival order.

Two markers change where a synchronous function runs:

- `on_loop`: on the event loop itself, inline. For quick functions that use the node's process
  API (sending, spawning), which is not thread-safe.
- `cpu_bound`: in a pool of ``processes`` worker processes (when the node has one; otherwise in a
  thread). For pure-Python CPU work, which holds the GIL: in a thread it still lets the loop run
  (the GIL is handed over every ``sys.getswitchinterval()``, 5 ms), but it slows the node down;
  in a process it does not. Functions and arguments must pickle; workers start with
  ``forkserver`` (a fork of this multi-threaded process would be unsafe).

Code running in a worker thread must not call the node's process API directly; GenServer's
``reply``/``cast`` are safe there (they hop to the loop). A worker thread cannot be interrupted:
when the process waiting for it is killed, the call still runs to its end and its result is
dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
from collections.abc import Callable
from concurrent.futures import Executor as _PoolExecutor
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from beamlink.settings import DEFAULT_WORKERS

if TYPE_CHECKING:  # multiprocessing loads only with a process pool (it costs start-up time)
    from concurrent.futures import ProcessPoolExecutor

_PLACEMENT = "__beamlink_runs__"
LOOP = "loop"
PROCESS = "process"

F = TypeVar("F", bound=Callable[..., Any])


def on_loop(fn: F) -> F:
    """Mark a synchronous function to run on the event loop (quick, uses the node's API)."""
    setattr(fn, _PLACEMENT, LOOP)
    return fn


def cpu_bound(fn: F) -> F:
    """Mark a synchronous, pure-Python CPU-bound function to run in the node's process pool."""
    setattr(fn, _PLACEMENT, PROCESS)
    return fn


def runs_inline(fn: Callable[..., Any]) -> bool:
    """True when ``fn`` runs on the event loop: a coroutine function, or marked `on_loop`."""
    return getattr(fn, _PLACEMENT, None) == LOOP or inspect.iscoroutinefunction(fn)


def _settle(
    fut: asyncio.Future[Any],
    error: BaseException | None,
    result: Any,
    then: Callable[[Any], None] | None = None,
) -> None:
    if then is not None and error is None:
        try:
            then(result)
        except BaseException as exc:  # handed to the waiting coroutine
            error = exc
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class Executor:
    """The worker pools of one node: ``workers`` threads, and ``processes`` worker processes
    (0: none, `cpu_bound` functions then run in threads). Pools start lazily."""

    def __init__(self, workers: int = DEFAULT_WORKERS, processes: int = 0) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if processes < 0:
            raise ValueError(f"processes must be 0 (none) or more, got {processes}")
        self.workers = workers
        self.processes = processes
        self.busy = 0  # calls submitted and not finished (running or waiting for a worker)
        self.completed = 0
        self._threads: ThreadPoolExecutor | None = None
        self._process_pool: ProcessPoolExecutor | None = None

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, then: Callable[[Any], None] | None = None
    ) -> asyncio.Future[Any]:
        """Start ``fn(*args)`` in a worker; the future gets its result or exception (from the
        event loop's thread). The exception's traceback starts at ``fn``. The caller's context
        variables are visible to ``fn`` (as with `asyncio.to_thread`).

        ``then(result)`` runs on the loop first, in the same loop callback that settles the
        future (even when it was cancelled): the worker hands the loop one callback, not two
        (GenServer sends a batch's last reply there). Its exception becomes the future's."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self.busy += 1
        fut.add_done_callback(self._done)
        if getattr(fn, _PLACEMENT, None) == PROCESS and self.processes:
            pooled = loop.run_in_executor(self._processes(), fn, *args)

            def relay(done: asyncio.Future[Any]) -> None:
                if done.cancelled():
                    fut.cancel()
                    return
                error = done.exception()
                _settle(fut, error, None if error is not None else done.result())

            pooled.add_done_callback(relay)
            return fut
        context = contextvars.copy_context()

        def work() -> None:
            if fut.cancelled():  # the caller is gone (killed while the call waited for a worker)
                return
            try:
                result = context.run(fn, *args)
            except BaseException as exc:  # handed to the waiting coroutine, raised there
                tb = exc.__traceback__
                exc.__traceback__ = tb.tb_next if tb is not None else None
                outcome: tuple[BaseException | None, Any] = (exc, None)
            else:
                outcome = (None, result)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, fut, *outcome, then)

        self._thread_pool().submit(work)
        return fut

    async def call(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        """``fn(*args)`` where it belongs: inline if `runs_inline`, else in a worker; an awaitable
        result is awaited on the loop."""
        value = fn(*args) if runs_inline(fn) else await self.submit(fn, *args)
        if inspect.isawaitable(value):
            value = await value
        return value

    def _done(self, fut: asyncio.Future[Any]) -> None:
        self.busy -= 1
        self.completed += 1

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="beamlink-worker")
        return self._threads

    def _processes(self) -> ProcessPoolExecutor:
        if self._process_pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            self._process_pool = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context(method)
            )
        return self._process_pool

    def shutdown(self) -> None:
        """Stop taking work; calls still waiting for a worker are cancelled, running ones finish
        in the background (threads cannot be interrupted)."""
        pools: list[_PoolExecutor | None] = [self._threads, self._process_pool]
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._threads = self._process_pool = None
