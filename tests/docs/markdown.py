"""Run the examples of a Markdown file and compare what they print with what the file shows.

The conventions (``docs/contributing.md`` documents them for doc writers):

- ```` ```python ```` blocks run in a subprocess (``pyblock.py``), in the file's working directory.
  A block whose first line is ``# path/file.ext`` (any language) is not run: it is written to
  that path for the blocks after it. ``EXPR  # -> TEXT`` checks ``repr(EXPR)`` (``str`` for
  ``print(EXPR)``); a ```` ```text ```` block right after a Python block is its whole stdout. A
  block with top-level ``await`` (or using ``node`` without defining it) is a fragment: it runs in a coroutine with ``asyncio`` and
  ``from beamlink import *`` in scope and, if it uses ``node`` without defining it, a started
  node ``py@127.0.0.1`` (cookie ``secret``).
- ```` ```console ```` blocks: each ``$ command`` runs in ``bash`` in the working directory (its
  exports and ``cd`` carry over to the next command, as in one shell); its output (stdout and
  stderr) must be the lines below it. A command still running once its lines have appeared is a
  server: it keeps running (as if in another shell) until the file ends, then gets SIGTERM.
- Expected text: a line ``...`` matches any number of lines, ``...`` inside a line any text;
  timestamps match any timestamp.
- Markers, HTML comments on the lines right before a fence: ``<!-- doc-test: skip REASON -->``
  (not run), ``<!-- doc-test: vary REGEX -->`` (text matching REGEX in the doc matches any text
  matching it), ``<!-- doc-test: prompt TEXT -->`` (lines starting with ``TEXT`` are typed
  input; ``TEXT ^D`` ends it), ``<!-- doc-test: timeout SECONDS -->``.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
MARKER = re.compile(r"^<!--\s*doc-test:\s*([\w-]+)\s*(.*?)\s*-->\s*$")
FILE_HEADER = re.compile(r"^(?:#|//|%%)\s+([\w][\w./-]*\.\w+)\s*$")
TIMESTAMP = r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:[+-]\d{4}|Z)?"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]")
RUN = ("python", "console")
KNOWN_MARKERS = ("skip", "vary", "prompt", "timeout")
DEFAULT_TIMEOUT = 60.0
QUIET = 1.0  # a running command whose output matched and stayed quiet this long is a server
STOP_TIMEOUT = 20.0


class DocError(Exception):
    """A malformed block or marker (the message names the file and line)."""


@dataclass
class Block:
    """One fenced block: ``line`` is the line number of its first content line."""

    path: Path
    line: int
    lang: str
    text: str
    markers: list[tuple[str, str]] = field(default_factory=list)
    output: Block | None = None  # the ```text block right after a python block

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def marker(self, kind: str) -> str | None:
        return next((value for k, value in self.markers if k == kind), None)

    @property
    def vary(self) -> list[str]:
        return [TIMESTAMP, *(value for k, value in self.markers if k == "vary")]

    @property
    def timeout(self) -> float:
        value = self.marker("timeout")
        return DEFAULT_TIMEOUT if value is None else float(value)

    @property
    def file_header(self) -> str | None:
        first = self.text.split("\n", 1)[0]
        match = FILE_HEADER.match(first)
        return match.group(1) if match else None


def parse(text: str, path: Path) -> list[Block]:
    """The fenced blocks of a Markdown text, with their markers; ``text`` blocks that follow a
    python block become its ``output``. Raises `DocError` for an unknown marker or open fence."""
    blocks: list[Block] = []
    lines = text.split("\n")
    markers: list[tuple[str, str]] = []
    previous_end = -2  # index of the line that closed the last block
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = MARKER.match(line)
        fence = FENCE.match(line)
        if marker:
            kind, value = marker.groups()
            if kind not in KNOWN_MARKERS:
                raise DocError(f"{path}:{i + 1}: unknown doc-test marker {kind!r} "
                               f"(known: {', '.join(KNOWN_MARKERS)})")
            if not value:
                raise DocError(f"{path}:{i + 1}: doc-test {kind} needs a value")
            markers.append((kind, value))
        elif fence:
            ticks, lang = fence.groups()
            start = i + 1
            i += 1
            while i < len(lines) and not lines[i].startswith(ticks[0] * len(ticks)):
                i += 1
            if i >= len(lines):
                raise DocError(f"{path}:{start}: the fence opened here is never closed")
            block = Block(path, start + 1, lang.lower(), "\n".join(lines[start:i]), markers)
            between = lines[previous_end + 1:start - 1]
            last = blocks[-1] if blocks else None
            if (lang == "text" and last is not None and last.lang == "python"
                    and not any(s.strip() for s in between) and not markers):
                last.output = block
            else:
                blocks.append(block)
            previous_end = i
            markers = []
        elif line.strip() and markers:
            raise DocError(f"{path}:{i + 1}: a doc-test marker must be right before a fence")
        i += 1
    return blocks


# ---------------------------------------------------------------------------- matching

def _line_pattern(line: str, vary: Sequence[str]) -> str:
    if line.strip() == "...":
        return r"(?:[^\n]*\n)*?"
    alternatives = re.compile("|".join(f"(?P<v{n}>{v})" for n, v in enumerate(vary)) + r"|\.\.\.")
    out, pos = [], 0
    for match in alternatives.finditer(line):
        if match.end() == match.start():
            continue
        out.append(re.escape(line[pos:match.start()]))
        group = match.lastgroup
        out.append(r"[^\n]*?" if group is None else f"(?:{vary[int(group[1:])]})")
        pos = match.end()
    out.append(re.escape(line[pos:]))
    return "".join(out) + r"\n"


def expected_pattern(expected: str, vary: Sequence[str] = (TIMESTAMP,)) -> re.Pattern[str]:
    """The regular expression a command's output must match entirely for ``expected``."""
    return re.compile("".join(_line_pattern(line, vary) for line in normalize(expected).splitlines()))


