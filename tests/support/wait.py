"""``eventually``: the one bounded poll the suites use to wait for a condition.

Async tests ``await eventually(check)``; it sleeps with ``asyncio.sleep`` so the loop keeps
serving the code under test. ``check`` may be a plain or an async callable. Synchronous tests
(CLI tests driving child processes, with no loop of their own) use ``eventually_blocking``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    *,
    interval: float = 0.02,
    what: str = "",
) -> T:
    """Call ``check`` until it returns something truthy and return that; bounded by ``timeout``.

    The AssertionError names ``what`` (or ``check``) and the last value seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not within {timeout}s: {what or getattr(check, '__qualname__', check)}; "
                f"last value {value!r}"
            )
        await asyncio.sleep(interval)


def eventually_blocking(
    check: Callable[[], T], timeout: float = 15.0, *, interval: float = 0.2, what: str = ""
) -> T:
    """``eventually`` for synchronous tests (no event loop runs in this thread)."""
    return asyncio.run(eventually(check, timeout, interval=interval, what=what))

