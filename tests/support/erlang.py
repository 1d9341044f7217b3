"""Real Erlang/Elixir peers for tests: OTP runtimes (host OTP 25, OTP 27 in a trixie chroot) and
distributed ``erl``/``elixir`` nodes driven by evaluating expressions over their stdin.

A peer runs a small driver loop: each line written to its stdin is one Erlang (or Elixir)
expression sequence; the result comes back as one protocol line holding the hex of
``term_to_binary({ok, Value} | {error, {Class, Reason}})`` and the ``~w`` text of it. Bindings persist
between evaluations, like a shell. Expressions are sent on one line (newlines become spaces).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.require import missing, require_tool

CACHE_DIR = Path(os.environ.get("BEAMLINK_TEST_CACHE", "/var/cache/beamlink-test"))
OTP27_ROOT = CACHE_DIR / "otp27"
PROTO_PREFIX = "\x01BLR "
DEFAULT_TIMEOUT = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _debian_mirror() -> str:
    for path in Path("/etc/apt/sources.list.d").glob("*.sources"):
        m = re.search(r"^URIs:\s*(\S+)", path.read_text(), re.M)
        if m:
            return m.group(1)
    sources = Path("/etc/apt/sources.list")
    if sources.exists():
        m = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", sources.read_text(), re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def ensure_otp27_root() -> Path:
    """Build (once, cached, under a file lock) a Debian trixie chroot with OTP 27 and Elixir."""
    if (OTP27_ROOT / "usr/bin/erl").exists():
        return OTP27_ROOT
    if os.geteuid() != 0:
        missing("building the OTP 27 chroot needs root")
    require_tool("debootstrap")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / "otp27.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (OTP27_ROOT / "usr/bin/erl").exists():
            return OTP27_ROOT
        tmp = CACHE_DIR / "otp27.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=erlang-base,elixir", "trixie",
             str(tmp), _debian_mirror()],
            capture_output=True, text=True, timeout=900, check=False,
        )
        if proc.returncode != 0:
            missing(f"debootstrap of the OTP 27 chroot failed: {proc.stderr[-2000:]}")
        tmp.rename(OTP27_ROOT)
    return OTP27_ROOT


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


def runtime(label: str) -> ErlRuntime:
    """The runtime named ``otp25`` (host erl) or ``otp27`` (trixie chroot); skips/fails if missing."""
    if label == "otp25":
        require_tool("erl")
        return ErlRuntime("otp25", 25)
    if label == "otp27":
        require_tool("chroot")
        return ErlRuntime("otp27", 27, ensure_otp27_root())
    raise ValueError(f"unknown runtime {label!r}")


RUNTIME_LABELS = ("otp25", "otp27")

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
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=full_env, bufsize=1,
    )
    peer = ErlPeer(name=name, cookie=cookie, runtime=rt, proc=proc, elixir=elixir)
    threading.Thread(target=peer._reader, daemon=True).start()
    try:
        ready = peer._next(timeout)
    except PeerError:
        peer.stop()
        raise
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
def epmd_process() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Debian's ``epmd`` started on a free port of 127.0.0.1 (foreground, killed after the
    block); yields ``(port, process)`` at once, before it listens."""
    binary = require_tool("epmd")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-port", str(port), "-address", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port, proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def real_epmd() -> Iterator[int]:
    """``epmd_process`` once it listens; yields the port. This waits blocking: enter it before
    any node runs in the caller's event loop (async code awaits the port instead)."""
    with epmd_process() as (port, proc):
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
