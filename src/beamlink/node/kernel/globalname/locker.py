"""global's locker (``loop_the_locker`` in global.erl): a second process next to
``global_name_server`` that, for each pending sync session, sets the lock
``{global, [LockerA, LockerB]}`` on both partitions (the boss first), tells the server
(``lock_is_set``), and holds the lock until the server cancels the session.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from beamlink.etf import Atom, Pid
from beamlink.node.atoms import GEN_CAST
from beamlink.node.errors import ReceiveTimeout
from beamlink.node.kernel.globalname.tables import LockTable
from beamlink.node.kernel.globalname.vocabulary import (
    ADD_TO_KNOWN,
    CANCEL,
    GLOBAL,
    GNS,
    HIS_THE_LOCKER,
    LOCK_IS_SET,
    LOCK_SET,
    NONODE,
    REMOVE_FROM_KNOWN,
    locker_lock_id,
)
from beamlink.node.runtime import Process

log = logging.getLogger("beamlink.node.global")


class LockServer(Protocol):
    """What the locker uses of ``global_name_server`` (`GlobalServer`): its lock table and the
    lock requests both the locker and the registrar make (global.erl's ``set_lock_on_nodes``,
    ``del_lock``, ``delete_global_lock``)."""

    @property
    def me(self) -> Atom: ...

    @property
    def proc(self) -> Process: ...

    @property
    def locks(self) -> LockTable: ...

    async def set_lock_on_nodes(self, proc: Process, lock_id: Any, nodes: list[Atom]) -> bool: ...

    async def del_lock(self, proc: Process, lock_id: Any, nodes: list[Atom]) -> None: ...

    async def delete_global_lock(self, proc: Process, lock_id: Any, nodes: list[Atom]) -> None: ...


@dataclass
class _Him:
    """A node the locker may lock with: its locker pid, version and the session's tags."""

    node: Atom
    locker: Pid
    vsn: int
    my_tag: int
    his_tag: Any


@dataclass
class _LockerState:
    hims: list[_Him] = field(default_factory=list)
    known: list[Atom] = field(default_factory=list)
    just_synced: bool = False



