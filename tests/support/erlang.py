"""Real Erlang/Elixir peers for tests: the OTP runtimes (OTP 25 with Elixir 1.14 on the host, OTP 27
with Elixir 1.18 in a trixie chroot, OTP 29 with Elixir 1.20 in a sid chroot) and distributed
``erl``/``elixir`` nodes driven by evaluating expressions over their stdin.

A runtime is named by its release (``otp25``, ``otp27``, ``otp29``). The host's ``erl`` provides the
one of its own release (so inside the sid chroot ``otp29`` is the host's ``erl``); the chroots provide
the others. ``BEAMLINK_TEST_RUNTIMES`` (comma-separated labels, default all; ``host`` = the host's
own) names the runtimes the suites are parametrized over: scripts/test-python-matrix sets ``host``,
as inside the sid chroot the other chroots are out of reach.

A peer runs a small driver loop: each line written to its stdin is one Erlang (or Elixir)
expression sequence; the result comes back as one protocol line holding the hex of
``term_to_binary({ok, Value} | {error, {Class, Reason}})`` and the ``~w`` text of it. Bindings persist
between evaluations, like a shell. Expressions are sent on one line (newlines become spaces).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.chroot import SID, TRIXIE, ensure_root
from tests.support.require import missing, require_tool

PROTO_PREFIX = "\x01BLR "
DEFAULT_TIMEOUT = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ErlRuntime:
    """One Erlang/OTP installation: the host's, or one inside a chroot sharing the host network."""

    label: str
    release: int
    root: Path | None = None

    def argv(self, tool: str, *args: str) -> list[str]:
        """Command line running ``tool`` (erl, erlc, elixir, epmd...) of this runtime."""
        if self.root is None:
            return [tool, *args]
        return ["chroot", str(self.root), tool, *args]

    def host_path(self, runtime_path: str) -> Path:
        """Where a path as seen by this runtime lies on the host."""
        if self.root is None:
            return Path(runtime_path)
        return self.root / runtime_path.lstrip("/")

    @contextlib.contextmanager
    def tempdir(self) -> Iterator[tuple[Path, str]]:
        """A temporary directory visible to the runtime: ``(host_path, runtime_path)``."""
        import tempfile

        base = None if self.root is None else str(self.root / "tmp")
        d = tempfile.mkdtemp(prefix="beamlink-", dir=base)
        runtime = d if self.root is None else "/tmp/" + os.path.basename(d)
        try:
            yield Path(d), runtime
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def compile(self, source_host_path: Path, out_dir: tuple[Path, str]) -> None:
        """Compile an .erl file with this runtime's erlc into ``out_dir`` (host, runtime) paths."""
        host_out, rt_out = out_dir
        src = host_out / source_host_path.name
        if src != source_host_path:
            shutil.copy(source_host_path, src)
        subprocess.run(
            self.argv("erlc", "-o", rt_out, f"{rt_out}/{source_host_path.name}"),
            check=True, capture_output=True, timeout=120,
        )


RELEASES = {"otp25": 25, "otp27": 27, "otp29": 29}
CHROOT_OF_RELEASE = {27: TRIXIE, 29: SID}


def _runtime_labels() -> tuple[str, ...]:
    value = os.environ.get("BEAMLINK_TEST_RUNTIMES", "")
    labels = tuple(part.strip() for part in value.split(",") if part.strip()) or tuple(RELEASES)
    if "host" in labels:
        own = f"otp{host_release()}"
        labels = tuple(own if label == "host" else label for label in labels)
    unknown = [label for label in labels if label not in RELEASES]
    if unknown:
        raise ValueError(
            f"BEAMLINK_TEST_RUNTIMES names unknown runtimes {unknown}; known: {', '.join(RELEASES)}"
        )
    return labels


@functools.cache
def host_release() -> int | None:
    """The OTP release of the host's ``erl`` (None when there is no ``erl``)."""
    if shutil.which("erl") is None:
        return None
    proc = subprocess.run(
        ["erl", "-noshell", "-eval", "io:put_chars(erlang:system_info(otp_release)), halt()."],
        capture_output=True, text=True, timeout=60, check=False,
    )
    return int(proc.stdout.strip()) if proc.stdout.strip().isdigit() else None


RUNTIME_LABELS = _runtime_labels()


def host_runtime() -> ErlRuntime:
    """The host's ``erl`` (and ``elixir``), whatever its release; skips/fails if missing."""
    require_tool("erl")
    release = host_release()
    if release is None:
        missing("the host's erl does not report its OTP release")
    assert release is not None
    return ErlRuntime(f"otp{release}", release)


