"""``beamlink demo``: a full mesh of local nodes plus a real ``erl`` node, ended by ``--duration``
or by Ctrl-C (SIGINT), with every child process stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import argv, beamlink, cli_env
from tests.support.erlang import epmd_running
from tests.support.require import require_tool
from tests.support.wait import eventually_blocking

pytestmark = pytest.mark.timeout(90)


def processes_with_env(entry: str) -> list[int]:
    """Pids of processes (other than this one) whose environment holds ``entry``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.encode() in environ:
            found.append(int(proc.name))
    return found


@contextlib.contextmanager
def meshed_demo(env: dict[str, str], out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``beamlink demo --nodes 2`` (output in ``out``) once its mesh has formed; killed at the end
    if it still runs."""
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            argv("demo", "--nodes", "2"), env=env, stdout=sink, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        eventually_blocking(lambda: out.read_text().count("[2/2]") >= 3, timeout=30)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def assert_all_stopped(env: dict[str, str]) -> None:
    """No process of the demo (they share its EPMD port) is left, nor its EPMD."""
    assert not processes_with_env(f"ERL_EPMD_PORT={env['ERL_EPMD_PORT']}")
    assert not epmd_running(int(env["ERL_EPMD_PORT"]))


def final_frame(output: str) -> list[str]:
    frames = [f for f in output.split("beamlink demo cluster") if " sees " in f]
    return [line for line in frames[-1].splitlines() if " sees " in line]


def test_demo_with_duration_forms_a_full_mesh_with_erl(tmp_path: Path) -> None:
    require_tool("erl")
    env = cli_env(tmp_path)
    result = beamlink("demo", "--nodes", "3", "--duration", "5", env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "full mesh formed; all nodes stopped" in result.stdout
    rows = final_frame(result.stdout)
    assert [row.split()[0] for row in rows] == [
        "demo1@127.0.0.2", "demo2@127.0.0.3", "demo3@127.0.0.4", "erl_demo@127.0.0.1"]
    assert all("[3/3]" in row for row in rows), rows
    assert_all_stopped(env)


def test_demo_ends_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    require_tool("erl")
    env = cli_env(tmp_path)
    out = tmp_path / "demo.out"
    with meshed_demo(env, out) as proc:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, out.read_text()
    assert "full mesh formed; all nodes stopped" in out.read_text()
    assert_all_stopped(env)


def _argv_of(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _listening(pids: list[int]) -> set[str]:
    """Local addresses of the TCP sockets the processes ``pids`` listen on (from /proc)."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    address = fields[1].split(":")[0]
                    if width == 8:
                        found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
                    else:
                        found.add(address)
    return found


def test_demo_keeps_its_cookie_off_command_lines_and_listens_on_loopback_only(
    tmp_path: Path,
) -> None:
    """Issue 12, item 7: ``ps`` (argv) of every process the demo starts holds no cookie; erl
    reads it from a 0400 file; every listening socket (nodes, erl, EPMD) is on 127.0.0.0/8."""
    require_tool("erl")
    env = cli_env(tmp_path)
    out = tmp_path / "demo.out"
    with meshed_demo(env, out) as proc:
        children = [p for p in processes_with_env(f"ERL_EPMD_PORT={env['ERL_EPMD_PORT']}")
                    if p != proc.pid]
        pids = [proc.pid, *children]
        cookies = set()
        for pid in children:  # (the demo itself has the test's cookie)
            with contextlib.suppress(OSError):
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                cookies |= {e.split(b"=", 1)[1].decode() for e in environ
                            if e.startswith(b"BEAMLINK_COOKIE=")}
        assert len(cookies) == 1
        cookie = cookies.pop()
        argvs = [_argv_of(pid) for pid in pids]
        assert any("erl_demo@127.0.0.1" in a for a in argvs), argvs
        for args in argvs:
            assert not any(cookie in arg for arg in args), args
            assert "-setcookie" not in args
        cookie_files = list(Path(tempfile.gettempdir()).glob("beamlink-demo-*/erl-home/.erlang.cookie"))
        ours = [f for f in cookie_files if f.read_text() == cookie]
        assert len(ours) == 1 and stat.S_IMODE(ours[0].stat().st_mode) == 0o400
        listening = _listening(pids)
        assert listening, "no listening socket found"
        assert all(a.startswith("127.") for a in listening), listening
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, out.read_text()
