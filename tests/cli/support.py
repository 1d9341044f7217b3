"""Helpers for the CLI tests: run ``beamlink`` commands and ``beamlink start`` nodes as real
processes, each test with its own EPMD port, cookie and HOME, and a small expect() on a pty."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.erlang import free_port

ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 30.0
START_TIMEOUT = 20.0
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]")


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for beamlink processes: a free EPMD port, a cookie, ``home`` as HOME.

    ``tests`` is importable (for ``--app tests.cli.apps:...``); BEAMLINK_*/RELEASE_* variables of
    the caller are dropped so that only what a test sets counts.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BEAMLINK_", "RELEASE_", "ERL_"))}
    env.update(
        ERL_EPMD_PORT=str(free_port()),
        BEAMLINK_COOKIE="clitestcookie",
        HOME=str(home),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        TERM="dumb",
    )
    env.update(extra)
    return env


def argv(*args: str, python_flags: tuple[str, ...] = ()) -> list[str]:
    """The command line of ``beamlink ARGS`` run with this interpreter (and ``python_flags``).

    ``-P`` (Python 3.11+: the current directory not on sys.path, as for the installed console
    script) is emulated on older Pythons by removing that entry before running the CLI."""
    if "-P" in python_flags and sys.version_info < (3, 11):
        rest = tuple(flag for flag in python_flags if flag != "-P")
        script = "import sys; del sys.path[0]; from beamlink.cli.main import main; main()"
        return [sys.executable, *rest, "-c", script, *args]
    return [sys.executable, *python_flags, "-m", "beamlink", *args]


def beamlink(*args: str, env: dict[str, str], timeout: float = COMMAND_TIMEOUT,
             prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run one beamlink command to completion (``prefix``: e.g. ``ip netns exec NS``)."""
    return subprocess.run([*prefix, *argv(*args)], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class StartedNode:
    """A ``beamlink start`` process; its stderr (the log) goes to a file read by the test."""

    def __init__(self, name: str, env: dict[str, str], log: Path, *args: str,
                 prefix: tuple[str, ...] = (), python_flags: tuple[str, ...] = (),
                 cwd: Path | None = None) -> None:
        self.name = name
        self.log_path = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*prefix, *argv(*args, python_flags=python_flags)], env=env, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, preexec_fn=_default_sigint,
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """Wait until the log matches ``pattern``; fail with the log if the process ends first."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.log)
            if match:
                return match
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: no {pattern!r} in the log (exit {self.proc.poll()}):\n{self.log}"
                )
            time.sleep(0.05)

    def wait_running(self) -> None:
        self.wait_log(r"node \S+ running")

    def wait_exit(self, timeout: float = START_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit; log:\n{self.log}") from None

    def terminate(self) -> int:
        """SIGTERM and wait for the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextlib.contextmanager
def started(nodes: list[StartedNode]) -> Iterator[list[StartedNode]]:
    """Kill whatever is still running when the block ends (a failed test included); nodes
    appended to the list inside the block count too."""
    try:
        yield nodes
    finally:
        for node in reversed(nodes):
            node.kill()




class Pty:
    """A process on a pseudo-terminal, driven like ``expect``: ``send`` keys, ``expect`` output."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(args, env=env, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.buffer = b""

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return False
        if not data:
            return False
        self.buffer += ANSI.sub(b"", data).replace(b"\r", b"")
        return True

    def expect(self, pattern: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Wait for ``pattern`` in the output since the last match; return that output."""
        regex = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.buffer)
            if match:
                seen = self.buffer[: match.end()].decode(errors="replace")
                self.buffer = self.buffer[match.end():]
                return seen
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(min(remaining, 0.2)):
                self._read(0.2)
                raise AssertionError(
                    f"no {pattern!r} in the output (exit {self.proc.poll()}):\n"
                    f"{self.buffer.decode(errors='replace')}"
                )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        os.close(self.master)