def runtime(label: str) -> ErlRuntime:
    """The runtime ``otp25``, ``otp27`` or ``otp29``: the host's ``erl`` when it is that release,
    else the Debian chroot that has it (built on first use); skips/fails if neither is there."""
    if label not in RELEASES:
        raise ValueError(f"unknown runtime {label!r}; known: {', '.join(RELEASES)}")
    release = RELEASES[label]
    if host_release() == release:
        return ErlRuntime(label, release)
    spec = CHROOT_OF_RELEASE.get(release)
    if spec is None:
        missing(f"OTP {release} is not the host's erl (OTP {host_release()}) and no chroot has it")
        raise AssertionError("unreachable")
    return ErlRuntime(label, release, ensure_root(spec))

_ERL_DRIVER = (
    "Drv = fun Loop(B) -> case io:get_line('') of eof -> halt(); {error, _} -> halt(); Line -> "
    "{Res, B2} = try {ok, Ts, _} = erl_scan:string(Line), {ok, Es} = erl_parse:parse_exprs(Ts), "
    "{value, V, NB} = erl_eval:exprs(Es, B), {{ok, V}, NB} catch C:E -> {{error, {C, E}}, B} end, "
    "io:put_chars(user, [<<1, \"BLR \">>, binary:encode_hex(term_to_binary(Res)), $\\t, "
    "io_lib:format(\"~w\", [Res]), $\\n]), Loop(B2) end end, "
    "io:put_chars(user, [<<1, \"BLR READY\">>, $\\n]), Drv(erl_eval:new_bindings())."
)

