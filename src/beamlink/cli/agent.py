"""The target side of the operator commands: functions a control node calls over RPC.

``beamlink rpc``, ``remote``, ``stop`` and friends start a hidden node and call these functions on
the live node with ``rpc:call``-style requests, so they run inside the target's event loop with
its node in scope (the synchronous ones are marked ``on_loop``: they touch the node and the loop,
and must not run in a worker thread). Whoever holds the cookie may already run any code on a node (as in Erlang);
these functions add no new power, only convenience.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import itertools
import traceback
import types
from collections.abc import Callable
from typing import Any

from beamlink.etf import Atom
from beamlink.node.runtime import on_loop

_sessions: dict[int, dict[str, Any]] = {}
_session_owners: dict[int, str] = {}
_watched_nodes: set[str] = set()
_session_ids = itertools.count(1)
# Node name -> the event that ends the ``beamlink start`` run hosting that node.
_stop_requests: dict[str, asyncio.Event] = {}
_background: set[asyncio.Future[None]] = set()
# Seconds between answering a stop request and stopping a node not hosted by ``beamlink start``.
STOP_DELAY = 0.05


def register_stop_event(node_name: str, event: asyncio.Event) -> Callable[[], None]:
    """Let ``beamlink stop`` end the run hosting ``node_name`` by setting ``event``; returns
    the function that withdraws it (call it when the run ends)."""
    _stop_requests[node_name] = event

    def withdraw() -> None:
        _stop_requests.pop(node_name, None)

    return withdraw


def _namespace(node: Any) -> dict[str, Any]:
    import beamlink

    return {
        "__name__": "__beamlink_remote__",
        "asyncio": asyncio,
        "beamlink": beamlink,
        "Atom": Atom,
        "node": node,
        "nodes": node.nodes,
        "connect": node.connect,
        "disconnect": node.disconnect,
        "ping": node.ping,
    }


def _format_exception(exc: BaseException) -> str:
    """The traceback as the Python REPL shows it: without this module's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


async def _run(source: str, namespace: dict[str, Any]) -> tuple[bool, str]:
    """Execute ``source`` like a REPL line: echo an expression's repr, show a traceback on error.

    Output is captured by redirecting ``sys.stdout`` while the code runs (awaits included), so
    what other tasks of the node print meanwhile is captured too.
    """
    out = io.StringIO()
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    try:
        try:
            code = compile(source, "<remote>", "single", flags=flags)
        except SyntaxError:
            code = compile(source, "<remote>", "exec", flags=flags)
    except (SyntaxError, ValueError, OverflowError) as exc:
        return False, _format_exception(exc)
    with contextlib.redirect_stdout(out):
        try:
            result = eval(code, namespace)  # a cookie holder may run any code, as in Erlang
            if isinstance(result, types.CoroutineType):
                await result
        except SystemExit:
            return False, out.getvalue() + "SystemExit ignored: use `beamlink stop` to stop a node\n"
        except BaseException as exc:  # the operator sees the traceback; the node goes on
            return False, out.getvalue() + _format_exception(exc)
    return True, out.getvalue()


async def evaluate(source: bytes | str) -> tuple[bool, bytes]:
    """Evaluate one expression or statement block on this node: ``(ok, what a REPL shows)``.

    ``ok`` is False when the code raised; the text then ends with the traceback.
    """
    from beamlink.node import current_node

    text = source.decode() if isinstance(source, bytes) else source
    ok, output = await _run(text, _namespace(current_node()))
    return ok, output.encode()


@on_loop
def open_session(owner: str) -> int:
    """Start a console session with its own namespace for the (hidden) node ``owner``.

    Returns the session id. The session is forgotten when ``owner`` disconnects, so a console that
    dies without closing leaves nothing behind.
    """
    from beamlink.node import current_node

    node = current_node()
    if node.name not in _watched_nodes:
        _watched_nodes.add(node.name)
        node.monitor_nodes(_forget_sessions_of)
    session = next(_session_ids)
    _sessions[session] = _namespace(node)
    _session_owners[session] = str(owner)
    return session


def _forget_sessions_of(event: Any) -> None:
    if event.kind == "nodedown":
        for session, owner in list(_session_owners.items()):
            if owner == event.node:
                close_session(session)


async def session_eval(session: int, source: bytes | str) -> tuple[bool, bytes]:
    """Run one console input in ``session``'s namespace: ``(ok, text to show)``."""
    namespace = _sessions.get(session)
    if namespace is None:
        return False, b"session expired\n"
    text = source.decode() if isinstance(source, bytes) else source
    ok, output = await _run(text, namespace)
    return ok, output.encode()


@on_loop
def close_session(session: int) -> bool:
    """Forget a console session."""
    _session_owners.pop(session, None)
    return _sessions.pop(session, None) is not None


@on_loop
def stop() -> Atom:
    """Stop this node gracefully (as ``init:stop/0`` does on a BEAM node).

    Under ``beamlink start`` the runner shuts down and the process exits 0; elsewhere the node is
    stopped shortly after this call has answered.
    """
    from beamlink.node import current_node

    node = current_node()
    event = _stop_requests.get(str(node.name))
    if event is not None:
        event.set()
    else:
        asyncio.get_running_loop().call_later(STOP_DELAY, _stop_node, node)
    return Atom("ok")


def _stop_node(node: Any) -> None:
    task = asyncio.ensure_future(node.stop())
    _background.add(task)
    task.add_done_callback(_background.discard)


async def run_local(source: str) -> tuple[bool, str]:
    """``beamlink eval``: run ``source`` in this process with beamlink imported, no node."""
    import beamlink

    namespace = {"__name__": "__beamlink_eval__", "asyncio": asyncio, "beamlink": beamlink,
                 "Atom": Atom}
    return await _run(source, namespace)
