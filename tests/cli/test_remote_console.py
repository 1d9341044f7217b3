"""``beamlink remote`` driven through a pseudo-terminal: code runs on the target (await allowed),
output and tracebacks come back, history is kept, Ctrl-D leaves the target running."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.support import Pty, StartedNode, argv, beamlink, cli_env, started

pytestmark = pytest.mark.timeout(90)

A = "con_a@127.0.0.1"
B = "con_b@127.0.0.1"
PROMPT = re.escape(f"{A}> ")


def test_remote_console_runs_code_on_the_target(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    a = StartedNode(A, env, tmp_path / "a.log", "start", "--name", A)
    with started([a]) as running:
        a.wait_running()
        b = StartedNode(B, env, tmp_path / "b.log", "start", "--name", B)
        running.append(b)
        b.wait_running()
        assert beamlink("rpc", A, f"await connect({B!r})", env=env).stdout == "True\n"
        console = Pty(argv("remote", A), env)
        try:
            console.expect("Ctrl-D leaves")
            console.expect(PROMPT)
            console.send("nodes()\r")
            assert f"[Atom({B!r})]" in console.expect(PROMPT)

            console.send("import os; os.getpid()\r")
            assert str(a.proc.pid) in console.expect(PROMPT)

            console.send("await asyncio.sleep(0.1)\r")
            console.expect(PROMPT)
            console.send(f"answer = await ping({B!r})\r")
            console.expect(PROMPT)
            console.send("answer, node.name\r")
            assert f"(True, Atom({A!r}))" in console.expect(PROMPT)

            console.send("def twice(x):\r    return 2 * x\r\r")
            console.expect(PROMPT)
            console.send("twice(21)\r")
            assert "42" in console.expect(PROMPT)

            console.send("{}['missing']\r")
            shown = console.expect(PROMPT)
            assert "Traceback (most recent call last)" in shown
            assert "KeyError: 'missing'" in shown
            assert "agent.py" not in shown

            console.send("raise SystemExit(3)\r")
            assert "SystemExit ignored" in console.expect(PROMPT)

            console.send("\x04")
            assert console.proc.wait(15) == 0
        finally:
            console.close()

        assert a.proc.poll() is None
        assert beamlink("ping", A, env=env).stdout == "pong\n"
        assert beamlink("nodes", A, env=env).stdout == f"{B}\n"
        leftovers = beamlink(
            "rpc", A,
            "import beamlink.cli.agent as agent; "
            "len(agent._sessions), sum('beamlink_ctl' in n for n in nodes(hidden=True))",
            env=env,
        )
        assert leftovers.stdout == "(0, 1)\n"  # no session left; only this rpc's control node
        assert "nodes()" in (tmp_path / ".beamlink_history").read_text()
        assert a.terminate() == 0
        assert b.terminate() == 0


def test_remote_console_to_an_absent_node_fails(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    result = beamlink("remote", "nobody@127.0.0.1", "--timeout", "3", env=env)
    assert result.returncode == 1
    assert "cannot connect to nobody@127.0.0.1" in result.stderr