# Log lines that depend on how busy the machine is, not on the example: the event-loop watchdog's
# stall reports (a start-up step can exceed the threshold on a loaded machine).
LOAD_DEPENDENT = re.compile(r"beamlink\.connection\.watchdog: ")


def normalize(text: str) -> str:
    """Output as compared: no ANSI escapes or CRs, no trailing spaces or trailing blank lines, no
    `LOAD_DEPENDENT` log lines."""
    text = ANSI.sub("", text.replace("\r\n", "\n").replace("\r", ""))
    lines = [line.rstrip() for line in text.split("\n") if not LOAD_DEPENDENT.search(line)]
    while lines and not lines[-1]:
        lines.pop()
    return "".join(line + "\n" for line in lines)


def matches(expected: str, actual: str, vary: Sequence[str] = (TIMESTAMP,)) -> bool:
    """True when ``actual`` is what ``expected`` shows (wildcards and ``vary`` applied)."""
    return expected_pattern(expected, vary).fullmatch(normalize(actual)) is not None


def difference(where: str, what: str, expected: str, actual: str) -> str:
    """A failure message: where, what ran, and a diff of the doc's lines against the output."""
    diff = "\n".join(difflib.unified_diff(
        normalize(expected).splitlines(), normalize(actual).splitlines(),
        "shown in the doc", "actual output", lineterm="",
    ))
    return f"{where}: {what}: the output differs from the doc\n{diff}"


# ---------------------------------------------------------------------------- console

def parse_console(block: Block) -> list[tuple[int, str, str]]:
    """``(line, command, expected output)`` per ``$ command`` of a console block."""
    steps: list[tuple[int, str, list[str]]] = []
    for n, line in enumerate(block.text.split("\n")):
        if line.startswith("$ ") or line == "$":
            if line.strip() != "$":
                steps.append((block.line + n, line[2:], []))
        elif not steps:
            raise DocError(f"{block.path}:{block.line + n}: console output before any '$ command'")
        else:
            steps[-1][2].append(line)
    return [(n, cmd, "\n".join(out)) for n, cmd, out in steps]