_ELIXIR_DRIVER = (
    "defmodule BeamlinkDriver do\n"
    "  def loop(b) do\n"
    "    case IO.read(:stdio, :line) do\n"
    "      :eof -> System.halt(0)\n"
    "      {:error, _} -> System.halt(0)\n"
    "      line ->\n"
    "        {res, b2} = try do\n"
    "          {v, nb} = Code.eval_string(line, b)\n"
    "          {{:ok, v}, nb}\n"
    "        catch\n"
    "          c, e -> {{:error, {c, e}}, b}\n"
    "        end\n"
    "        IO.write([<<1, \"BLR \">>, Base.encode16(:erlang.term_to_binary(res)), \"\\t\",\n"
    "                  :io_lib.format(~c\"~w\", [res]), \"\\n\"])\n"
    "        loop(b2)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "IO.write([<<1, \"BLR READY\">>, \"\\n\"])\n"
    "BeamlinkDriver.loop([])\n"
)


class PeerError(RuntimeError):
    """The peer raised while evaluating, died, or did not answer in time."""


@dataclass
class EvalResult:
    """What one evaluation returned: ``ok`` plus the ``~w`` text and the raw term_to_binary bytes."""

    ok: bool
    text: str
    raw: bytes

    def term(self) -> Any:
        """The result decoded with beamlink's codec (the value of ``{ok, V}``/``{error, E}``)."""
        from beamlink.etf import decode

        return decode(self.raw)[1]


@dataclass
class ErlPeer:
    """A running distributed ``erl`` (or ``elixir``) node driven over stdin."""

    name: str
    cookie: str
    runtime: ErlRuntime
    proc: subprocess.Popen[str]
    elixir: bool = False
    output: list[str] = field(default_factory=list)
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def _reader(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(PROTO_PREFIX) or line.startswith("\x01BLR READY"):
                self._lines.put(line.rstrip("\n"))
            else:
                self.output.append(line.rstrip("\n"))
        self._lines.put(None)

    def _next(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise PeerError(f"{self.name}: no answer within {timeout}s; output: {self.output[-20:]}") from None
        if line is None:
            raise PeerError(f"{self.name} exited ({self.proc.poll()}); output: {self.output[-20:]}")
        return line

    def _parse(self, line: str) -> EvalResult:
        hexpart, _, text = line[len(PROTO_PREFIX):].partition("\t")
        raw = bytes.fromhex(hexpart)
        return EvalResult(ok=text.startswith("{ok,"), text=text, raw=raw)

    def _write(self, expr: str) -> None:
        assert self.proc.stdin is not None
        one_line = " ".join(expr.splitlines()).strip()
        if not self.elixir and not one_line.endswith("."):
            one_line += "."
        self.proc.stdin.write(one_line + "\n")
        self.proc.stdin.flush()

    def eval_result(self, expr: str, timeout: float = DEFAULT_TIMEOUT) -> EvalResult:
        """Evaluate ``expr`` and return the full result, ok or error (blocking)."""
        self._write(expr)
        return self._parse(self._next(timeout))

    def eval(self, expr: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Evaluate ``expr`` (blocking) and return the ``~w`` text of its value; raise on error."""
        res = self.eval_result(expr, timeout)
        if not res.ok:
            raise PeerError(f"{self.name}: {expr!r} raised {res.text}")
        return res.text[len("{ok,"):-1]

    async def aeval_result(self, expr: str, timeout: float = DEFAULT_TIMEOUT) -> EvalResult:
        """Like :meth:`eval_result` without blocking the event loop (a Python node may need it)."""
        self._write(expr)
        line = await asyncio.get_running_loop().run_in_executor(None, self._next, timeout)
        return self._parse(line)

    async def aeval(self, expr: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Like :meth:`eval` without blocking the event loop."""
        res = await self.aeval_result(expr, timeout)
        if not res.ok:
            raise PeerError(f"{self.name}: {expr!r} raised {res.text}")
        return res.text[len("{ok,"):-1]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the node (closing stdin halts it; killed if it lingers)."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)


_EPMD_WENT_AWAY = "register/listen error: econnrefused"


def start_peer(
    rt: ErlRuntime,
    name: str,
    cookie: str,
    *,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    elixir: bool = False,
    short: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> ErlPeer:
    """Start a distributed erl (or elixir) node of runtime ``rt`` and wait until its driver runs.

    ``extra_args`` go to ``erl`` (for elixir they are passed with ``--erl``). ``env`` is added to
    the environment (e.g. ``ERL_EPMD_PORT``).
    """
    if elixir:
        if rt.root is None:
            require_tool("elixir")
        argv = rt.argv(
            "elixir", "--sname" if short else "--name", name, "--cookie", cookie,
            *(("--erl", " ".join(extra_args)) if extra_args else ()),
            "-e", _ELIXIR_DRIVER,
        )
    else:
        argv = rt.argv(
            "erl", "-noshell", "-sname" if short else "-name", name, "-setcookie", cookie,
            *extra_args, "-eval", _ERL_DRIVER,
        )
    full_env = dict(os.environ)
    full_env.update(env or {})
    for attempt in (1, 2):
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=full_env, bufsize=1,
        )
        peer = ErlPeer(name=name, cookie=cookie, runtime=rt, proc=proc, elixir=elixir)
        threading.Thread(target=peer._reader, daemon=True).start()
        try:
            ready = peer._next(timeout)
        except PeerError as exc:
            peer.stop()
            # The EPMD on 4369 that an earlier test's node served may close between erl's check
            # for a running EPMD and its registration: erl exits with this error, and starts its
            # own EPMD when started again.
            if attempt == 1 and _EPMD_WENT_AWAY in str(exc):
                continue
            raise
        break
    assert ready.startswith("\x01BLR READY"), ready
    return peer


def no_epmd_args(port: int, interface: str = "{127,0,0,2}") -> tuple[str, ...]:
    """``erl`` flags for a peer without EPMD: it listens on ``port`` on ``interface`` (an Erlang
    address tuple) and dials every peer on ``port``."""
    return (
        "-start_epmd",
        "false",
        "-erl_epmd_port",
        str(port),
        "-kernel",
        "inet_dist_use_interface",
        interface,
    )


def epmd_running(port: int = 4369) -> bool:
    """True when something accepts TCP connections on the EPMD port of 127.0.0.1."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def epmd_process(address: str = "127.0.0.1") -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Debian's ``epmd`` started on a free port of ``address`` (epmd's ``-address``: one or more,
    comma-separated; foreground, killed after the block); yields ``(port, process)`` at once,
    before it listens."""
    binary = require_tool("epmd")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-port", str(port), "-address", address],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port, proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def real_epmd(address: str = "127.0.0.1") -> Iterator[int]:
    """``epmd_process`` once it listens; yields the port. This waits blocking: enter it before
    any node runs in the caller's event loop (async code awaits the port instead)."""
    with epmd_process(address) as (port, proc):
        deadline = time.monotonic() + 10
        while not epmd_running(port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"epmd did not start on port {port}")
            time.sleep(0.05)
        yield port


def kill_epmd(port: int = 4369) -> None:
    """Stop the EPMD daemon on ``port`` (only call for one a test started itself)."""
    env = dict(os.environ, ERL_EPMD_PORT=str(port))
    subprocess.run(["epmd", "-kill"], env=env, capture_output=True, timeout=10, check=False)
    deadline = time.monotonic() + 5
    while epmd_running(port) and time.monotonic() < deadline:
        time.sleep(0.05)
