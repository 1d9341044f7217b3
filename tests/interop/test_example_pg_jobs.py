"""examples/pg_jobs runs as its README says: Python workers join a pg group, a real Elixir node
sends them jobs and gets every result back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.erlang import free_port
from tests.support.require import require_tool

pytestmark = pytest.mark.interop

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pg_jobs"


def test_elixir_dispatches_jobs_to_python_workers() -> None:
    elixir = require_tool("elixir")
    env = dict(os.environ, ERL_EPMD_PORT=str(free_port()))
    workers = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "workers.py"), "--name", "exworkers@127.0.0.1",
         "--cookie", "pgjobs", "--seconds", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        assert workers.stdout is not None
        ready = workers.stdout.readline()  # bounded: --seconds ends the workers
        assert ready.startswith("ready: 4 workers"), ready
        run = subprocess.run(
            [elixir, "--name", "exdispatch@127.0.0.1", "--cookie", "pgjobs",
             str(EXAMPLE / "dispatcher.exs"), "exworkers@127.0.0.1", "12"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        lines = run.stdout.splitlines()
        assert lines[0].startswith("4 workers: [#PID<")
        for n in range(1, 13):
            assert f"job {n}: {n * n} from exworkers@127.0.0.1" in lines
        assert lines[-1] == "all 12 results back"
    finally:
        workers.terminate()
        workers.wait(timeout=30)
