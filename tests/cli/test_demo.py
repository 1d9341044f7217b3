"""``beamlink demo``: a full mesh of local nodes plus a real ``erl`` node, ended by ``--duration``
or by Ctrl-C (SIGINT), with every child process stopped."""

from __future__ import annotations

import os
import signal
import subprocess
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
    assert not processes_with_env(f"ERL_EPMD_PORT={env['ERL_EPMD_PORT']}")
    assert not epmd_running(int(env["ERL_EPMD_PORT"]))


def test_demo_ends_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    require_tool("erl")
    env = cli_env(tmp_path)
    out = tmp_path / "demo.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            argv("demo", "--nodes", "2"), env=env, stdout=sink, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        eventually_blocking(lambda: out.read_text().count("[2/2]") >= 3, timeout=30)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "full mesh formed; all nodes stopped" in out.read_text()
    assert not processes_with_env(f"ERL_EPMD_PORT={env['ERL_EPMD_PORT']}")
    assert not epmd_running(int(env["ERL_EPMD_PORT"]))
