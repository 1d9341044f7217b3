"""Run one ```python block of a doc (a JSON spec: source, path, line, vary) as the doc runner's
subprocess: ``python pyblock.py SPEC`` in the doc's working directory.

Tracebacks name the Markdown file and line. ``EXPR  # -> TEXT`` becomes a check that
``repr(EXPR)`` (``str`` of the argument for ``print(EXPR)``) is ``TEXT``. A block with top-level
``await`` (or that uses ``node`` without defining it) runs in a coroutine with ``asyncio`` and ``from beamlink import *`` in scope, plus a
started node ``py@127.0.0.1`` (cookie ``secret``) as ``node`` when it uses ``node`` without
assigning it.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import json
import os
import sys
import tokenize
import traceback
from typing import Any

FRAGMENT_NODE = "py@127.0.0.1"
FRAGMENT_COOKIE = "secret"


def expectations(source: str) -> dict[int, str]:
    """Line (1-based, in the block) -> TEXT of each ``# -> TEXT`` comment."""
    found = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and token.string.startswith("# -> "):
            found[token.start[0]] = token.string[5:].strip()
    return found


class _Checks(ast.NodeTransformer):
    """``EXPR  # -> TEXT`` statements become ``__doc_expect__(EXPR, TEXT, line, is_print)``."""

    def __init__(self, expected: dict[int, str]) -> None:
        self.expected = expected
        self.used: set[int] = set()

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        line = node.end_lineno or node.lineno
        if line not in self.expected:
            return node
        self.used.add(line)
        value = node.value
        is_print = (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                    and value.func.id == "print" and len(value.args) == 1 and not value.keywords)
        if is_print:
            assert isinstance(value, ast.Call)
            value = value.args[0]
        call = ast.Call(
            func=ast.Name("__doc_expect__", ast.Load()),
            args=[value, ast.Constant(self.expected[line]), ast.Constant(line),
                  ast.Constant(is_print)],
            keywords=[],
        )
        return ast.copy_location(ast.Expr(call), node)


def _uses_free_node(tree: ast.Module) -> bool:
    """True when the block reads ``node`` and never binds it (assignment, ``as``, argument)."""
    loads = stores = False
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and n.id == "node":
            loads |= isinstance(n.ctx, ast.Load)
            stores |= isinstance(n.ctx, ast.Store)
        elif isinstance(n, ast.arg) and n.arg == "node":
            stores = True
    return loads and not stores


async def _fragment(code: Any, namespace: dict[str, Any], with_node: bool) -> None:
    import beamlink

    namespace["asyncio"] = asyncio
    namespace.update({name: getattr(beamlink, name) for name in beamlink.__all__})
    if not with_node:
        result = eval(code, namespace)
        if inspect.isawaitable(result):
            await result
        return
    async with beamlink.Node.start(FRAGMENT_NODE, cookie=FRAGMENT_COOKIE) as node:
        namespace["node"] = node
        result = eval(code, namespace)
        if inspect.isawaitable(result):
            await result


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    source, path, first_line = spec["source"], spec["path"], spec["line"]
    sys.path[0] = os.getcwd()  # like `python script.py` run from the doc's directory
    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    from tests.docs.markdown import matches

    def expect(value: Any, expected: str, line: int, is_print: bool) -> None:
        if is_print:
            print(value)
        text = str(value) if is_print else repr(value)
        if not matches(expected, text, spec["vary"]):
            raise AssertionError(
                f"{path}:{first_line + line - 1}: the doc shows {expected}, the code gives {text}"
            )

    tree = ast.parse(source, path)
    checks = _Checks(expectations(source))
    tree = ast.fix_missing_locations(checks.visit(tree))
    unused = sorted(set(checks.expected) - checks.used)
    if unused:
        raise SystemExit(f"{path}:{first_line + unused[0] - 1}: '# ->' must follow an "
                         "expression statement")
    ast.increment_lineno(tree, first_line - 1)
    code = compile(tree, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace: dict[str, Any] = {"__name__": "__main__", "__doc_expect__": expect}
    free_node = _uses_free_node(tree)
    try:
        if code.co_flags & inspect.CO_COROUTINE or free_node:
            asyncio.run(_fragment(code, namespace, free_node))
        else:
            exec(code, namespace)
    except Exception as exc:
        _report(exc, path)
        raise SystemExit(1) from None


def _report(exc: BaseException, path: str) -> None:
    """The traceback without this driver's and asyncio's frames (the doc's lines stay)."""
    report = traceback.TracebackException.from_exception(exc)
    for entry in [report, *_chained(report)]:
        entry.stack = traceback.StackSummary.from_list(
            [frame for frame in entry.stack
             if frame.filename != __file__ and f"{os.sep}asyncio{os.sep}" not in frame.filename]
        )
    print(f"{path}: the example raised:", file=sys.stderr)
    print("".join(report.format()), end="", file=sys.stderr)


def _chained(report: traceback.TracebackException) -> list[traceback.TracebackException]:
    out = []
    while report.__cause__ or report.__context__:
        report = report.__cause__ or report.__context__  # type: ignore[assignment]
        out.append(report)
    return out


if __name__ == "__main__":
    main()