class Locker:
    """The locker process: locks both partitions for each pending session (global.erl's
    ``loop_the_locker``), then holds the lock until the server cancels the session."""

    def __init__(self, server: LockServer) -> None:
        self.server = server
        self.proc: Process | None = None
        self.state = _LockerState()

    @property
    def boss(self) -> Atom:
        return max([self.server.me, *self.state.known])

    async def run(self, proc: Process) -> None:
        state = self.state
        while True:
            try:
                msg = await proc.receive(timeout=0)
            except ReceiveTimeout:
                timeout = self._timeout()
                state.just_synced = False
                try:
                    msg = await proc.receive(timeout=timeout)
                except ReceiveTimeout:
                    if GLOBAL not in self.server.locks:
                        await self._select_node(proc)
                    continue
            try:
                await self._message(proc, msg)
            except (TypeError, ValueError, AttributeError, IndexError) as exc:
                log.warning("global locker dropped malformed message %r: %s", msg, exc)

    def _timeout(self) -> float | None:
        state = self.state
        if not state.hims:
            return None
        if state.just_synced:
            return 0
        if not state.known:
            return 0.2
        return min(1.0 + 0.1 * len(state.known), 3.0)

    async def _message(self, proc: Process, msg: Any) -> None:
        state = self.state
        tag = msg[0]
        if tag == HIS_THE_LOCKER:
            _, his_locker, (his_vsn, _), his_tag, my_tag = msg
            state.hims.insert(0, _Him(his_locker.node, his_locker, his_vsn, my_tag, his_tag))
        elif tag == CANCEL:
            _, node, cancel_tag, fun = msg
            if cancel_tag is not None and fun is None:
                self._remove_node(node, cancel_tag)
        elif tag == LOCK_SET:
            await self._on_lock_set(proc, msg)
        elif tag in (ADD_TO_KNOWN, REMOVE_FROM_KNOWN):
            self._update_known(msg)
        else:
            log.warning("global locker got an unexpected message: %r", msg)

    def _update_known(self, msg: Any) -> None:
        if msg[0] == ADD_TO_KNOWN:
            self.state.known[:0] = msg[1]
        elif msg[1] in self.state.known:
            self.state.known.remove(msg[1])

    async def _drain_known_updates(self, proc: Process) -> None:
        def is_update(m: Any) -> bool:
            return type(m) is tuple and len(m) == 2 and m[0] in (ADD_TO_KNOWN, REMOVE_FROM_KNOWN)

        while True:
            try:
                self._update_known(await proc.receive(is_update, 0))
            except ReceiveTimeout:
                return

    def _find(self, node: Atom) -> _Him | None:
        return next((h for h in self.state.hims if h.node == node), None)

    def _remove_node(self, node: Atom, tag: Any) -> None:
        hims = self.state.hims
        for i, him in enumerate(hims):
            if him.node == node and him.my_tag == tag:
                del hims[i]
                return

    async def _on_lock_set(self, proc: Process, msg: Any) -> None:
        pid, is_set = msg[1], msg[2]
        if is_set is not True:
            return
        him = self._find(pid.node)
        if him is None or (len(msg) == 5 and him.my_tag != msg[4]):
            self._send_lock_set(proc, False, pid, 5, 0)
            return
        lock_id = locker_lock_id(proc.pid, pid)
        is_lock_set = await self._lock_nodes_safely(proc, lock_id, [])
        self._send_lock_set(proc, is_lock_set, pid, him.vsn, him.his_tag)
        if is_lock_set:
            known = [self.server.me, *self.state.known]
            self.server.proc.mailbox.put((GEN_CAST, (LOCK_IS_SET, him.node, him.my_tag, lock_id)))
            await self._wait_cancel_lock(proc, him.node, lock_id, him.my_tag, known)
            self.state.just_synced = True
            self._remove_node(him.node, him.my_tag)
        else:
            self.state.just_synced = False

    def _send_lock_set(
        self, proc: Process, is_set: bool, his_locker: Pid, vsn: int, his_tag: Any
    ) -> None:
        known = list(self.state.known)
        if vsn < 8:
            message: tuple[Any, ...] = (LOCK_SET, proc.pid, is_set, known)
        else:
            message = (LOCK_SET, proc.pid, is_set, known, his_tag)
        if vsn < 6:
            proc.send(his_locker, message)
        else:
            proc.send((GNS, his_locker.node), (GEN_CAST, message))

    async def _select_node(self, proc: Process) -> None:
        state = self.state
        state.hims = [h for h in state.hims if h.node not in state.known]
        if not state.hims:
            return
        him = random.choice(state.hims)
        lock_id = locker_lock_id(proc.pid, him.locker)
        if not await self._lock_nodes_safely(proc, lock_id, [him.node]):
            return
        known = [self.server.me, him.node, *state.known]
        self._send_lock_set(proc, True, him.locker, him.vsn, him.his_tag)
        await self._lock_is_set(proc, him, known, lock_id)

    async def _lock_is_set(self, proc: Process, him: _Him, known: list[Atom], lock_id: Any) -> None:
        node, my_tag = him.node, him.my_tag

        def answer(m: Any) -> bool:
            if type(m) is not tuple or not m:
                return False
            if m[0] == LOCK_SET and len(m) in (4, 5) and type(m[1]) is Pid:
                return m[1].node == node
            return m[0] == CANCEL and len(m) == 4 and m[1] == node and m[2] == my_tag

        while True:
            msg = await proc.receive(answer)
            if msg[0] == CANCEL:
                _call(msg[3])
                await self._delete_global_lock(proc, lock_id, known)
                self._remove_node(node, my_tag)
                return
            if len(msg) == 5 and msg[4] != my_tag:
                continue
            if msg[2] is not True:
                await self._delete_global_lock(proc, lock_id, known)
                return
            self.server.proc.mailbox.put((GEN_CAST, (LOCK_IS_SET, node, my_tag, lock_id)))
            await self._wait_cancel_lock(proc, node, lock_id, my_tag, known)
            self.state.just_synced = True
            if him in self.state.hims:
                self.state.hims.remove(him)
            return

    async def _wait_cancel_lock(
        self, proc: Process, node: Atom, lock_id: Any, my_tag: int, known: list[Atom]
    ) -> None:
        msg = await proc.receive(
            lambda m: (
                type(m) is tuple
                and len(m) == 4
                and m[0] == CANCEL
                and m[1] == node
                and m[2] == my_tag
            )
        )
        _call(msg[3])
        await self._delete_global_lock(proc, lock_id, known)

    async def _delete_global_lock(self, proc: Process, lock_id: Any, nodes: list[Atom]) -> None:
        await self.server.delete_global_lock(proc, lock_id, nodes)

    async def _lock_nodes_safely(self, proc: Process, lock_id: Any, extra: list[Atom]) -> bool:
        server = self.server
        first = [n for n in [self.boss] if n != NONODE]
        if not ([server.me] == first or server.locks.can_set(lock_id)):
            return False
        if not await server.set_lock_on_nodes(proc, lock_id, first):
            return False
        await self._drain_known_updates(proc)
        second = [n for n in [server.me, *extra] if n not in first and n != NONODE]
        if not await server.set_lock_on_nodes(proc, lock_id, second):
            await server.del_lock(proc, lock_id, first)
            return False
        rest = [n for n in self.state.known if n not in first]
        if not await server.set_lock_on_nodes(proc, lock_id, rest):
            await server.del_lock(proc, lock_id, first + second)
            return False
        return True



def _call(fun: Callable[[], None] | None) -> None:
    if fun is not None:
        fun()
