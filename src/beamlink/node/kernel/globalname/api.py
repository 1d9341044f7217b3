"""global's user API and the ``global`` kernel service.

`GlobalService` is what the node installs: it starts `GlobalServer` (``global_name_server`` and
the locker), keeps the registrar, and serves the ``global`` module to Erlang nodes' RPCs
(`GlobalRpc`: ``resolve_it/4`` for name clashes, and the registry functions acting on this node).

The registrar serialises this node's own ``register_name``/``unregister_name`` as global.erl's
``trans_all_known`` does: it takes the ``{global, Registrar}`` lock on every known node, then
multi-calls the change to all of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from beamlink.etf import Atom, Export, Fun, Pid
from beamlink.node.atoms import NO, OK, UNDEFINED, YES
from beamlink.node.errors import UnknownName
from beamlink.node.kernel.globalname.resolve import resolve_it, resolve_method
from beamlink.node.kernel.globalname.server import GlobalServer
from beamlink.node.kernel.globalname.vocabulary import (
    DEFAULT_METHOD,
    GLOBAL,
    REGISTER,
    UNREGISTER,
    global_name,
    random_sleep_seconds,
)
from beamlink.node.kernel.host import KernelOptions, ServiceHost
from beamlink.node.kernel.rex import RpcServer
from beamlink.node.runtime import Process, on_loop

log = logging.getLogger("beamlink.node.global")


class GlobalService:
    """The ``global`` kernel service and the registry API `Node` offers as ``global_*``."""

    name = "global_name_server"

    def __init__(self, options: KernelOptions) -> None:
        self.server = GlobalServer()
        self._registrar: Process | None = None
        self._registrar_lock = asyncio.Lock()

    def install(self, host: ServiceHost) -> None:
        """Start ``global_name_server``, the locker and the registrar; serve ``global`` RPCs."""
        self.server.install(host)
        self._registrar = host.new_process()
        rex = host.service(RpcServer)
        if rex is not None:
            rex.serve_module(str(GLOBAL), GlobalRpc(self))

    def stop(self) -> None:
        """Stop following node events."""
        self.server.stop()

    # ------------------------------------------------------------------ the API

    async def register(
        self, name: Any, pid: Pid | Process, method: str | Export | Fun = "random_exit_name"
    ) -> bool:
        """``global:register_name(Name, Pid, Method)``; see `Node.global_register`."""
        return await self.register_name(global_name(name), _pid(pid), resolve_method(method))

    async def re_register(
        self, name: Any, pid: Pid | Process, method: str | Export | Fun = "random_exit_name"
    ) -> None:
        """``global:re_register_name/3``: point ``name`` at ``pid`` even if it is taken."""
        await self.re_register_name(global_name(name), _pid(pid), resolve_method(method))

    async def unregister(self, name: Any) -> None:
        """``global:unregister_name/1``."""
        await self.unregister_name(global_name(name))

    def whereis(self, name: Any) -> Pid | None:
        """``global:whereis_name/1``: the pid, or None."""
        return self.server.where(global_name(name))

    def names(self) -> list[Any]:
        """``global:registered_names/0``."""
        return self.server.registered_names()

    def send(self, name: Any, message: Any) -> Pid:
        """``global:send/2``: send to the pid registered as ``name`` and return it;
        `UnknownName` when nobody holds the name (Erlang exits with badarg)."""
        pid = self.server.where(global_name(name))
        if pid is None:
            raise UnknownName(f"no process is globally registered as {name!r}")
        self.server.node.send(pid, message)
        return pid

    # ------------------------------------------------------------------ global.erl's functions

    async def register_name(self, name: Any, pid: Pid, method: Any = DEFAULT_METHOD) -> bool:
        """``global:register_name/3``: True (yes) when ``name`` now names ``pid`` everywhere."""
        server = self.server

        async def register(proc: Process, nodes: list[Atom]) -> bool:
            if server.where(name) is not None or not self._check_dupname(name, pid):
                return False
            await server.multi_call(proc, nodes, (REGISTER, name, pid, method))
            return True

        return bool(await self._trans_all_known(register))

    async def re_register_name(self, name: Any, pid: Pid, method: Any = DEFAULT_METHOD) -> None:
        """``global:re_register_name/3``: (re)point ``name`` at ``pid`` everywhere."""

        async def register(proc: Process, nodes: list[Atom]) -> None:
            await self.server.multi_call(proc, nodes, (REGISTER, name, pid, method))

        await self._trans_all_known(register)

    async def unregister_name(self, name: Any) -> None:
        """``global:unregister_name/1`` (nothing happens when the name is not registered)."""
        if self.server.where(name) is None:
            return

        async def unregister(proc: Process, nodes: list[Atom]) -> None:
            await self.server.multi_call(proc, nodes, (UNREGISTER, name))

        await self._trans_all_known(unregister)

    async def sync(self, nodes: Iterable[str] | None = None) -> None:
        """``global:sync()``: return once this node has synced with every connected visible
        node (or with ``nodes``), or they went down."""
        await self.server.sync(nodes)

    def _check_dupname(self, name: Any, pid: Pid) -> bool:
        others = self.server.names.names_of(pid)
        if not others:
            return True
        log.error("global: %s registered under several names: %r", pid, [name, *others])
        return False

    # ------------------------------------------------------------------ the registrar

    async def _trans_all_known(self, fn: Callable[[Process, list[Atom]], Awaitable[Any]]) -> Any:
        assert self._registrar is not None, "GlobalService.install() has not run"
        async with self._registrar_lock:
            proc = self._registrar
            lock_id = (GLOBAL, proc.pid)
            nodes = await self._set_lock_known(proc, lock_id)
            try:
                return await fn(proc, nodes)
            finally:
                await self.server.delete_global_lock(proc, lock_id, nodes)

    async def _set_lock_known(self, proc: Process, lock_id: Any) -> list[Atom]:
        server = self.server
        times = 0
        while True:
            known = list(server.known)
            nodes = [server.me, *known]
            boss = max(nodes)
            if await server.set_lock_on_nodes(proc, lock_id, [boss]):
                if await server.set_lock_on_nodes(proc, lock_id, nodes) and not (
                    set(server.known) - set(known)
                ):
                    return nodes
                await server.del_lock(proc, lock_id, [boss])
            await asyncio.sleep(random_sleep_seconds(times))
            times += 1


class GlobalRpc:
    """The ``global`` module as Erlang nodes reach it over RPC on a Python node:
    ``resolve_it/4`` (name clashes), plus ``whereis_name/1``, ``registered_names/0``,
    ``register_name/2``, ``unregister_name/1`` and ``sync/0`` acting on this node. They use the
    node's state and API, so the synchronous ones run on the event loop (``on_loop``)."""

    def __init__(self, service: GlobalService) -> None:
        self._service = service

    @on_loop
    def resolve_it(self, method: Any, name: Any, pid1: Pid, pid2: Pid) -> Any:
        return resolve_it(self._service.server.node, method, name, pid1, pid2)

    @on_loop
    def whereis_name(self, name: Any) -> Pid | Atom:
        return self._service.server.where(name) or UNDEFINED

    @on_loop
    def registered_names(self) -> list[Any]:
        return self._service.server.registered_names()

    async def register_name(self, name: Any, pid: Pid) -> Atom:
        return YES if await self._service.register_name(name, pid) else NO

    async def unregister_name(self, name: Any) -> Atom:
        await self._service.unregister_name(name)
        return OK

    async def sync(self) -> Atom:
        await self._service.sync()
        return OK


def _pid(pid: Pid | Process) -> Pid:
    return pid if isinstance(pid, Pid) else pid.pid