class _Output:
    """A process's combined output, read by a thread."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.chunks: list[bytes] = []
        self.last = time.monotonic()
        assert proc.stdout is not None
        self.thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self.thread.start()

    def _read(self, stream: object) -> None:
        fd = stream.fileno()  # type: ignore[attr-defined]
        while chunk := os.read(fd, 65536):
            self.chunks.append(chunk)
            self.last = time.monotonic()

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")


def _with_input(output: str, prompt: str, inputs: list[str]) -> str:
    """The output as a terminal shows it: each prompt followed by the line typed at it."""
    parts = output.split(prompt)
    out = [parts[0]]
    for n, part in enumerate(parts[1:]):
        typed = inputs[n] if n < len(inputs) else ""
        out.append(prompt + typed + ("" if typed in ("^D", "") else "\n") + part)
    return "".join(out)


class Session:
    """One Markdown file's shell: a working directory, an environment, servers left running."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.state = workdir.parent / f".{workdir.name}.shell-state"
        self.state.write_text("")
        self.cwd = workdir.parent / f".{workdir.name}.cwd"
        self.cwd.write_text(str(workdir))
        self.servers: list[tuple[str, subprocess.Popen[bytes]]] = []

    def _script(self, command: str) -> str:
        return (f'cd "$(cat {self.cwd})"; source {self.state}\n{{ {command}\n}}\n'
                f"__rc=$?; export -p > {self.state}; pwd > {self.cwd}; exit $__rc\n")

    def run_command(self, block: Block, line: int, command: str, expected: str) -> str | None:
        """Run one ``$ command``; a failure message or None."""
        where = f"{block.path}:{line}"
        prompt_text = block.marker("prompt")
        inputs: list[str] = []
        if prompt_text is not None:
            prompt = prompt_text + " "
            inputs = [out_line[len(prompt):].strip() for out_line in expected.split("\n")
                      if out_line.startswith(prompt) or out_line == prompt_text]
        proc = subprocess.Popen(
            ["bash", "-c", self._script(command)], cwd=self.workdir, env=self.env,
            stdin=subprocess.PIPE if inputs else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        if inputs and proc.stdin is not None:
            typed = inputs[:inputs.index("^D")] if "^D" in inputs else inputs
            proc.stdin.write("".join(f"{t}\n" for t in typed).encode())
            proc.stdin.close()
        output = _Output(proc)
        pattern = expected_pattern(expected, block.vary)
        deadline = time.monotonic() + block.timeout

        def seen() -> str:
            text = output.text
            return _with_input(text, prompt_text + " ", inputs) if prompt_text else text

        while True:
            time.sleep(0.05)
            if proc.poll() is not None:
                output.thread.join(1.0)  # a background child may keep the pipe open
                if output.thread.is_alive():
                    self.servers.append((where, proc))
                text = seen()
                if pattern.fullmatch(normalize(text)):
                    return None
                return difference(where, f"$ {command} (exit {proc.returncode})", expected, text)
            text = seen()
            if pattern.fullmatch(normalize(text)) and time.monotonic() - output.last > QUIET:
                self.servers.append((where, proc))  # a server: keeps running until the file ends
                return None
            if time.monotonic() > deadline:
                self.servers.append((where, proc))
                return difference(where, f"$ {command} (still running after "
                                  f"{block.timeout:.0f} s)", expected, text)

    def close(self) -> list[str]:
        """SIGTERM every server (their process groups); failures for those that do not stop."""
        failures = []
        for where, proc in reversed(self.servers):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                failures.append(f"{where}: still running {STOP_TIMEOUT:.0f} s after SIGTERM")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        self.servers.clear()
        return failures


# ---------------------------------------------------------------------------- python

def run_python(block: Block, workdir: Path, env: dict[str, str]) -> str | None:
    """Run a python block with ``pyblock.py``; a failure message or None."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump({"source": block.text, "path": str(block.path), "line": block.line,
                   "vary": block.vary}, spec)
    try:
        result = subprocess.run(
            [sys.executable, str(HERE / "pyblock.py"), spec.name], cwd=workdir, env=env,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=block.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        return (f"{block.where}: the python block did not end within {block.timeout:.0f} s "
                f"(examples must end; see docs/contributing.md)\n{out}")
    finally:
        os.unlink(spec.name)
    if result.returncode != 0:
        return f"{block.where}: the python block failed (exit {result.returncode})\n" \
               f"{result.stdout}{result.stderr}"
    if block.output is not None and not matches(block.output.text, result.stdout, block.vary):
        return difference(block.output.where, "the python block above", block.output.text,
                          result.stdout)
    return None


# ---------------------------------------------------------------------------- documents

def run_blocks(blocks: list[Block], workdir: Path, env: dict[str, str]) -> Iterator[str]:
    """Run ``blocks`` in order in one session; yields a message per failure."""
    session = Session(workdir, env)
    try:
        for block in blocks:
            if block.marker("skip") is not None:
                continue
            header = block.file_header
            if header is not None:
                target = workdir / header
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.text + "\n")
                continue
            if block.lang == "python":
                failure = run_python(block, workdir, env)
                if failure:
                    yield failure
            elif block.lang == "console":
                for line, command, expected in parse_console(block):
                    failure = session.run_command(block, line, command, expected)
                    if failure:
                        yield failure
    finally:
        yield from session.close()


def runnable(blocks: list[Block]) -> list[Block]:
    """The blocks that run or set up files (python, console, file headers)."""
    return [b for b in blocks if b.lang in RUN or b.file_header is not None]


def run_document(path: Path, workdir: Path, env: dict[str, str],
                 root: Path | None = None) -> list[str]:
    """Every failure of the examples of the Markdown file ``path`` (relative to ``root``, the
    name messages use), run in ``workdir`` with ``env``; empty when every example holds."""
    blocks = runnable(parse(((root or Path()) / path).read_text(), path))
    return list(run_blocks(blocks, workdir, env))
