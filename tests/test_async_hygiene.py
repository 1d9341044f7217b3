"""No async test or fixture blocks the event loop that runs the code under test.

A blocking socket call, ``time.sleep`` or a synchronous subprocess inside an ``async def``
stops the loop: the node under test cannot answer, close or time out meanwhile, so such a test
passes on an idle machine and fails under load. This walks every ``async def`` under ``tests/``
(not the plain functions nested in it, which may run in a thread) and flags calls that block
unless their result is awaited or handed to ``asyncio.wait_for``/``to_thread``-style helpers.
Use asyncio streams, ``asyncio.to_thread`` or ``await asyncio.sleep`` instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# module.function calls that block the calling thread.
BLOCKING_FUNCTIONS = {
    "time.sleep",
    "socket.create_connection",
    "subprocess.run",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
    "urllib.request.urlopen",
    "urlopen",
    "eventually_blocking",
    # Starting a real erl waits for it to boot, and it registers with EPMD, which may be the
    # embedded one the test's own node serves on this loop: use `await peers.astart(...)`.
    "peers.start",
    "start_peer",
}
# Methods that block on a blocking socket, a Popen or a thread primitive.
BLOCKING_METHODS = {"recv", "recv_into", "recvfrom", "sendall", "accept", "communicate", "wait"}
# Callables whose arguments are coroutines or run elsewhere: a call inside them is not blocking.
HANDOFFS = {
    "asyncio.wait_for", "asyncio.create_task", "asyncio.gather", "asyncio.shield",
    "asyncio.ensure_future", "asyncio.to_thread", "create_task",
}
# "path:function": reason -- places where a flagged call is known not to block the loop.
ALLOWED: dict[str, str] = {
    "tests/interop/test_stalls.py:blocker": "the scenario under test: a process of the node "
    "blocks its loop on purpose, for a bounded time, and the test awaits it with a timeout",
}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _blocking_calls(function: ast.AsyncFunctionDef) -> list[tuple[int, str]]:
    """(line, call) of each blocking call directly in ``function``'s body."""
    handed_off: set[int] = set()
    found: list[tuple[int, str]] = []
    stack: list[ast.AST] = list(function.body)
    nodes: list[ast.AST] = []
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue  # its own scope: a nested async def is checked on its own
        if isinstance(node, ast.Await):
            handed_off.add(id(node.value))
        if isinstance(node, ast.Call) and _dotted(node.func) in HANDOFFS:
            handed_off.update(id(arg) for arg in node.args)
        nodes.append(node)
        stack.extend(ast.iter_child_nodes(node))
    for node in nodes:
        if not isinstance(node, ast.Call) or id(node) in handed_off:
            continue
        name = _dotted(node.func)
        method = node.func.attr if isinstance(node.func, ast.Attribute) else ""
        if name in BLOCKING_FUNCTIONS or method in BLOCKING_METHODS:
            found.append((node.lineno, name or method))
    return sorted(found)


def test_no_blocking_call_inside_async_tests() -> None:
    problems = []
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for function in ast.walk(tree):
            if not isinstance(function, ast.AsyncFunctionDef):
                continue
            where = f"{path.relative_to(TESTS.parent).as_posix()}:{function.name}"
            if where in ALLOWED:
                continue
            problems += [f"{where} line {line}: {call}" for line, call in _blocking_calls(function)]
    assert not problems, "blocking calls inside async functions:\n" + "\n".join(problems)


def test_the_check_finds_a_blocking_call() -> None:
    source = (
        "async def t(sock, proc):\n"
        "    time.sleep(1)\n"
        "    data = sock.recv(10)\n"
        "    await asyncio.wait_for(proc.wait(), 5)\n"
        "    await asyncio.to_thread(sock.recv, 10)\n"
        "    def helper():\n"
        "        time.sleep(1)\n"
    )
    [function] = [n for n in ast.parse(source).body if isinstance(n, ast.AsyncFunctionDef)]
    assert _blocking_calls(function) == [(2, "time.sleep"), (3, "sock.recv")]
