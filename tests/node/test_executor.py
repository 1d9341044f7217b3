"""The worker pool for synchronous code: concurrency and its bound (checked with barriers, not
clocks), inline placement of coroutine and `on_loop` functions, clean tracebacks, context
variables, the opt-in process pool for `cpu_bound` functions, and plain process bodies."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import traceback
from typing import Any

import pytest

from beamlink.etf import Atom
from beamlink.node.runtime import Process, ProcessRuntime, current_process
from beamlink.node.runtime import executor as executor_module
from beamlink.node.runtime.executor import Executor, cpu_bound, on_loop, runs_inline
from tests.support.wait import eventually

REQUEST = contextvars.ContextVar("REQUEST", default="none")


def where() -> int:
    return threading.get_ident()


@on_loop
def where_on_loop() -> int:
    return threading.get_ident()


async def where_async() -> int:
    return threading.get_ident()


def broken(text: str) -> None:
    raise ValueError(text)


@cpu_bound
def crunch(n: int) -> tuple[int, int]:
    return os.getpid(), sum(i * i for i in range(n))


async def test_sync_functions_run_in_workers_and_the_rest_inline() -> None:
    executor = Executor(workers=4)
    try:
        loop_thread = threading.get_ident()
        assert await executor.call(where) != loop_thread
        assert await executor.call(where_on_loop) == loop_thread
        assert await executor.call(where_async) == loop_thread
        assert runs_inline(where_async) and runs_inline(where_on_loop) and not runs_inline(where)
        assert executor.busy == 0 and executor.completed == 1
    finally:
        executor.shutdown()


async def test_calls_run_concurrently_up_to_the_bound() -> None:
    executor = Executor(workers=20)
    barrier = threading.Barrier(20, timeout=30)  # passes only if all 20 run at the same time
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(executor.call(barrier.wait) for _ in range(20))), 60
        )
        assert sorted(results) == list(range(20))
    finally:
        executor.shutdown()

    executor = Executor(workers=2)
    lock = threading.Lock()
    running = [0, 0]  # now, most at once
    release = threading.Event()

    def job() -> None:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        release.wait(30)
        with lock:
            running[0] -= 1

    try:
        calls = [asyncio.ensure_future(executor.call(job)) for _ in range(5)]
        while executor.busy < 5 or running[0] < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert running[0] == 2  # the other three wait for a worker
        release.set()
        await asyncio.wait_for(asyncio.gather(*calls), 30)
        assert running[1] == 2 and executor.busy == 0
    finally:
        release.set()
        executor.shutdown()


async def test_the_loop_runs_while_a_worker_blocks() -> None:
    executor = Executor(workers=1)
    gate = threading.Event()
    try:
        blocked = asyncio.ensure_future(executor.call(gate.wait, 30))
        beats = 0
        for _ in range(5):
            await asyncio.sleep(0.01)
            beats += 1
        assert beats == 5 and not blocked.done()
        gate.set()
        assert await asyncio.wait_for(blocked, 30) is True
    finally:
        gate.set()
        executor.shutdown()


async def test_exceptions_keep_a_traceback_starting_at_the_function() -> None:
    executor = Executor(workers=1)
    try:
        with pytest.raises(ValueError, match="bad") as info:
            await executor.submit(broken, "bad")
        frames = traceback.extract_tb(info.value.__traceback__)
        # ends in the function, with no pool machinery (ours or concurrent.futures') on the way
        assert frames[-1].name == "broken"
        machinery = (executor_module.__file__, os.sep + "concurrent" + os.sep)
        assert not [f for f in frames if any(m in f.filename for m in machinery)]
    finally:
        executor.shutdown()


async def test_context_variables_reach_the_worker() -> None:
    executor = Executor(workers=1)
    try:
        REQUEST.set("r42")
        assert await executor.call(REQUEST.get) == "r42"
    finally:
        executor.shutdown()


async def test_cpu_bound_functions_use_the_process_pool_when_there_is_one() -> None:
    with_processes = Executor(workers=1, processes=1)
    without = Executor(workers=1)
    try:
        pid, total = await asyncio.wait_for(with_processes.call(crunch, 1000), 60)
        assert pid != os.getpid() and total == sum(i * i for i in range(1000))
        pid, _ = await without.call(crunch, 10)
        assert pid == os.getpid()
    finally:
        with_processes.shutdown()
        without.shutdown()


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        Executor(workers=0)
    with pytest.raises(ValueError, match="processes"):
        Executor(processes=-1)


async def test_a_plain_process_body_runs_in_a_worker_and_exits_like_a_coroutine_one() -> None:
    rt = ProcessRuntime("exec@127.0.0.1", 1, executor=Executor(workers=4))
    gate = threading.Event()
    seen: list[Any] = []

    def blocking_body(proc: Process, tag: str) -> None:
        seen.append((tag, threading.get_ident(), current_process() is proc))
        gate.wait(30)

    def failing_body(proc: Process) -> None:
        raise ValueError("bad input")

    async def watcher(proc: Process, targets: list[Any]) -> None:
        refs = [proc.monitor(t) for t in targets]
        for _ in refs:
            msg = await proc.receive()
            seen.append((msg[0], msg[4]))

    try:
        blocked = rt.spawn(blocking_body, "b")
        failed = rt.spawn(failing_body)
        watching = rt.spawn(watcher, [blocked.pid, failed.pid])
        await eventually(lambda: len(seen) >= 2)  # the loop runs while blocking_body blocks
        assert seen[0][0] == "b" and seen[0][1] != threading.get_ident() and seen[0][2]
        assert seen[1] == (Atom("DOWN"), (Atom("python_exception"), b"ValueError", b"bad input"))
        assert blocked.is_alive
        gate.set()
        await asyncio.wait_for(watching.wait(), 30)
        assert seen[2] == (Atom("DOWN"), Atom("normal"))
    finally:
        gate.set()
        await rt.shutdown()
