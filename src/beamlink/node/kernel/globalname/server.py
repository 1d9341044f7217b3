"""``global_name_server``: the sync sessions of global.erl on a beamlink node.

Erlang nodes start a sync session with every new visible node and ``global:sync()`` waits until
each connected node has finished one. `GlobalServer` speaks that protocol (``global.erl``,
protocol version 8, the same in OTP 25 and 27) so a Python node takes part like a BEAM node does.
See docs/global.md for the protocol walk-through.

Theory of operation (the names are those of global.erl, so the two can be read side by side):

- `GlobalServer` holds the state of ``global_name_server``: the name and lock tables
  (`tables.py`), ``known`` (nodes whose names we share, with their protocol version),
  ``pending`` (sessions under way), ``synced``, and one ``_Session`` per node under sync
  (global.erl keeps those in the process dictionary: sync tags, ``wait_lock``, ``save_ops``,
  ``pre_connect``, ``lock_id``). Its process handles gen_server calls, casts and plain messages
  one at a time, each handler synchronous, so no state is shared across an ``await``.
- The locker (`locker.py`) locks both partitions for each pending session and tells the server
  (``lock_is_set``).
- A resolver process per session resolves name clashes when the peer's names arrive
  (``exchange``, see `resolve.py`) and hands the operations back (``exchange_ops``).
- Everything that arrives from the network is checked by shape; a malformed message is logged
  and dropped, never fatal to the server.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from beamlink.etf import Atom, Pid, Reference
from beamlink.node.atoms import DOWN_TAG, GEN_CALL, GEN_CAST, KILL, OK, YES
from beamlink.node.genserver import gen_reply, parse_call, parse_cast
from beamlink.node.kernel.globalname.locker import Locker
from beamlink.node.kernel.globalname.resolve import exchange_names
from beamlink.node.kernel.globalname.tables import LockTable, NameTable
from beamlink.node.kernel.globalname.vocabulary import (
    ADD_TO_KNOWN,
    ASYNC_DEL_LOCK,
    ASYNC_DEL_NAME,
    CANCEL,
    CANCEL_CONNECT,
    DEL_LOCK,
    DELETE,
    DISCONNECTED,
    EXCHANGE,
    EXCHANGE_OPS,
    EXTRA_NODEDOWN,
    GET_KNOWN,
    GET_NAMES_EXT,
    GET_PROTOCOL_VERSION,
    GET_SYNCED,
    GLOBAL,
    GNS,
    HIS_THE_LOCKER,
    IN_SYNC,
    INIT_CONNECT,
    INIT_CONNECT_ACK,
    INSERT,
    LOCK,
    LOCK_IS_SET,
    LOCK_SET,
    LOCKER,
    LOST_CONNECTION,
    LOST_CONNECTION_MEMORY,
    LOST_CONNECTION_MIN_VSN,
    NEW_NODES,
    NO_LONGER_A_PID,
    NODEDOWN,
    NODEUP,
    PROTOCOL_VSN,
    REGISTER,
    REGISTER_EXT,
    REMOVE_CONNECTION,
    REMOVE_FROM_KNOWN,
    RESOLVE,
    RESOLVED,
    SET_LOCK,
    SYNC,
    UNREGISTER,
    UNUSED,
    VSN,
    WHEREIS,
    is_atom,
    key,
    node_list,
    random_sleep_seconds,
)
from beamlink.node.kernel.host import ServiceHost
from beamlink.node.monitors import NodeEvent
from beamlink.node.runtime import Process

log = logging.getLogger("beamlink.node.global")

_NOREPLY: Final = object()


@dataclass
class _SavedResolved:
    """A ``resolved`` from the peer that came before our own resolver finished."""

    his_known: list[Any]
    names_ext: list[Any]
    his_resolved: list[Any]


@dataclass
class _Session:
    """Per-node sync state (global.erl's process dictionary entries for that node)."""

    my_tag: int | None = None
    his_tag: Any = None
    prot_vsn: int | None = None
    wait_lock: Any = None
    save_ops: list[Any] | _SavedResolved | None = None
    pre_connect: tuple[int, Any, Any] | None = None
    lock_id: Any = None


@dataclass
class _Syncer:
    """One ``global:sync()`` waiting for ``nodes`` to be synced or gone."""

    nodes: set[Atom]
    done: Callable[[], None]



class GlobalServer:
    """``global_name_server`` of one node, with its locker and resolvers.

    Created by `GlobalService` and started with `install` once the node has its name and
    creation.
    ``prevent_overlapping_partitions`` mirrors the kernel parameter of the same name (default
    true since OTP 25): when a connection is lost, the other known nodes are told, and nodes that
    would form overlapping partitions are disconnected.
    """

    def __init__(self, *, prevent_overlapping_partitions: bool = True) -> None:
        self._host: ServiceHost | None = None
        self.prevent_overlapping_partitions = prevent_overlapping_partitions
        self.known: dict[Atom, int] = {}
        self.pending: dict[Atom, int] = {}
        self.removing: set[Atom] = set()
        self.synced: list[Atom] = []
        self.resolvers: dict[Atom, tuple[int, Process]] = {}
        self.sessions: dict[Atom, _Session] = {}
        self.names = NameTable()
        self.locks = LockTable()
        self.syncers: list[_Syncer] = []
        self.lost_connections: dict[tuple[Atom, Atom], tuple[int, int, float]] = {}
        self._tags = itertools.count(1)
        self._op_ids = itertools.count(1)
        self._xcreation = secrets.randbits(59)
        self._proc: Process | None = None
        self._locker: Locker | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._casts = self._cast_table()
        self._infos = self._info_table()

    # ------------------------------------------------------------------ start-up

    def install(self, host: ServiceHost) -> None:
        """Start ``global_name_server`` and the locker on ``host``; follow its nodeup/nodedown."""
        self._host = host
        self._proc = host.spawn(self._serve, name=str(GNS))
        self._locker = Locker(self)
        self._locker.proc = host.spawn(self._locker.run)
        self._unsubscribe = host.monitor_nodes(self._on_node_event)

    def stop(self) -> None:
        """Stop following nodeup/nodedown (the node ends the processes)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    @property
    def node(self) -> ServiceHost:
        """The node this server runs on."""
        assert self._host is not None, "GlobalServer.install() has not run"
        return self._host

    @property
    def proc(self) -> Process:
        """The ``global_name_server`` process."""
        assert self._proc is not None, "GlobalServer.install() has not run"
        return self._proc

    @property
    def locker(self) -> Process:
        """The locker process (its pid is the ``HisTheLocker`` peers see)."""
        assert self._locker is not None and self._locker.proc is not None
        return self._locker.proc

    @property
    def me(self) -> Atom:
        return self.node.name

    def _on_node_event(self, event: NodeEvent) -> None:
        if self._proc is None or not self._proc.is_alive:
            return
        if event.hidden or self.node.hidden:
            return  # hidden connections never sync (global only sees visible nodes)
        tag = NODEUP if event.kind == "nodeup" else NODEDOWN
        self._proc.mailbox.put((tag, event.node, {}))

    # ------------------------------------------------------------------ public registry API

    def where(self, name: Any) -> Pid | None:
        """``global:whereis_name/1``: the pid registered as ``name``, or None."""
        entry = self.names.get(name)
        if entry is None:
            return None
        if entry.pid.node == self.me and self.node.process(entry.pid) is None:
            return None
        return entry.pid

    def registered_names(self) -> list[Any]:
        """``global:registered_names/0``."""
        return [entry.name for entry in self.names.entries.values()]

    async def sync(self, nodes: Iterable[str] | None = None) -> None:
        """``global:sync()``: return once this node has synced with every connected visible node
        (or with ``nodes``), or they went down."""
        wanted = self.node.nodes() if nodes is None else [Atom(str(n)) for n in nodes]
        waiting = {n for n in wanted if n != self.me and n not in self.synced}
        if not waiting:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def finish() -> None:
            if not done.done():
                done.set_result(None)

        syncer = _Syncer(waiting, finish)
        self.syncers.append(syncer)
        try:
            await done
        finally:
            if syncer in self.syncers:
                self.syncers.remove(syncer)

    # ------------------------------------------------------------------ lock requests
    # (made by the locker and by the registrar)

    async def set_lock_on_nodes(self, proc: Process, lock_id: Any, nodes: list[Atom]) -> bool:
        """global:set_lock_on_nodes/2: one attempt on every node; undone where it worked if any
        node said no (nodes that are down count as yes, as in global.erl)."""
        if not nodes:
            return True
        if len(nodes) > 1 and self.me in nodes and not self.locks.can_set(lock_id):
            return False
        replies = await self.multi_call(proc, nodes, (SET_LOCK, lock_id))
        if all(reply is True for _, reply in replies):
            return True
        if len(replies) > 1:
            granted = [n for n, reply in replies if reply is True]
            await self.multi_call(proc, granted, (DEL_LOCK, lock_id))
        return False

    async def del_lock(self, proc: Process, lock_id: Any, nodes: list[Atom]) -> None:
        await self.multi_call(proc, nodes, (DEL_LOCK, lock_id))

    async def delete_global_lock(self, proc: Process, lock_id: Any, nodes: list[Atom]) -> None:
        """Release ``lock_id`` on ``nodes``, the boss last."""
        boss = max(nodes)
        await self.del_lock(proc, lock_id, [n for n in nodes if n != boss])
        await self.del_lock(proc, lock_id, [boss])

    async def multi_call(
        self, proc: Process, nodes: Iterable[Atom], request: tuple[Any, ...]
    ) -> list[tuple[Atom, Any]]:
        """``gen_server:multi_call(Nodes, global_name_server, Request)`` made by ``proc``.

        The call to this node is handled directly (with ``proc`` as the caller); remote ones
        are gen_calls with a monitor. Returns ``(node, reply)`` for the nodes that answered.
        """
        replies: list[tuple[Atom, Any]] = []
        waiting: dict[Reference, Atom] = {}
        for target in nodes:
            if target == self.me:
                replies.append((target, self._call(request, proc.pid, None)))
                continue
            ref = proc.monitor((GNS, target))
            proc.send((GNS, target), (GEN_CALL, (proc.pid, ref), request))
            waiting[ref] = target

        def answer(msg: Any) -> bool:
            return type(msg) is tuple and (
                (len(msg) == 2 and type(msg[0]) is Reference and msg[0] in waiting)
                or (len(msg) == 5 and msg[0] == DOWN_TAG and msg[1] in waiting)
            )

        while waiting:
            msg = await proc.receive(answer)
            if len(msg) == 2:
                replies.append((waiting.pop(msg[0]), msg[1]))
                proc.demonitor(msg[0], flush=True)
            else:
                waiting.pop(msg[1])
        return replies

    # ------------------------------------------------------------------ the server process

    async def _serve(self, proc: Process) -> None:
        while True:
            msg = await proc.receive()
            try:
                self._handle(msg)
            except (TypeError, ValueError, AttributeError, IndexError, KeyError) as exc:
                log.warning("global_name_server dropped malformed message %r: %s", msg, exc)

    def _handle(self, msg: Any) -> None:
        call = parse_call(msg)
        if call is not None:
            from_, request = call
            reply = self._call(request, from_[0], from_)
            if reply is not _NOREPLY:
                gen_reply(self.node, self.proc.pid, from_, reply)
            return
        is_cast, payload = parse_cast(msg)
        if is_cast:
            self._dispatch(self._casts, payload, "cast")
        else:
            self._dispatch(self._infos, msg, "message")

    def _dispatch(
        self, table: dict[tuple[Atom, int], Callable[..., None]], msg: Any, what: str
    ) -> None:
        handler = None
        if type(msg) is tuple and msg and is_atom(msg[0]):
            handler = table.get((msg[0], len(msg)))
        if handler is None:
            log.warning("global_name_server got an unexpected %s: %r", what, msg)
        else:
            handler(*msg[1:])

    def _call(self, request: Any, caller: Pid, from_: Any) -> Any:
        """handle_call: the reply, or _NOREPLY (answered later, or never for unknown calls)."""
        tag = request[0] if type(request) is tuple and request else request
        if tag == REGISTER and len(request) == 4:
            _, name, pid, method = request
            self._ins_name(name, pid, method, caller, [])
            return YES
        if tag == UNREGISTER and len(request) == 2:
            self._delete_global_name(request[1])
            return OK
        if tag == REGISTER_EXT and len(request) == 5:
            _, name, pid, method, reg_node = request
            self._ins_name_ext(name, pid, method, reg_node, caller, [])
            return YES
        if tag == SET_LOCK and len(request) == 2:
            return self._handle_set_lock(request[1], caller)
        if tag == DEL_LOCK and len(request) == 2:
            self._demonitor(self.locks.release(request[1], caller))
            return True
        if tag == GET_KNOWN:
            return self._known_list(PROTOCOL_VSN)
        if tag == GET_SYNCED:
            return list(self.synced)
        if tag == GET_PROTOCOL_VERSION:
            return PROTOCOL_VSN
        if tag == GET_NAMES_EXT:
            return self.names.ext_list()
        if tag == SYNC and len(request) == 2 and from_ is not None:
            self._start_sync(request[1], from_)
            return _NOREPLY
        log.warning("global_name_server got an unexpected call: %r", request)
        return _NOREPLY

    def _start_sync(self, nodes: Any, from_: Any) -> None:
        waiting = {n for n in nodes if is_atom(n) and n != self.me and n not in self.synced}
        if not waiting:
            gen_reply(self.node, self.proc.pid, from_, OK)
            return
        syncer = _Syncer(waiting, lambda: None)

        def reply() -> None:
            self.syncers.remove(syncer)
            gen_reply(self.node, self.proc.pid, from_, OK)

        syncer.done = reply
        self.syncers.append(syncer)

    def _notify_syncers(self, node: Atom) -> None:
        for syncer in list(self.syncers):
            syncer.nodes.discard(node)
            if not syncer.nodes:
                syncer.done()

    def _cast_table(self) -> dict[tuple[Atom, int], Callable[..., None]]:
        return {
            (INIT_CONNECT, 4): self._on_init_connect,
            (LOCK_IS_SET, 4): self._on_lock_is_set,
            (EXCHANGE, 5): self._on_exchange,
            (EXCHANGE_OPS, 5): self._on_exchange_ops,
            (RESOLVED, 7): self._on_resolved,
            (NEW_NODES, 6): self._on_new_nodes,
            (IN_SYNC, 3): self._on_in_sync,
            (ASYNC_DEL_NAME, 3): _ignore,
            (ASYNC_DEL_LOCK, 3): _ignore,
            (LOCK_SET, 5): self._on_lock_set,
            (LOCK_SET, 4): self._on_lock_set_old,
        }

    def _info_table(self) -> dict[tuple[Atom, int], Callable[..., None]]:
        return {
            (NODEUP, 3): self._on_nodeup,
            (NODEDOWN, 3): self._on_nodedown,
            (EXTRA_NODEDOWN, 2): self._on_extra_nodedown,
            (WHEREIS, 3): self._on_whereis,
            (LOST_CONNECTION, 5): self._on_lost_connection,
            (REMOVE_CONNECTION, 2): self._on_remove_connection,
            (CANCEL_CONNECT, 3): self._on_cancel_connect,
            (INIT_CONNECT_ACK, 4): self._on_init_connect_ack,
            (DOWN_TAG, 5): self._on_down,
        }

    # ------------------------------------------------------------------ sessions

    def _session(self, node: Atom) -> _Session:
        session = self.sessions.get(node)
        if session is None:
            session = self.sessions[node] = _Session()
        return session

    def _my_tag(self, node: Atom) -> int | None:
        session = self.sessions.get(node)
        return None if session is None else session.my_tag

    def _reset_node_state(self, node: Atom) -> None:
        self.sessions.pop(node, None)

    def _on_nodeup(self, node: Atom, _info: Any) -> None:
        if node != self.me:
            self._handle_nodeup(node)

    def _handle_nodeup(self, node: Atom) -> None:
        if node in self.known or node in self.resolvers:
            return
        session = self._session(node)
        if session.pre_connect is not None:
            vsn, init_msg, his_tag = session.pre_connect
            session.pre_connect = None
            self.proc.mailbox.put((GEN_CAST, (INIT_CONNECT, (vsn, his_tag), node, init_msg)))
        my_tag = next(self._tags)
        session.my_tag = my_tag
        known_map = dict(self.known)
        init = (LOCKER, NO_LONGER_A_PID, known_map, self.locker.pid)
        self.node.send(
            (GNS, node), (GEN_CAST, (INIT_CONNECT, (PROTOCOL_VSN, my_tag), self.me, init))
        )
        resolver = self.node.spawn(self._resolver, node, my_tag)
        self.resolvers[node] = (my_tag, resolver)

    def _on_init_connect(self, vsn: Any, node: Atom, init_msg: Any) -> None:
        if not is_atom(node):
            raise TypeError(f"init_connect from {node!r}")
        if type(vsn) is not tuple or len(vsn) < 2 or type(vsn[0]) is not int:
            log.info("Illegal global protocol version %r Node: %s", vsn, node)
            return
        his_vsn, his_tag = vsn[0], vsn[1]
        prot_vsn = min(his_vsn, PROTOCOL_VSN) if len(vsn) == 2 else PROTOCOL_VSN
        if node in self.pending:
            if his_vsn < PROTOCOL_VSN:
                log.error(
                    "'global' at node %s got an out of sync connection attempt from old version "
                    "%s node %s. Disconnecting from it.",
                    self.me,
                    his_vsn,
                    node,
                )
                self._disconnect(node)
                return
            self._send_cancel_connect_message(node, his_tag)
            self._restart_connect(node, self._my_tag(node))
            return
        session = self._session(node)
        session.prot_vsn = prot_vsn
        session.his_tag = his_tag
        resolver = self.resolvers.get(node)
        if resolver is None:
            session.pre_connect = (prot_vsn, init_msg, his_tag)
            return
        my_tag = resolver[0]
        his_locker = init_msg[3]
        if init_msg[0] != LOCKER or type(his_locker) is not Pid:
            raise TypeError(f"init_connect locker {init_msg!r}")
        self.locker.mailbox.put((HIS_THE_LOCKER, his_locker, (prot_vsn, []), his_tag, my_tag))
        if his_vsn >= PROTOCOL_VSN:
            self._volatile_send(node, (INIT_CONNECT_ACK, self.me, his_tag, my_tag))
        self.pending[node] = his_vsn

    def _on_init_connect_ack(self, node: Atom, his_my_tag: Any, his_his_tag: Any) -> None:
        session = self.sessions.get(node)
        my_tag = None if session is None else session.my_tag
        his_tag = None if session is None else session.his_tag
        if my_tag == his_my_tag and his_tag == his_his_tag:
            return
        self._send_cancel_connect_message(node, his_his_tag)
        self._restart_connect(node, my_tag)

    def _on_cancel_connect(self, node: Atom, my_tag: Any) -> None:
        if my_tag is None or self._my_tag(node) != my_tag:
            return
        self._cancel_locker(node, my_tag)
        self._reset_node_state(node)
        self.pending.pop(node, None)
        self._restart_connect(node, my_tag)

    def _restart_connect(self, node: Atom, my_tag: int | None) -> None:
        self._cancel_locker(node, my_tag)
        self._reset_node_state(node)
        self.pending.pop(node, None)
        self._delete_node_resources(node)
        if type(my_tag) is int:
            self._handle_nodeup(node)

    def _on_lock_is_set(self, node: Atom, my_tag: int, lock_id: Any) -> None:
        if self._my_tag(node) != my_tag:
            self._cancel_locker(node, my_tag)
            return
        session = self._session(node)
        self.node.send(
            (GNS, node), (GEN_CAST, (EXCHANGE, self.me, self.names.triples(), [], session.his_tag))
        )
        session.lock_id = lock_id
        waiting = session.wait_lock
        session.wait_lock = LOCK_IS_SET
        if type(waiting) is tuple:
            self._exchange(node, waiting[1])

    def _on_exchange(self, node: Atom, name_list: Any, _ext: Any, my_tag: Any) -> None:
        if self._my_tag(node) == my_tag:
            self._exchange(node, name_list)
        else:
            self._cancel_locker(node, my_tag)

    def _exchange(self, node: Atom, name_list: Any) -> None:
        session = self._session(node)
        waiting, session.wait_lock = session.wait_lock, None
        if waiting == LOCK_IS_SET:
            resolver = self.resolvers.get(node)
            if resolver is not None:
                resolver[1].mailbox.put((RESOLVE, name_list, node))
        else:
            session.wait_lock = (EXCHANGE, name_list)

    def _on_exchange_ops(
        self, node: Atom, my_tag: int, ops: list[Any], resolved: list[Any]
    ) -> None:
        if self._my_tag(node) != my_tag:
            self._cancel_locker(node, my_tag)
            return
        session = self._session(node)
        known = self._known_list(self._node_vsn(node))
        message = (
            RESOLVED,
            self.me,
            resolved,
            known,
            UNUSED,
            self.names.ext_list(),
            session.his_tag,
        )
        self.node.send((GNS, node), (GEN_CAST, message))
        saved = session.save_ops
        session.save_ops = ops
        if isinstance(saved, _SavedResolved):
            self._resolved(node, saved.his_resolved, saved.his_known, saved.names_ext)

    def _on_resolved(
        self,
        node: Atom,
        his_resolved: Any,
        his_known: Any,
        _unused: Any,
        names_ext: Any,
        my_tag: Any,
    ) -> None:
        if self._my_tag(node) != my_tag:
            self._cancel_locker(node, my_tag)
            return
        session = self._session(node)
        if isinstance(session.save_ops, list):
            self._resolved(node, his_resolved, his_known, names_ext)
        else:
            session.save_ops = _SavedResolved(list(his_known), list(names_ext), list(his_resolved))

    def _resolved(self, node: Atom, his_resolved: Any, his_known: Any, names_ext: Any) -> None:
        session = self._session(node)
        saved = session.save_ops if isinstance(session.save_ops, list) else []
        session.save_ops = None
        ops = [*saved, *his_resolved]
        known_before = dict(self.known)
        new_nodes = self._make_node_vsn_list([node, *his_known])
        his_known_nodes = node_list(his_known)
        self._sync_others(his_known_nodes)
        extra_info = [(VSN, session.prot_vsn), (LOCK, session.lock_id)]
        self._do_ops(ops, self.me, names_ext, extra_info)
        self._notify_syncers(node)
        for other in his_known_nodes:
            self._cancel_resolved_locker(other, functools.partial(self._cancel_locker, other))
        new_nodes_msg = (GEN_CAST, (NEW_NODES, self.me, ops, names_ext, new_nodes, extra_info))
        old_msg = (
            GEN_CAST,
            (NEW_NODES, self.me, ops, names_ext, node_list(new_nodes), extra_info),
        )

        def send_new_nodes() -> None:
            for known_node, vsn in known_before.items():
                self.node.send((GNS, known_node), new_nodes_msg if vsn >= 7 else old_msg)

        self._cancel_resolved_locker(
            node, lambda tag: self._cancel_locker(node, tag, send_new_nodes)
        )
        added = self._add_to_known(new_nodes)
        self.locker.mailbox.put((ADD_TO_KNOWN, added))
        if node not in self.synced:
            self.synced.insert(0, node)

    def _cancel_resolved_locker(self, node: Atom, cancel: Callable[[int | None], None]) -> None:
        tag = self._my_tag(node)
        self.pending.pop(node, None)
        cancel(tag)
        self._reset_node_state(node)

    def _on_new_nodes(
        self, node: Atom, ops: Any, names_ext: Any, nodes: Any, extra_info: Any
    ) -> None:
        added = self._add_to_known(nodes)
        self._sync_others(added)
        self._do_ops(ops, node, names_ext, extra_info)
        self.locker.mailbox.put((ADD_TO_KNOWN, added))

    def _on_in_sync(self, node: Atom, _is_known: Any) -> None:
        self._notify_syncers(node)
        if node not in self.synced:
            self.synced.insert(0, node)
        self.pending.pop(node, None)
        self._cancel_locker(node, self._my_tag(node))
        self._reset_node_state(node)

    def _on_lock_set(self, pid: Pid, is_set: Any, his_known: Any, my_tag: Any) -> None:
        if self._my_tag(pid.node) == my_tag:
            self.locker.mailbox.put((LOCK_SET, pid, is_set, his_known, my_tag))

    def _on_lock_set_old(self, pid: Pid, is_set: Any, his_known: Any) -> None:
        self.locker.mailbox.put((LOCK_SET, pid, is_set, his_known))

    def _cancel_locker(
        self, node: Atom, tag: Any, run_on_locker: Callable[[], None] | None = None
    ) -> None:
        self.locker.mailbox.put((CANCEL, node, tag, run_on_locker))
        session = self.sessions.get(node)
        his_vsn = self.pending.get(node)
        if (
            session is not None
            and his_vsn is not None
            and his_vsn >= PROTOCOL_VSN
            and session.my_tag == tag
        ):
            self._send_cancel_connect_message(node, session.his_tag)
        resolver = self.resolvers.get(node)
        if resolver is not None and resolver[0] == tag:
            self.node.exit_signal(None, resolver[1].pid, KILL)
            del self.resolvers[node]

    def _send_cancel_connect_message(self, node: Atom, his_tag: Any) -> None:
        self._volatile_send(node, (CANCEL_CONNECT, self.me, his_tag))

    def _volatile_send(self, node: Atom, msg: Any) -> None:
        """``erlang:send({global_name_server, Node}, Msg, [noconnect])``."""
        if node in self.node.nodes(hidden=True):
            self.node.send((GNS, node), msg)

    def _disconnect(self, node: Atom) -> None:
        task = asyncio.get_running_loop().create_task(self.node.disconnect(node))
        task.add_done_callback(log_task_error)

    # ------------------------------------------------------------------ resolver

    async def _resolver(self, proc: Process, node: Atom, tag: int) -> None:
        while True:
            msg = await proc.receive()
            if type(msg) is tuple and len(msg) == 3 and msg[0] == RESOLVE and msg[2] == node:
                break
        ops, resolved = await exchange_names(self.node, self.names, msg[1], node)
        self.proc.mailbox.put((GEN_CAST, (EXCHANGE_OPS, node, tag, ops, resolved)))

    # ------------------------------------------------------------------ names

    def _ins_name(self, name: Any, pid: Pid, method: Any, from_: Pid | Atom, extra: Any) -> None:
        if type(pid) is not Pid:
            raise TypeError(f"global name {name!r} for a non-pid {pid!r}")
        self._delete_global_name(name)
        self.names.insert(name, pid, method, self.proc.monitor(pid))
        if not self.locks.still_set(from_, extra):
            self._delete_global_name(name)

    def _ins_name_ext(
        self, name: Any, pid: Pid, method: Any, reg_node: Any, from_: Pid | Atom, extra: Any
    ) -> None:
        self._delete_global_name(name)
        self.names.insert_ext(name, pid, reg_node)
        self._ins_name(name, pid, method, from_, extra)

    def _delete_global_name(self, name: Any) -> None:
        entry = self.names.delete(name)
        if entry is not None:
            self.proc.demonitor(entry.ref, flush=True)

    def _do_ops(self, ops: Any, conn_node: Atom, names_ext: Any, extra_info: Any) -> None:
        inserts = [op[1] for op in ops if op[0] == INSERT]
        ext = {(key(n), p): reg_node for n, p, reg_node in names_ext}
        for name, pid, method in inserts:
            reg_node = ext.get((key(name), pid))
            if reg_node is None:
                self._ins_name(name, pid, method, conn_node, extra_info)
            else:
                self._ins_name_ext(name, pid, method, reg_node, conn_node, extra_info)
        for op in ops:
            if op[0] == DELETE:
                self._delete_global_name(op[1])

    # ------------------------------------------------------------------ locks

    def _demonitor(self, refs: Iterable[Reference]) -> None:
        for ref in refs:
            self.proc.demonitor(ref, flush=True)

    def _handle_set_lock(self, lock_id: Any, pid: Pid) -> bool:
        if not self.locks.can_set(lock_id):
            return False
        if not self.locks.holds(lock_id, pid):
            self.locks.add(lock_id, pid, self.proc.monitor(pid))
        return True

    def _on_down(self, ref: Any, _process: Any, _pid: Any, _reason: Any) -> None:
        self._demonitor(self.locks.holder_down(ref))
        entry = self.names.name_monitored_by(ref)
        if entry is not None:
            self._delete_global_name(entry.name)

    def _delete_node_resources(self, node: Atom) -> None:
        """Names and locks held by processes of ``node`` go (as OTP 27 does on a restart)."""
        for entry in self.names.on_node(node):
            self._delete_global_name(entry.name)
        self._demonitor(self.locks.node_down(node))

    # ------------------------------------------------------------------ known nodes

    def _node_vsn(self, node: Atom) -> int:
        if node == self.me:
            return PROTOCOL_VSN
        return self.known.get(node, self.pending.get(node, 0))

    def _known_list(self, vsn: int) -> list[Any]:
        if vsn < 7:
            return list(self.known)
        return list(self.known.items())

    def _make_node_vsn_list(self, entries: Iterable[Any]) -> list[tuple[Atom, int]]:
        result = []
        for entry in entries:
            if is_atom(entry):
                result.append((entry, self._node_vsn(entry)))
            elif entry[1] == 0:
                result.append((entry[0], self._node_vsn(entry[0])))
            else:
                result.append((entry[0], entry[1]))
        return result

    def _add_to_known(self, entries: Iterable[Any]) -> list[Atom]:
        added: list[Atom] = []
        for entry in entries:
            node, vsn = (entry, 0) if is_atom(entry) else (entry[0], entry[1])
            if node == self.me or not is_atom(node):
                continue
            if node not in self.known:
                added.append(node)
                self.known[node] = vsn
            elif self.known[node] < 0:
                self.known[node] = vsn
        return added

    def _sync_others(self, nodes: Iterable[Atom]) -> None:
        for node in nodes:
            self.node.spawn(self._sync_other, node)

    async def _sync_other(self, _proc: Process, node: Atom) -> None:
        if await self.node.connect(node):
            self.node.send((GNS, node), (GEN_CAST, (IN_SYNC, self.me, True)))
        else:
            log.warning("'global' at %s failed to connect to %s", self.me, node)
            self.proc.mailbox.put((EXTRA_NODEDOWN, node))

    # ------------------------------------------------------------------ lost nodes

    def _on_nodedown(self, node: Atom, _info: Any) -> None:
        self._notify_syncers(node)
        self._handle_nodedown(node, DISCONNECTED)

    def _on_extra_nodedown(self, node: Atom) -> None:
        self._notify_syncers(node)
        self._handle_nodedown(node, DISCONNECTED)

    def _handle_nodedown(self, node: Atom, what: Atom) -> None:
        self._cancel_locker(node, self._my_tag(node))
        self.locker.mailbox.put((REMOVE_FROM_KNOWN, node))
        self._reset_node_state(node)
        if what == REMOVE_CONNECTION:
            self.removing.add(node)
        elif node in self.removing:
            self.removing.discard(node)
        else:
            self._inform_connection_loss(node)
        self.pending.pop(node, None)
        self.known.pop(node, None)
        if node in self.synced:
            self.synced.remove(node)

    def _inform_connection_loss(self, node: Atom) -> None:
        if not self.prevent_overlapping_partitions:
            return
        msg = (
            LOST_CONNECTION,
            self.me,
            self._xcreation + self.node.creation,
            next(self._op_ids),
            node,
        )
        self._multicast(msg, node)

    def _multicast(self, msg: Any, ignore: Atom) -> None:
        targets = {**self.known, **self.pending}
        for node, vsn in targets.items():
            if node != ignore and vsn >= LOST_CONNECTION_MIN_VSN:
                self._volatile_send(node, msg)

    def _potentially_known(self, node: Atom) -> bool:
        return node in self.known or node in self.pending

    def _on_lost_connection(self, node_a: Atom, xcreation: Any, op_id: Any, node_b: Atom) -> None:
        if not self.prevent_overlapping_partitions:
            return
        now = time.monotonic()
        key = (node_a, node_b)
        seen = self.lost_connections.get(key)
        if seen is not None and seen[2] > now and seen[0] == xcreation and op_id <= seen[1]:
            return
        self._multicast((LOST_CONNECTION, node_a, xcreation, op_id, node_b), node_a)
        self.lost_connections = {k: v for k, v in self.lost_connections.items() if v[2] > now}
        self.lost_connections[key] = (xcreation, op_id, now + LOST_CONNECTION_MEMORY)
        remove = node_a if node_b == self.me else node_b
        if not self._potentially_known(remove):
            return
        if self._node_vsn(remove) < LOST_CONNECTION_MIN_VSN:
            self._disconnect(remove)
            what = "disconnected old"
        else:
            self._volatile_send(remove, (REMOVE_CONNECTION, self.me))
            what = "requested disconnect from"
        log.warning(
            "'global' at node %s %s node %s in order to prevent overlapping partitions",
            self.me,
            what,
            remove,
        )
        self._handle_nodedown(remove, REMOVE_CONNECTION)

    def _on_remove_connection(self, node: Atom) -> None:
        if not self._potentially_known(node):
            return
        self._disconnect(node)
        self._handle_nodedown(node, REMOVE_CONNECTION)
        log.warning(
            "'global' at node %s disconnected node %s in order to prevent overlapping partitions",
            self.me,
            node,
        )

    def _on_whereis(self, name: Any, from_: Any) -> None:
        if GLOBAL in self.locks:

            async def again() -> None:
                await asyncio.sleep(random_sleep_seconds(5))
                if self.proc.is_alive:
                    self.proc.mailbox.put((WHEREIS, name, from_))

            task = asyncio.get_running_loop().create_task(again())
            task.add_done_callback(log_task_error)
        else:
            gen_reply(self.node, self.proc.pid, from_, self.where(name))


def _ignore(*_args: Any) -> None:
    return None


def log_task_error(task: asyncio.Task[Any]) -> None:
    """Done-callback of global's background tasks: a failure is logged, never lost."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("global background task failed: %s", task.exception())
