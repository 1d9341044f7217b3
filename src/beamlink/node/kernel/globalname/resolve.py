"""Name conflicts when partitions merge (global.erl's ``exchange_names`` and ``resolve_it``).

The node with the smaller name runs each clash's resolve method on the node of the pid it
holds; this module decides which name entries a session takes and which of ours win, and runs
global's own methods (``random_exit_name``, ``random_notify_name``, ``notify_all_name``) when a
clash must be resolved on this node.
"""

from __future__ import annotations

import logging
from typing import Any

from beamlink.etf import Atom, Export, Fun, Pid
from beamlink.node.atoms import BADRPC, EXIT_TAG, KILL
from beamlink.node.kernel.globalname.tables import NameEntry, NameTable
from beamlink.node.kernel.globalname.vocabulary import (
    DELETE,
    GLOBAL,
    GLOBAL_NAME_CONFLICT,
    INSERT,
    METHODS,
    NONE,
    RANDOM_EXIT_NAME,
    RANDOM_NOTIFY_NAME,
)
from beamlink.node.kernel.host import ServiceHost
from beamlink.node.rpc import RpcError
from beamlink.node.rpc import call as rpc_call

log = logging.getLogger("beamlink.node.global")


async def exchange_names(
    host: ServiceHost, names: NameTable, name_list: Any, node: Atom
) -> tuple[list[Any], list[Any]]:
    """Which of ``node``'s names we take (ops) and which of ours win over his (resolved)."""
    ops: list[Any] = []
    res: list[Any] = []
    for name, pid, method in name_list:
        entry = names.get(name)
        if entry is None:
            ops.append((INSERT, (name, pid, method)))
            continue
        if entry.pid == pid or not host.name < node:
            continue
        winner = await _resolve_remote(host, entry, name, pid)
        if winner == pid:
            ops.append((INSERT, (name, pid, method)))
        elif winner == entry.pid:
            res.append((INSERT, (name, entry.pid, entry.method)))
        elif type(winner) is tuple and len(winner) == 2 and winner[0] == BADRPC:
            log.info(
                "global: badrpc %r received when conflicting name %r was found", winner[1], name
            )
            ops.append((INSERT, (name, pid, method)))
        else:
            if winner != NONE:
                log.info(
                    "global: Resolve method %r for conflicting name %r returned %r",
                    method,
                    name,
                    winner,
                )
            ops.append((DELETE, name))
            res.append((DELETE, name))
    return ops, res

async def _resolve_remote(host: ServiceHost, entry: NameEntry, name: Any, pid: Pid) -> Any:
    """``rpc:call(node(Pid2), global, resolve_it, [Method2, Name, Pid, Pid2])``."""
    if entry.pid.node == host.name:
        return resolve_it(host, entry.method, name, pid, entry.pid)
    try:
        return await rpc_call(
            host,
            entry.pid.node, GLOBAL, Atom("resolve_it"), [entry.method, name, pid, entry.pid]
        )
    except RpcError as exc:
        return (BADRPC, exc.reason)



def resolve_it(node: ServiceHost, method: Any, name: Any, pid1: Pid, pid2: Pid) -> Any:
    """``global:resolve_it/4`` for a clash on this node: run the resolve method, give the winner.

    ``global``'s own methods run here: the default one (``fun random_exit_name/3``, which
    arrives as a local fun of module ``global``), and ``fun global:random_exit_name/3``,
    ``random_notify_name/3``, ``notify_all_name/3``. Any other Erlang fun cannot run on a Python
    node: the result is ``{'EXIT', ...}``, which makes global drop the name everywhere.
    """
    kind = method_kind(method)
    if kind is None:
        return (EXIT_TAG, (Atom("python_node_cannot_run"), method))
    low, high = sorted([pid1, pid2], key=lambda p: p.node)
    if kind == RANDOM_EXIT_NAME:
        log.info("global: Name conflict terminating %r", (name, high))
        node.exit_signal(None, high, KILL)
        return low
    if kind == RANDOM_NOTIFY_NAME:
        node.send(high, (GLOBAL_NAME_CONFLICT, name))
        return low
    node.send(pid1, (GLOBAL_NAME_CONFLICT, name, pid2))
    node.send(pid2, (GLOBAL_NAME_CONFLICT, name, pid1))
    return NONE


def method_kind(method: Any) -> Atom | None:
    if isinstance(method, Export) and method.module == GLOBAL and method.arity == 3:
        return method.function if method.function in METHODS else None
    if (
        isinstance(method, Fun)
        and method.module == GLOBAL
        and method.arity == 3
        and not method.free_vars
    ):
        return RANDOM_EXIT_NAME
    return None


def resolve_method(method: str | Export | Fun) -> Export | Fun:
    """The method term for ``register_name``: a name of global's methods, or an Erlang fun."""
    if isinstance(method, Export | Fun):
        return method
    if Atom(method) not in METHODS:
        raise ValueError(
            f"unknown resolve method {method!r}: use one of {[str(m) for m in METHODS]}"
        )
    return Export(GLOBAL, Atom(method), 3)

