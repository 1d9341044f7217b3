"""The process runtime, the bottom of the node layer: processes (`process.py`), their mailboxes
(`mailbox.py`), the pid/name/alias table (`registry.py`), the signals between processes and
nodes (`runtime.py`) and the worker pool synchronous code runs in (`executor.py`). Nothing here knows about sockets, EPMD or the kernel services."""

from beamlink.node.runtime.executor import Executor, cpu_bound, on_loop, runs_inline
from beamlink.node.runtime.mailbox import Mailbox, Match
from beamlink.node.runtime.process import Process, Signals, Target
from beamlink.node.runtime.runtime import (
    ProcessBody,
    ProcessRuntime,
    current_process,
    exception_reason,
    run_as,
)

__all__ = [
    "Executor",
    "Mailbox",
    "Match",
    "Process",
    "ProcessBody",
    "ProcessRuntime",
    "Signals",
    "Target",
    "cpu_bound",
    "current_process",
    "exception_reason",
    "on_loop",
    "run_as",
    "runs_inline",
]
