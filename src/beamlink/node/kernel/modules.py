"""Which Python callable an incoming RPC names: module resolution, the allow-list, the `erlang` shim.

An Erlang node calling ``rpc:call(PyNode, M, F, Args)`` names a Python module ``M`` (dotted names
such as ``'os.path'`` allowed) and an attribute ``F`` of it. :class:`ModuleResolver` turns that pair
into a callable or refuses with :class:`Undefined`, which the RPC server reports the way Erlang
reports a call to a function that does not exist (``error:undef``).

Trust model: as in Erlang, whoever holds the cookie may run any code on the node. The default
resolver imports any module. An allow-list (``allow=[...]``) restricts calls to the listed modules
(an entry ``"pkg.*"`` also allows every submodule of ``pkg``); with an allow-list, attribute names
starting with ``_`` are refused too. The ``erlang`` shim is always reachable: it only answers
harmless questions about the node (``node/0``, ``nodes/0,1``, ...).

This file never touches the network: it only maps names to callables.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from beamlink.errors import NodeError
from beamlink.etf import Atom, Pid, Port, Reference
from beamlink.node.runtime import on_loop

ERLANG_SHIM = "erlang"


class Undefined(NodeError, LookupError):
    """The module or function named by an RPC does not exist, is not callable or is not allowed."""

    def __init__(self, module: str, function: str, why: str) -> None:
        super().__init__(f"{module}:{function} is not callable over RPC: {why}")
        self.module = module
        self.function = function
        self.why = why


class NodeView(Protocol):
    """What the ``erlang`` shim needs to know about the node answering the call."""

    @property
    def name(self) -> Atom: ...

    def nodes(self) -> list[Atom]: ...


class ErlangShim:
    """The subset of Erlang's ``erlang`` module that makes sense on a Python node.

    ``rpc:call(PyNode, erlang, node, [])`` is how many tools check that a node answers; these
    functions let them work. Each returns what the BIF of the same name returns on a BEAM node;
    they are quick and read the node's state, so they run on the event loop (`on_loop`).
    """

    def __init__(self, node: NodeView, caller: Pid | None = None) -> None:
        self._node = node
        self._caller = caller

    @on_loop
    def node(self, term: Pid | Reference | Port | None = None) -> Atom:
        """``node/0``: this node's name; ``node/1``: the node a pid, reference or port belongs to."""
        if term is None:
            return self._node.name
        if isinstance(term, Pid | Reference | Port):
            return term.node
        raise TypeError(f"erlang:node/1 needs a pid, reference or port, not {type(term).__name__}")

    @on_loop
    def nodes(self, which: Atom | list[Atom] | None = None) -> list[Atom]:
        """``nodes/0`` (visible nodes) and ``nodes/1`` with ``visible``, ``connected``, ``this``,
        ``known`` or a list of those."""
        kinds = [Atom("visible")] if which is None else which if isinstance(which, list) else [which]
        result: list[Atom] = []
        for kind in kinds:
            if kind in (Atom("visible"), Atom("connected"), Atom("known")):
                found = self._node.nodes()
            elif kind == Atom("this"):
                found = [self._node.name]
            elif kind == Atom("hidden"):
                found = []
            else:
                raise TypeError(f"erlang:nodes/1: unknown node type {kind!r}")
            result.extend(n for n in found if n not in result)
        return result

    @on_loop
    def is_alive(self) -> bool:
        """``is_alive/0``: a beamlink node is always distributed."""
        return True

    @on_loop
    def self(self) -> Pid | None:
        """``self/0``: the pid of the process running the call."""
        return self._caller


def _check_identifier(name: str, module: str, function: str) -> None:
    if not name or any(not part.isidentifier() for part in name.split(".")):
        raise Undefined(module, function, f"{name!r} is not a Python name")


class ModuleResolver:
    """Maps ``(module, function)`` of an incoming RPC to a Python callable.

    ``allow``: ``None`` allows every importable module; otherwise only the listed module names
    (``"pkg.*"`` allows ``pkg`` and its submodules). ``modules`` maps Erlang module names to
    objects (modules or any object with attributes) served before importing anything; the
    allow-list does not apply to them, since registering one is an explicit choice.
    """

    def __init__(
        self,
        allow: Iterable[str] | None = None,
        modules: Mapping[str, object] | None = None,
    ) -> None:
        self.allow: frozenset[str] | None = None if allow is None else frozenset(allow)
        self.modules: dict[str, object] = dict(modules or {})

    def allowed(self, module: str) -> bool:
        """True when the allow-list (if any) lets RPC reach ``module``."""
        if self.allow is None or module in self.allow:
            return True
        parts = module.split(".")
        return any(".".join(parts[:i]) + ".*" in self.allow for i in range(1, len(parts) + 1))

    def resolve(
        self, module: str, function: str, node: NodeView, caller: Pid | None = None
    ) -> Callable[..., Any]:
        """The callable ``module:function`` names, or raise :class:`Undefined`."""
        module, function = str(module), str(function)  # an Atom never equals a str key
        target: object
        if module in self.modules:
            target = self.modules[module]
        elif module == ERLANG_SHIM:
            target = ErlangShim(node, caller)
        else:
            _check_identifier(module, module, function)
            if not self.allowed(module):
                raise Undefined(module, function, "module not in the RPC allow-list")
            try:
                target = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name is not None and module.startswith(exc.name) and (
                    module == exc.name or module[len(exc.name)] == "."
                ):
                    raise Undefined(module, function, "no such module") from None
                raise
        _check_identifier(function, module, function)
        private = self.allow is not None or isinstance(target, ErlangShim)
        if "." in function or (private and function.startswith("_")):
            raise Undefined(module, function, "attribute name not allowed")
        fn = getattr(target, function, None)
        if fn is None or not callable(fn):
            raise Undefined(module, function, "no such function")
        return fn  # type: ignore[no-any-return]
