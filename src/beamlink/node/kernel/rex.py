"""RPC into Python: the ``erpc`` spawn services and the ``rex`` registered process.

OTP 23+ callers (``rpc:call``, ``erpc:call``) send a SPAWN_REQUEST for
``erpc:execute_call(Ref, M, F, A)`` with a monitor; :meth:`RpcServer.execute_call` runs as that
spawned process, applies the Python callable ``M:F`` (see ``modules.py``) to ``A`` (awaiting coroutines) and
exits with the same reason ``erpc.erl`` uses: ``{Ref, return, Value}``, ``{Ref, throw, T}``,
``{Ref, exit, R}`` or ``{Ref, error, R, Stack}``. ``erpc:cast``/``rpc:cast`` use
``erpc:execute_cast(M, F, A)``.

A Python exception becomes an ``error`` with reason
``{python_exception, <<"ValueError">>, <<"message">>}`` (the type is qualified with its module
unless it is a builtin) and a stack of ``{Module, Function, Arity, [{file, F}, {line, L}]}`` frames,
innermost first. So ``rpc:call`` returns ``{badrpc, {'EXIT', {{python_exception, ...}, Stack}}}``
and ``erpc:call`` raises ``error:{exception, {python_exception, ...}, Stack}``. Raising
:class:`~beamlink.node.rpc.ErlangException` picks the class and reason instead. A module or
function that does not exist (or is not allowed) gives ``error:undef`` like on a BEAM node.

The ``rex`` process answers what OTP's ``rex`` gen_server answers for peers: the
``{From, features_request}`` probe every node sends on nodeup, and the older message forms
non-BEAM callers use (``{From, {call, M, F, A, GL}}``, ``gen_server:call(rex, {call, ...})``,
``{cast, ...}``, ``sbcast``, ``send``).

Where the called code runs: a coroutine function (or a function marked ``on_loop``) on the node's
event loop; any other (synchronous) function in the node's worker pool (`Executor`), so a blocking
call blocks only the process serving it, as in Erlang (docs/rpc.md).

`RpcServer.served` counts the calls by kind (``call``, ``cast``) and outcome (``return``,
``throw``, ``exit``, ``error``) for metrics.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import traceback
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from beamlink.etf import Atom, Charlist, Reference, encode
from beamlink.node.atoms import BADRPC, ERROR, EXIT_TAG, GEN_CAST, UNDEF
from beamlink.node.errors import ProcessExit
from beamlink.node.genserver import parse_call, reply
from beamlink.node.kernel.host import KernelOptions, ServiceHost
from beamlink.node.kernel.modules import ModuleResolver, NodeView, Undefined
from beamlink.node.rpc import (
    ERPC,
    EXECUTE_CALL,
    EXECUTE_CAST,
    EXIT,
    RETURN,
    THROW,
    ErlangException,
)
from beamlink.node.runtime import Executor, exception_reason, runs_inline

REX = Atom("rex")
FEATURES_REQUEST = Atom("features_request")
FEATURES_REPLY = Atom("features_reply")
FEATURES = [ERPC]
CALL = Atom("call")
BLOCK_CALL = Atom("block_call")
CAST = Atom("cast")
SBCAST = Atom("sbcast")
SEND = Atom("send")
NONEXISTING_NAME = Atom("nonexisting_name")
FILE = Atom("file")
NOCATCH = Atom("nocatch")
EXCEPTION = Atom("exception")
LINE = Atom("line")

#: Frames kept in the stack of a Python exception (innermost first).
MAX_STACK_FRAMES = 32

Outcome = tuple[Atom, Any] | tuple[Atom, Any, list[Any]]
"""``(return, Value)``, ``(throw | exit, Reason)`` or ``(error, Reason, Stack)``."""


def _atom(text: str) -> Atom:
    return Atom(text[:255])


_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep


def python_stack(tb: TracebackType | None, skip: int = 0) -> list[Any]:
    """Erlang-style stack frames for a traceback, innermost first, without the first ``skip``."""
    frames = [
        (frame, line) for frame, line in list(traceback.walk_tb(tb))[skip:]
        # asyncio's own frames (Python 3.10 re-raises a worker's exception in Task.__wakeup)
        if not frame.f_code.co_filename.startswith(_ASYNCIO_DIR)
    ]
    stack: list[Any] = []
    for frame, line in reversed(frames[-MAX_STACK_FRAMES:]):
        code = frame.f_code
        location = [(FILE, Charlist(code.co_filename)), (LINE, line)]
        module = frame.f_globals.get("__name__", "?")
        stack.append((_atom(str(module)), _atom(getattr(code, "co_qualname", code.co_name)), code.co_argcount, location))
    return stack


def _exception_outcome(exc: BaseException, skip: int) -> Outcome:
    if isinstance(exc, ProcessExit):
        return (EXIT, exc.reason)
    if isinstance(exc, ErlangException):
        if exc.class_ == ERROR:
            return (ERROR, exc.reason, exc.stack)
        return (exc.class_, exc.reason)
    return (ERROR, exception_reason(exc), python_stack(exc.__traceback__, skip))


async def apply(
    resolver: ModuleResolver,
    node: NodeView,
    proc: Any,
    module: Any,
    function: Any,
    args: Any,
    executor: Executor,
) -> Outcome:
    """Apply ``module:function(*args)`` like ``erpc:execute_call``, catching every exception;
    a synchronous function runs in ``executor``'s workers.

    A value that cannot be sent back (no ETF encoding) is reported as a ``TypeError``.
    """
    if type(args) is Charlist:  # [1, 2] travels as a string: the arguments are its codes
        args = args.codes
    if not isinstance(module, Atom) or not isinstance(function, Atom) or not isinstance(args, list):
        return (ERROR, (ERPC, Atom("badarg")))
    try:
        fn = resolver.resolve(module, function, node, getattr(proc, "pid", None))
    except Undefined:
        return (ERROR, UNDEF, [(module, function, args, [])])
    except (Exception, SystemExit) as exc:
        return _exception_outcome(exc, 1)
    try:
        value = fn(*args) if runs_inline(fn) else await executor.submit(fn, *args)
        if inspect.isawaitable(value):
            value = await value
        encode(value)
    except (Exception, SystemExit) as exc:
        return _exception_outcome(exc, 1)
    return (RETURN, value)


def erpc_exit_reason(res: Reference, outcome: Outcome) -> tuple[Any, ...]:
    """The exit reason of an ``erpc:execute_call`` process: ``{Res, Class, Reason[, Stack]}``."""
    return (res, *outcome)


def rpc_reply(outcome: Outcome) -> Any:
    """What the old ``rex`` protocol answers: the value, a thrown term, or ``{badrpc, {'EXIT', _}}``."""
    kind = outcome[0]
    if kind in (RETURN, THROW):
        return outcome[1]
    if kind == EXIT or len(outcome) == 2:
        return (BADRPC, (EXIT_TAG, outcome[1]))
    return (BADRPC, (EXIT_TAG, (outcome[1], outcome[2])))


class RpcServer:
    """The RPC kernel service of one node: erpc spawn handlers and the ``rex`` process.

    ``options.rpc_allow``: module names RPC may reach (``None``: any; ``"pkg.*"`` covers
    submodules). ``modules``: Erlang module name -> Python object served before importing
    anything (``resolver.modules`` can be changed at any time; other services add theirs with
    `serve_module`).
    """

    name = str(REX)

    def __init__(
        self, options: KernelOptions, modules: Mapping[str, object] | None = None
    ) -> None:
        self._node: ServiceHost | None = None
        self.resolver = ModuleResolver(options.rpc_allow, modules)
        self.served: dict[tuple[str, str], int] = {}

    @property
    def node(self) -> ServiceHost:
        """The node this service runs on."""
        assert self._node is not None, "RpcServer.install() has not run"
        return self._node

    def serve_module(self, name: str, target: object) -> None:
        """Answer RPCs to Erlang module ``name`` with ``target``'s attributes (unless a module of
        that name is already served)."""
        self.resolver.modules.setdefault(name, target)

    async def _apply(self, kind: str, proc: Any, module: Any, function: Any, args: Any) -> Outcome:
        node = self.node
        outcome = await apply(self.resolver, node, proc, module, function, args, node.executor)
        key = (kind, str(outcome[0]))
        self.served[key] = self.served.get(key, 0) + 1
        return outcome

    def install(self, host: ServiceHost) -> None:
        """Register the erpc spawn services on the node and start ``rex``."""
        self._node = host
        host.spawn_handlers[(ERPC, EXECUTE_CALL, 4)] = self.execute_call
        host.spawn_handlers[(ERPC, EXECUTE_CAST, 3)] = self.execute_cast
        host.spawn(self.rex, name=REX)

    def stop(self) -> None:
        """Nothing to undo: the node ends ``rex`` with every other process."""

    async def execute_call(self, proc: Any, res: Any, module: Any, function: Any, args: Any) -> None:
        """The body of a process spawned for ``erpc:execute_call/4``: exits with the result."""
        outcome = await self._apply("call", proc, module, function, args)
        raise ProcessExit(erpc_exit_reason(res, outcome))

    async def execute_cast(self, proc: Any, module: Any, function: Any, args: Any) -> None:
        """The body of a process spawned for ``erpc:execute_cast/3``: ends the way
        ``erpc:execute_cast`` does (errors as ``{exception, {Reason, Stack}}``)."""
        outcome = await self._apply("cast", proc, module, function, args)
        if outcome[0] == EXIT:
            raise ProcessExit(outcome[1])
        if outcome[0] == THROW:
            raise ProcessExit((NOCATCH, outcome[1]))
        if outcome[0] == ERROR:
            raise ProcessExit(outcome[1] if len(outcome) == 2 else (EXCEPTION, outcome[1:]))

    async def rex(self, proc: Any) -> None:
        """The ``rex`` registered process: answers each request without blocking on the call."""
        while True:
            self.handle_rex(proc, await proc.receive())

    def handle_rex(self, proc: Any, msg: Any) -> None:
        """Answer one message sent to ``rex``."""
        call = parse_call(msg)
        if call is not None:
            from_, request = call
            if _is_mfa_request(request, (CALL, BLOCK_CALL)):
                self._spawn_call(request, lambda value: reply(proc, from_, value))
            return
        if not isinstance(msg, tuple) or len(msg) != 2:
            return
        head, body = msg
        if head == GEN_CAST and _is_mfa_request(body, (CAST,)):
            self.node.spawn(self.execute_cast, *body[1:4])
        elif body == FEATURES_REQUEST:
            proc.send(head, (FEATURES_REPLY, self.node.name, FEATURES), noconnect=True)
        elif _is_mfa_request(body, (CALL,)):
            self._spawn_call(body, lambda value: proc.send(head, (REX, value)))
        elif isinstance(body, tuple) and len(body) == 3 and body[0] in (SBCAST, SEND):
            self._forward(proc, head, *body)

    def _spawn_call(self, request: tuple[Any, ...], answer: Any) -> None:
        async def run(proc: Any) -> None:
            answer(rpc_reply(await self._apply("call", proc, *request[1:4])))

        self.node.spawn(run)

    def _forward(self, proc: Any, sender: Any, kind: Atom, name: Any, msg: Any) -> None:
        if not isinstance(name, Atom) or self.node.whereis(name) is None:
            proc.send(sender, (REX, self.node.name, (NONEXISTING_NAME, name)))
            return
        if kind == SBCAST:
            self.node.send(name, msg)
            proc.send(sender, (REX, self.node.name, self.node.name))
        else:
            self.node.send(name, (sender, msg))


def _is_mfa_request(term: Any, tags: Sequence[Atom]) -> bool:
    return isinstance(term, tuple) and len(term) == 5 and term[0] in tags


def install(
    runtime: Any, *, allow: Iterable[str] | None = None, modules: Mapping[str, object] | None = None
) -> RpcServer:
    """Serve RPC into Python on a bare `ProcessRuntime` (a `Node` installs its own service)."""
    server = RpcServer(KernelOptions(rpc_allow=allow), modules)
    server.install(runtime)
    return server
