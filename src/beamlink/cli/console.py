"""``beamlink remote``: a local Python console whose input runs on a live node.

Input is read here with line editing and history (readline); each complete statement is sent to
the target's agent (``beamlink.cli.agent.session_eval``) and runs inside the target's event loop,
with ``await`` allowed at top level. Output and tracebacks come back as text. The control node runs
its event loop in a background thread so that the main thread can block in ``input()`` and
Ctrl-C behaves as in the Python REPL (it drops the current input). Ctrl-D leaves; the target keeps
running.
"""

from __future__ import annotations

import ast
import asyncio
import codeop
import contextlib
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from beamlink.cli.control import AGENT, ControlError, _call, control_node
from beamlink.connection import TlsConfig

T = TypeVar("T")
HISTORY = Path.home() / ".beamlink_history"
# One console input may run this long on the target (an operator may await something slow).
EVAL_TIMEOUT = 3600.0


class _LoopThread:
    """An event loop in a daemon thread, running coroutines for the console's main thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            # closed here, not by the loop's __del__ at interpreter exit, which may run after
            # its self-pipe socket was collected (ValueError: Invalid file descriptor: -1)
            self.loop.close()


def _setup_readline() -> None:
    try:
        import readline
    except ImportError:
        return
    with contextlib.suppress(OSError):
        readline.read_history_file(HISTORY)
    readline.set_history_length(1000)
    import atexit

    def save() -> None:
        with contextlib.suppress(OSError):
            readline.write_history_file(HISTORY)

    atexit.register(save)


def run_console(
    target: str, cookie: str | None, timeout: float, tls: TlsConfig | None = None
) -> None:
    """Run the interactive console against ``target`` until Ctrl-D."""
    runner = _LoopThread()
    ctx = control_node(target, cookie, timeout, tls)
    try:
        node = runner.run(ctx.__aenter__(), timeout + 5)
        session = runner.run(_call(node, target, AGENT, "open_session", [node.name], timeout))
        _setup_readline()
        compiler = codeop.CommandCompiler()
        compiler.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        print(f"beamlink remote console on {target}; code runs on that node "
              "(node, nodes(), connect(), ping() in scope; await allowed). Ctrl-D leaves.")
        lines: list[str] = []
        while True:
            try:
                line = input("... " if lines else f"{target}> ")
            except EOFError:
                print()
                break
            except KeyboardInterrupt:
                print("\nKeyboardInterrupt")
                lines.clear()
                continue
            lines.append(line)
            source = "\n".join(lines)
            try:
                incomplete = compiler(source, "<remote>", "single") is None
            except (SyntaxError, ValueError, OverflowError):
                incomplete = False
            if incomplete:
                continue
            lines.clear()
            if not source.strip():
                continue
            try:
                _ok, output = runner.run(_call(node, target, AGENT, "session_eval",
                                              [session, source.encode()], EVAL_TIMEOUT))
            except KeyboardInterrupt:
                print("\nKeyboardInterrupt (the code goes on running on the target)")
                continue
            except ControlError as exc:
                raise ControlError(f"lost the target: {exc}") from exc
            print(bytes(output).decode(), end="", flush=True)
        with contextlib.suppress(Exception):
            runner.run(_call(node, target, AGENT, "close_session", [session], timeout), timeout)
    finally:
        with contextlib.suppress(Exception):
            runner.run(ctx.__aexit__(None, None, None), timeout + 5)
        runner.close()
