"""Control nodes: a hidden, randomly named node that acts on a live target for one command.

It dials the target (through EPMD, or on the fixed distribution port when ``ERL_DIST_PORT`` is
set), never listens and never registers in EPMD, so it leaves no trace in the target's visible
node list (``nodes()``); it shows in ``nodes(hidden=True)`` only while the command runs. Failures
become :class:`ControlError` with a message for the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

from beamlink.connection import TlsConfig
from beamlink.errors import BeamlinkError, NodeError

AGENT = "beamlink.cli.agent"


class ControlError(NodeError, RuntimeError):
    """The target could not be reached or the command failed on it."""


def _local_address_towards(host: str) -> str:
    try:
        infos = socket.getaddrinfo(host, 9, type=socket.SOCK_DGRAM)
    except OSError:
        return "127.0.0.1"
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect(addr)
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def control_name(target: str) -> str:
    """A random hidden node name whose host part suits ``target`` (long or short names)."""
    if "@" not in target:
        raise ControlError(f"node name {target!r} has no host part (expected name@host)")
    host = target.split("@", 1)[1]
    label = f"beamlink_ctl_{secrets.token_hex(4)}"
    try:
        ipaddress.ip_address(host)
        long_names = True
    except ValueError:
        long_names = "." in host
    if not long_names:
        return f"{label}@{socket.gethostname().split('.')[0]}"
    local = _local_address_towards(host)
    return f"{label}@{local}" if ":" not in local else f"{label}@{socket.getfqdn()}"


async def start_control_node(target: str, cookie: str | None, tls: TlsConfig | None = None) -> Any:
    """A started hidden, client-only node named for ``target``; the caller stops it. ``tls``:
    TLS distribution (default: $BEAMLINK_SSL_DIST_OPTFILE, else plain TCP)."""
    from beamlink.node import Node

    try:
        return await Node.start(control_name(target), cookie, hidden=True, listen=False, tls=tls)
    except BeamlinkError as exc:
        raise ControlError(f"cannot start a control node: {exc}") from None


@contextlib.asynccontextmanager
async def control_node(
    target: str, cookie: str | None, timeout: float, tls: TlsConfig | None = None
) -> AsyncIterator[Any]:
    """A hidden node connected to ``target`` within ``timeout`` seconds; stopped on exit."""
    node = await start_control_node(target, cookie, tls)
    try:
        try:
            connected = await asyncio.wait_for(node.connect(target), timeout)
        except asyncio.TimeoutError:
            connected = False
        if not connected:
            raise ControlError(
                f"cannot connect to {target}: is it running (or still starting: try again), "
                "with the same cookie and ERL_EPMD_PORT, and TLS on both sides or neither "
                "(--ssl-dist-optfile)?"
            )
        yield node
    finally:
        await node.stop()


def not_a_beamlink_node(target: str) -> str:
    """What to tell an operator who pointed ``rpc`` or ``remote`` at a BEAM node."""
    host = target.split("@", 1)[-1]
    return (
        f"{target} is not a beamlink node (it has no beamlink agent: an Erlang or Elixir node?).\n"
        "`beamlink rpc` and `remote` run Python code and need a beamlink node. For an Erlang "
        "node, open a shell on it and call what you need there:\n"
        f"  erl -name dbg@{host} -setcookie COOKIE -remsh {target}\n"
        f"  iex --name dbg@{host} --cookie COOKIE --remsh {target}    (Elixir)\n"
        "`beamlink ping`, `nodes`, `pid` and `stop` work on any node."
    )


async def _call(node: Any, target: str, module: str, function: str, args: list[Any],
                timeout: float) -> Any:
    from beamlink.node.atoms import UNDEF
    from beamlink.node.rpc import RemoteException, RpcError

    try:
        return await node.rpc(target, module, function, args, timeout=timeout)
    except RemoteException as exc:
        if module == AGENT and exc.reason == UNDEF:
            raise ControlError(not_a_beamlink_node(target)) from exc
        raise ControlError(str(exc)) from exc
    except RpcError as exc:
        raise ControlError(str(exc)) from exc


async def ping_target(
    target: str, cookie: str | None, timeout: float, tls: TlsConfig | None = None
) -> bool:
    """``net_adm:ping/1`` from a hidden node: True for pong."""
    node = await start_control_node(target, cookie, tls)
    try:
        return bool(await node.ping(target, timeout))
    finally:
        await node.stop()


async def rpc_eval(
    target: str, cookie: str | None, timeout: float, expr: str, tls: TlsConfig | None = None
) -> tuple[bool, str]:
    """Evaluate Python ``expr`` on a beamlink target: ``(ok, what a REPL would print)``."""
    async with control_node(target, cookie, timeout, tls) as node:
        ok, out = await _call(node, target, AGENT, "evaluate", [expr.encode()], timeout)
    return bool(ok), bytes(out).decode()


async def target_nodes(
    target: str, cookie: str | None, timeout: float, tls: TlsConfig | None = None
) -> list[str]:
    """The target's visible node list (works on BEAM and beamlink nodes)."""
    async with control_node(target, cookie, timeout, tls) as node:
        names = await _call(node, target, "erlang", "nodes", [], timeout)
    return [str(n) for n in names]


async def target_pid(
    target: str, cookie: str | None, timeout: float, tls: TlsConfig | None = None
) -> str:
    """The target's OS pid (``os:getpid()`` on BEAM nodes, ``os.getpid()`` on beamlink ones)."""
    async with control_node(target, cookie, timeout, tls) as node:
        result = await _call(node, target, "os", "getpid", [], timeout)
    return str(result)


async def stop_target(
    target: str, cookie: str | None, timeout: float, tls: TlsConfig | None = None
) -> None:
    """Stop the target gracefully: beamlink's agent, or ``init:stop()`` on a BEAM node."""
    from beamlink.node.rpc import RemoteException

    async with control_node(target, cookie, timeout, tls) as node:
        try:
            await node.rpc(target, AGENT, "stop", [], timeout=timeout)
        except RemoteException:
            await _call(node, target, "init", "stop", [], timeout)
        except Exception as exc:
            raise ControlError(str(exc)) from exc
