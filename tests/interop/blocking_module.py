"""Functions and servers the blocking-code interop tests reach over RPC and gen_server calls."""

from __future__ import annotations

import threading
import time
from typing import Any

from beamlink.node.genserver import From, GenServer


def spin(seconds: float) -> int:
    """Pure-Python CPU work for ``seconds`` (holds the GIL but for the interpreter's switches)."""
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        for i in range(1000):
            rounds += i & 1
    return rounds


class Slow(GenServer):
    """A server whose synchronous handle_call blocks; records when each call starts and ends."""

    name = "slow"

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, Any, int]] = []

    def handle_call(self, request: Any, from_: From) -> Any:
        self.log.append(("start", request, threading.get_ident()))
        time.sleep(float(request))
        self.log.append(("end", request, threading.get_ident()))
        return request


class Fast(GenServer):
    """A server answering at once."""

    name = "fast"

    def handle_call(self, request: Any, from_: From) -> Any:
        return request
