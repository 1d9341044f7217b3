"""Erlang's ``global`` on a beamlink node: the ``global_name_server`` every visible node runs.

Erlang nodes start a sync session with every new visible node and ``global:sync()`` waits until
each connected node has finished one. This module speaks that protocol (``global.erl``, protocol
version 8, the same in OTP 25 and 27) so a Python node takes part like a BEAM node does, and
gives Python the global name registry (``register_name``, ``whereis_name``, ...). See
docs/global.md for the protocol walk-through and what is supported.

Theory of operation (the names are those of global.erl, so the two can be read side by side):

- ``GlobalServer`` holds the state of ``global_name_server``: the name table, the lock table,
  ``known`` (nodes whose names we share, with their protocol version), ``pending`` (sessions
  under way), ``synced``, and one ``_Session`` per node under sync (global.erl keeps those in
  the process dictionary: sync tags, ``wait_lock``, ``save_ops``, ``pre_connect``, ``lock_id``).
  Its process handles gen_server calls, casts and plain messages one at a time, each handler
  synchronous, so no state is shared across an ``await``.
- ``_Locker`` is "the locker": a second process that, for each pending session, sets the lock
  ``{global, [LockerA, LockerB]}`` on both partitions (boss first) and tells the server
  (``lock_is_set``); it holds the lock until the server cancels it at the end of the session.
- A resolver process per session resolves name clashes when the peer's names arrive
  (``exchange``) and hands the operations back (``exchange_ops``).
- The registrar serialises this node's own ``register_name``/``unregister_name``: it takes the
  ``{global, Registrar}`` lock on every known node, then multi-calls the change to all of them.
- Everything that arrives from the network is checked by shape; a malformed message is logged
  and dropped, never fatal to the server.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from beamlink.etf import Atom, Export, Fun, Pid, Reference, decode, encode, freeze
from beamlink.node.errors import ReceiveTimeout, UnknownName
from beamlink.node.genserver import GEN_CALL, GEN_CAST, parse_call, parse_cast
from beamlink.node.netkernel import NodeEvent, gen_reply
from beamlink.node.rpc import RpcError
from beamlink.node.runtime import DOWN_TAG, KILL

if TYPE_CHECKING:
    from beamlink.node.node import Node
    from beamlink.node.process import Process

log = logging.getLogger("beamlink.node.global")

# The protocol version global.erl announces in init_connect and answers to get_protocol_version
# (OTP 25 and 27 both use 8; 7 added lost_connection, 8 init_connect_ack and cancel_connect).
PROTOCOL_VSN: Final = 8
LOST_CONNECTION_MIN_VSN: Final = 7

GNS: Final = Atom("global_name_server")
GLOBAL: Final = Atom("global")
INIT_CONNECT: Final = Atom("init_connect")
INIT_CONNECT_ACK: Final = Atom("init_connect_ack")
CANCEL_CONNECT: Final = Atom("cancel_connect")
LOCKER: Final = Atom("locker")
NO_LONGER_A_PID: Final = Atom("no_longer_a_pid")
HIS_THE_LOCKER: Final = Atom("his_the_locker")
LOCK_SET: Final = Atom("lock_set")
LOCK_IS_SET: Final = Atom("lock_is_set")
EXCHANGE: Final = Atom("exchange")
EXCHANGE_OPS: Final = Atom("exchange_ops")
RESOLVE: Final = Atom("resolve")
RESOLVED: Final = Atom("resolved")
UNUSED: Final = Atom("unused")
NEW_NODES: Final = Atom("new_nodes")
IN_SYNC: Final = Atom("in_sync")
CANCEL: Final = Atom("cancel")
ADD_TO_KNOWN: Final = Atom("add_to_known")
REMOVE_FROM_KNOWN: Final = Atom("remove_from_known")
LOST_CONNECTION: Final = Atom("lost_connection")
REMOVE_CONNECTION: Final = Atom("remove_connection")
EXTRA_NODEDOWN: Final = Atom("extra_nodedown")
NODEUP: Final = Atom("nodeup")
NODEDOWN: Final = Atom("nodedown")
WHEREIS: Final = Atom("whereis")
INSERT: Final = Atom("insert")
DELETE: Final = Atom("delete")
VSN: Final = Atom("vsn")
LOCK: Final = Atom("lock")
REGISTER: Final = Atom("register")
REGISTER_EXT: Final = Atom("register_ext")
UNREGISTER: Final = Atom("unregister")
SET_LOCK: Final = Atom("set_lock")
DEL_LOCK: Final = Atom("del_lock")
GET_KNOWN: Final = Atom("get_known")
GET_SYNCED: Final = Atom("get_synced")
GET_PROTOCOL_VERSION: Final = Atom("get_protocol_version")
GET_NAMES_EXT: Final = Atom("get_names_ext")
SYNC: Final = Atom("sync")
ASYNC_DEL_NAME: Final = Atom("async_del_name")
ASYNC_DEL_LOCK: Final = Atom("async_del_lock")
YES: Final = Atom("yes")
NO: Final = Atom("no")
OK: Final = Atom("ok")
NONE: Final = Atom("none")
BADRPC: Final = Atom("badrpc")
EXIT_TAG: Final = Atom("EXIT")
GLOBAL_NAME_CONFLICT: Final = Atom("global_name_conflict")
NONODE: Final = Atom("nonode@nohost")
WAIT_LOCK_IS_SET: Final = Atom("lock_is_set")

# Conflict resolution functions of global.erl that a Python node can run itself.
RANDOM_EXIT_NAME: Final = Atom("random_exit_name")
RANDOM_NOTIFY_NAME: Final = Atom("random_notify_name")
NOTIFY_ALL_NAME: Final = Atom("notify_all_name")
METHODS: Final = (RANDOM_EXIT_NAME, RANDOM_NOTIFY_NAME, NOTIFY_ALL_NAME)
DEFAULT_METHOD: Final = Export(GLOBAL, RANDOM_EXIT_NAME, 3)

# How long a lost_connection report is remembered (global.erl: one hour).
LOST_CONNECTION_MEMORY: Final = 3600.0

_NOREPLY: Final = object()


def pid_order(pid: Pid) -> tuple[int, int, Atom, int]:
    """The key that sorts pids the way Erlang's term order does: serial, number, node, creation.

    Both lockers of a session compute ``lists:sort([LockerA, LockerB])``; the lock id must be
    the same term on both sides, so the order must be exactly BEAM's.
    """
    return (pid.serial, pid.id, pid.node, pid.creation)


def locker_lock_id(mine: Pid, his: Pid) -> tuple[Atom, list[Pid]]:
    """``{global, lists:sort([MyLocker, HisLocker])}``: the lock of one sync session."""
    return (GLOBAL, sorted([mine, his], key=pid_order))


def random_sleep_seconds(times: int) -> float:
    """global.erl's back-off between lock attempts: up to 2**times/8 s, at most 8 s."""
    tmax = 8000 if times > 5 else (1 << times) * 1000 // 8
    return random.randint(1, max(tmax, 1)) / 1000


def _is_atom(term: Any) -> bool:
    return type(term) is Atom


def _node_list(entries: Iterable[Any]) -> list[Atom]:
    """Node names of a known list whose entries are ``Node`` or ``{Node, Vsn}``."""
    return [e if _is_atom(e) else e[0] for e in entries]


@dataclass
class _NameEntry:
    name: Any
    pid: Pid
    method: Any
    ref: Reference


@dataclass
class _Lock:
    resource: Any
    requester: Any
    holders: list[tuple[Pid, Reference]]


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


class GlobalServer:
    """``global_name_server`` of one node, with its locker, resolvers and registrar.

    Created by `Node` and started with `install` once the node has its name and creation.
    ``prevent_overlapping_partitions`` mirrors the kernel parameter of the same name (default
    true since OTP 25): when a connection is lost, the other known nodes are told, and nodes that
    would form overlapping partitions are disconnected.
    """

    def __init__(self, node: Node, *, prevent_overlapping_partitions: bool = True) -> None:
        self.node = node
        self.prevent_overlapping_partitions = prevent_overlapping_partitions
        self.known: dict[Atom, int] = {}
        self.pending: dict[Atom, int] = {}
        self.removing: set[Atom] = set()
        self.synced: list[Atom] = []
        self.resolvers: dict[Atom, tuple[int, Process]] = {}
        self.sessions: dict[Atom, _Session] = {}
        self.names: dict[Any, _NameEntry] = {}
        self.names_ext: dict[Any, tuple[Any, Pid, Atom]] = {}
        self.pid_names: dict[Pid, set[Any]] = {}
        self.ref_names: dict[Reference, Any] = {}
        self.locks: dict[Any, _Lock] = {}
        self.ref_locks: dict[Reference, set[Any]] = {}
        self.global_lock_down = False
        self.syncers: list[_Syncer] = []
        self.lost_connections: dict[tuple[Atom, Atom], tuple[int, int, float]] = {}
        self._tags = itertools.count(1)
        self._op_ids = itertools.count(1)
        self._xcreation = secrets.randbits(59)
        self._proc: Process | None = None
        self._locker: _Locker | None = None
        self._registrar: Process | None = None
        self._registrar_lock = asyncio.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self._casts = self._cast_table()
        self._infos = self._info_table()

    # ------------------------------------------------------------------ start-up

    def install(self) -> None:
        """Start ``global_name_server``, the locker and the registrar; serve ``global`` RPCs."""
        self._proc = self.node.spawn(self._serve, name=str(GNS))
        self._locker = _Locker(self)
        self._locker.proc = self.node.spawn(self._locker.run)
        self._registrar = self.node.new_process()
        self.node.rpc_server.resolver.modules.setdefault(str(GLOBAL), GlobalRpc(self))
        self._unsubscribe = self.node.monitor_nodes(self._on_node_event)

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
        entry = self.names.get(_key(name))
        if entry is None:
            return None
        if entry.pid.node == self.me and self.node.process(entry.pid) is None:
            return None
        return entry.pid

    def registered_names(self) -> list[Any]:
        """``global:registered_names/0``."""
        return [entry.name for entry in self.names.values()]

    async def register_name(self, name: Any, pid: Pid, method: Any = DEFAULT_METHOD) -> bool:
        """``global:register_name/3``: True (yes) when ``name`` now names ``pid`` everywhere."""

        async def register(proc: Process, nodes: list[Atom]) -> bool:
            if self.where(name) is not None or not self._check_dupname(name, pid):
                return False
            await self._multi_call(proc, nodes, (REGISTER, name, pid, method))
            return True

        return bool(await self._trans_all_known(register))

    async def re_register_name(self, name: Any, pid: Pid, method: Any = DEFAULT_METHOD) -> None:
        """``global:re_register_name/3``: (re)point ``name`` at ``pid`` everywhere."""

        async def register(proc: Process, nodes: list[Atom]) -> None:
            await self._multi_call(proc, nodes, (REGISTER, name, pid, method))

        await self._trans_all_known(register)

    async def unregister_name(self, name: Any) -> None:
        """``global:unregister_name/1`` (nothing happens when the name is not registered)."""
        if self.where(name) is None:
            return

        async def unregister(proc: Process, nodes: list[Atom]) -> None:
            await self._multi_call(proc, nodes, (UNREGISTER, name))

        await self._trans_all_known(unregister)

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

    def _check_dupname(self, name: Any, pid: Pid) -> bool:
        others = self.pid_names.get(pid)
        if not others:
            return True
        log.error(
            "global: %s registered under several names: %r",
            pid,
            [name, *(self.names[k].name for k in others)],
        )
        return False

    # ------------------------------------------------------------------ the registrar

    async def _trans_all_known(self, fn: Callable[[Process, list[Atom]], Awaitable[Any]]) -> Any:
        assert self._registrar is not None, "GlobalServer.install() has not run"
        async with self._registrar_lock:
            proc = self._registrar
            lock_id = (GLOBAL, proc.pid)
            nodes = await self._set_lock_known(proc, lock_id)
            try:
                return await fn(proc, nodes)
            finally:
                await self._delete_global_lock(proc, lock_id, nodes)

    async def _set_lock_known(self, proc: Process, lock_id: Any) -> list[Atom]:
        times = 0
        while True:
            known = list(self.known)
            nodes = [self.me, *known]
            boss = max(nodes)
            if await self._set_lock_on_nodes(proc, lock_id, [boss]):
                if await self._set_lock_on_nodes(proc, lock_id, nodes) and not (
                    set(self.known) - set(known)
                ):
                    return nodes
                await self._del_lock(proc, lock_id, [boss])
            await asyncio.sleep(random_sleep_seconds(times))
            times += 1

    async def _set_lock_on_nodes(self, proc: Process, lock_id: Any, nodes: list[Atom]) -> bool:
        """global:set_lock_on_nodes/2: one attempt on every node; undone where it worked if any
        node said no (nodes that are down count as yes, as in global.erl)."""
        if not nodes:
            return True
        if len(nodes) > 1 and self.me in nodes and not self._can_set_lock(lock_id):
            return False
        replies = await self._multi_call(proc, nodes, (SET_LOCK, lock_id))
        if all(reply is True for _, reply in replies):
            return True
        if len(replies) > 1:
            granted = [n for n, reply in replies if reply is True]
            await self._multi_call(proc, granted, (DEL_LOCK, lock_id))
        return False

    async def _del_lock(self, proc: Process, lock_id: Any, nodes: list[Atom]) -> None:
        await self._multi_call(proc, nodes, (DEL_LOCK, lock_id))

    async def _delete_global_lock(self, proc: Process, lock_id: Any, nodes: list[Atom]) -> None:
        """Release ``lock_id`` on ``nodes``, the boss last."""
        boss = max(nodes)
        await self._del_lock(proc, lock_id, [n for n in nodes if n != boss])
        await self._del_lock(proc, lock_id, [boss])

    async def _multi_call(
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
        if type(msg) is tuple and msg and _is_atom(msg[0]):
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
            self._handle_del_lock(request[1], caller)
            return True
        if tag == GET_KNOWN:
            return self._known_list(PROTOCOL_VSN)
        if tag == GET_SYNCED:
            return list(self.synced)
        if tag == GET_PROTOCOL_VERSION:
            return PROTOCOL_VSN
        if tag == GET_NAMES_EXT:
            return list(self.names_ext.values())
        if tag == SYNC and len(request) == 2 and from_ is not None:
            self._start_sync(request[1], from_)
            return _NOREPLY
        log.warning("global_name_server got an unexpected call: %r", request)
        return _NOREPLY

    def _start_sync(self, nodes: Any, from_: Any) -> None:
        waiting = {n for n in nodes if _is_atom(n) and n != self.me and n not in self.synced}
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
        if not _is_atom(node):
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
            (GNS, node), (GEN_CAST, (EXCHANGE, self.me, self._get_names(), [], session.his_tag))
        )
        session.lock_id = lock_id
        waiting = session.wait_lock
        session.wait_lock = WAIT_LOCK_IS_SET
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
        if waiting == WAIT_LOCK_IS_SET:
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
            list(self.names_ext.values()),
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
        his_known_nodes = _node_list(his_known)
        self._sync_others(his_known_nodes)
        extra_info = [(VSN, session.prot_vsn), (LOCK, session.lock_id)]
        self._do_ops(ops, self.me, names_ext, extra_info)
        self._notify_syncers(node)
        for other in his_known_nodes:
            self._cancel_resolved_locker(other, functools.partial(self._cancel_locker, other))
        new_nodes_msg = (GEN_CAST, (NEW_NODES, self.me, ops, names_ext, new_nodes, extra_info))
        old_msg = (
            GEN_CAST,
            (NEW_NODES, self.me, ops, names_ext, _node_list(new_nodes), extra_info),
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
        task.add_done_callback(_log_task_error)

    # ------------------------------------------------------------------ resolver

    async def _resolver(self, proc: Process, node: Atom, tag: int) -> None:
        while True:
            msg = await proc.receive()
            if type(msg) is tuple and len(msg) == 3 and msg[0] == RESOLVE and msg[2] == node:
                break
        ops, resolved = await self._exchange_names(msg[1], node)
        self.proc.mailbox.put((GEN_CAST, (EXCHANGE_OPS, node, tag, ops, resolved)))

    async def _exchange_names(self, name_list: Any, node: Atom) -> tuple[list[Any], list[Any]]:
        """Which of the peer's names we take (ops) and which of ours win over his (resolved)."""
        ops: list[Any] = []
        res: list[Any] = []
        for name, pid, method in name_list:
            entry = self.names.get(_key(name))
            if entry is None:
                ops.append((INSERT, (name, pid, method)))
                continue
            if entry.pid == pid or not self.me < node:
                continue
            winner = await self._resolve_remote(entry, name, pid)
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

    async def _resolve_remote(self, entry: _NameEntry, name: Any, pid: Pid) -> Any:
        """``rpc:call(node(Pid2), global, resolve_it, [Method2, Name, Pid, Pid2])``."""
        if entry.pid.node == self.me:
            return resolve_it(self.node, entry.method, name, pid, entry.pid)
        try:
            return await self.node.rpc(
                entry.pid.node, GLOBAL, Atom("resolve_it"), [entry.method, name, pid, entry.pid]
            )
        except RpcError as exc:
            return (BADRPC, exc.reason)

    # ------------------------------------------------------------------ names

    def _get_names(self) -> list[tuple[Any, Pid, Any]]:
        return [(e.name, e.pid, e.method) for e in self.names.values()]

    def _ins_name(self, name: Any, pid: Pid, method: Any, from_: Pid | Atom, extra: Any) -> None:
        if type(pid) is not Pid:
            raise TypeError(f"global name {name!r} for a non-pid {pid!r}")
        self._delete_global_name(name)
        ref = self.proc.monitor(pid)
        key = _key(name)
        self.names[key] = _NameEntry(name, pid, method, ref)
        self.pid_names.setdefault(pid, set()).add(key)
        self.ref_names[ref] = key
        if not self._lock_still_set(from_, extra):
            self._delete_global_name(name)

    def _ins_name_ext(
        self, name: Any, pid: Pid, method: Any, reg_node: Any, from_: Pid | Atom, extra: Any
    ) -> None:
        self._delete_global_name(name)
        self.names_ext[_key(name)] = (name, pid, reg_node)
        self._ins_name(name, pid, method, from_, extra)

    def _lock_still_set(self, from_: Pid | Atom, extra: Any) -> bool:
        lock = self.locks.get(GLOBAL)
        if lock is None:
            return not self.global_lock_down
        if type(from_) is Pid:
            return any(holder == from_ for holder, _ in lock.holders)
        lock_id = _extra_info(LOCK, extra)
        return type(lock_id) is tuple and len(lock_id) == 2 and lock.requester == lock_id[1]

    def _delete_global_name(self, name: Any) -> None:
        key = _key(name)
        entry = self.names.pop(key, None)
        if entry is None:
            return
        self.proc.demonitor(entry.ref, flush=True)
        self.ref_names.pop(entry.ref, None)
        names = self.pid_names.get(entry.pid)
        if names is not None:
            names.discard(key)
            if not names:
                del self.pid_names[entry.pid]
        self.names_ext.pop(key, None)

    def _do_ops(self, ops: Any, conn_node: Atom, names_ext: Any, extra_info: Any) -> None:
        inserts = [op[1] for op in ops if op[0] == INSERT]
        ext = {(_key(n), p): reg_node for n, p, reg_node in names_ext}
        for name, pid, method in inserts:
            reg_node = ext.get((_key(name), pid))
            if reg_node is None:
                self._ins_name(name, pid, method, conn_node, extra_info)
            else:
                self._ins_name_ext(name, pid, method, reg_node, conn_node, extra_info)
        for op in ops:
            if op[0] == DELETE:
                self._delete_global_name(op[1])

    # ------------------------------------------------------------------ locks

    def _can_set_lock(self, lock_id: Any) -> bool:
        resource, requester = lock_id
        lock = self.locks.get(_key(resource))
        return lock is None or lock.requester == requester

    def _handle_set_lock(self, lock_id: Any, pid: Pid) -> bool:
        if not self._can_set_lock(lock_id):
            return False
        resource, requester = lock_id
        key = _key(resource)
        lock = self.locks.get(key)
        holders = [] if lock is None else lock.holders
        if any(holder == pid for holder, _ in holders):
            return True
        ref = self.proc.monitor(pid)
        self.locks[key] = _Lock(resource, requester, [(pid, ref), *holders])
        self.ref_locks.setdefault(ref, set()).add(key)
        return True

    def _handle_del_lock(self, lock_id: Any, pid: Pid) -> None:
        resource, requester = lock_id
        key = _key(resource)
        lock = self.locks.get(key)
        if lock is not None and lock.requester == requester:
            self._remove_lock(key, pid, down=False)

    def _remove_lock(self, key: Any, pid: Pid, *, down: bool) -> None:
        lock = self.locks[key]
        kept = []
        for holder, ref in lock.holders:
            if holder == pid:
                self.proc.demonitor(ref, flush=True)
                self.ref_locks.pop(ref, None)
            else:
                kept.append((holder, ref))
        if kept:
            lock.holders = kept
            return
        del self.locks[key]
        if key == GLOBAL:
            self.global_lock_down = down

    def _on_down(self, ref: Any, _process: Any, _pid: Any, _reason: Any) -> None:
        for key in self.ref_locks.pop(ref, ()):
            lock = self.locks.get(key)
            holder = None if lock is None else next((p for p, r in lock.holders if r == ref), None)
            if holder is not None:
                self._remove_lock(key, holder, down=True)
        key = self.ref_names.get(ref)
        if key is not None and self.names[key].ref == ref:
            self._delete_global_name(self.names[key].name)

    def _delete_node_resources(self, node: Atom) -> None:
        """Names and locks held by processes of ``node`` go (as OTP 27 does on a restart)."""
        for entry in [e for e in self.names.values() if e.pid.node == node]:
            self._delete_global_name(entry.name)
        for key, lock in list(self.locks.items()):
            for holder, _ in list(lock.holders):
                if holder.node == node and key in self.locks:
                    self._remove_lock(key, holder, down=True)

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
            if _is_atom(entry):
                result.append((entry, self._node_vsn(entry)))
            elif entry[1] == 0:
                result.append((entry[0], self._node_vsn(entry[0])))
            else:
                result.append((entry[0], entry[1]))
        return result

    def _add_to_known(self, entries: Iterable[Any]) -> list[Atom]:
        added: list[Atom] = []
        for entry in entries:
            node, vsn = (entry, 0) if _is_atom(entry) else (entry[0], entry[1])
            if node == self.me or not _is_atom(node):
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
            task.add_done_callback(_log_task_error)
        else:
            gen_reply(self.node, self.proc.pid, from_, self.where(name))


DISCONNECTED: Final = Atom("disconnected")


class _Locker:
    """The locker process: locks both partitions for each pending session (global.erl's
    ``loop_the_locker``), then holds the lock until the server cancels the session."""

    def __init__(self, server: GlobalServer) -> None:
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
        await self.server._delete_global_lock(proc, lock_id, nodes)

    async def _lock_nodes_safely(self, proc: Process, lock_id: Any, extra: list[Atom]) -> bool:
        server = self.server
        first = [n for n in [self.boss] if n != NONODE]
        if not ([server.me] == first or server._can_set_lock(lock_id)):
            return False
        if not await server._set_lock_on_nodes(proc, lock_id, first):
            return False
        await self._drain_known_updates(proc)
        second = [n for n in [server.me, *extra] if n not in first and n != NONODE]
        if not await server._set_lock_on_nodes(proc, lock_id, second):
            await server._del_lock(proc, lock_id, first)
            return False
        rest = [n for n in self.state.known if n not in first]
        if not await server._set_lock_on_nodes(proc, lock_id, rest):
            await server._del_lock(proc, lock_id, first + second)
            return False
        return True


def resolve_it(node: Node, method: Any, name: Any, pid1: Pid, pid2: Pid) -> Any:
    """``global:resolve_it/4`` for a clash on this node: run the resolve method, give the winner.

    ``global``'s own methods run here: the default one (``fun random_exit_name/3``, which
    arrives as a local fun of module ``global``), and ``fun global:random_exit_name/3``,
    ``random_notify_name/3``, ``notify_all_name/3``. Any other Erlang fun cannot run on a Python
    node: the result is ``{'EXIT', ...}``, which makes global drop the name everywhere.
    """
    kind = _method_kind(method)
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


def _method_kind(method: Any) -> Atom | None:
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


class GlobalRpc:
    """The ``global`` module as Erlang nodes reach it over RPC on a Python node:
    ``resolve_it/4`` (name clashes), plus ``whereis_name/1``, ``registered_names/0``,
    ``register_name/2``, ``unregister_name/1`` and ``sync/0`` acting on this node."""

    def __init__(self, server: GlobalServer) -> None:
        self._server = server

    def resolve_it(self, method: Any, name: Any, pid1: Pid, pid2: Pid) -> Any:
        return resolve_it(self._server.node, method, name, pid1, pid2)

    def whereis_name(self, name: Any) -> Pid | Atom:
        return self._server.where(name) or Atom("undefined")

    def registered_names(self) -> list[Any]:
        return self._server.registered_names()

    async def register_name(self, name: Any, pid: Pid) -> Atom:
        return YES if await self._server.register_name(name, pid) else NO

    async def unregister_name(self, name: Any) -> Atom:
        await self._server.unregister_name(name)
        return OK

    async def sync(self) -> Atom:
        await self._server.sync()
        return OK


class GlobalApi:
    """The global name registry methods of `Node` (a mixin over its `GlobalServer`)."""

    global_server: GlobalServer

    async def global_register(
        self, name: Any, pid: Pid | Process, method: str | Export | Fun = "random_exit_name"
    ) -> bool:
        """``global:register_name(Name, Pid, Method)``: True when registered cluster-wide,
        False when the name is taken or the pid already has a global name.

        ``name`` is any term (a plain ``str`` becomes an atom); ``method`` resolves clashes
        found when partitions merge: ``"random_exit_name"`` (default: the pid of the node with
        the greater name is killed), ``"random_notify_name"`` (it gets
        ``{global_name_conflict, Name}`` and loses the name), ``"notify_all_name"`` (both get
        ``{global_name_conflict, Name, OtherPid}``, the name goes), or an Erlang fun.
        """
        target = pid if isinstance(pid, Pid) else pid.pid
        return await self.global_server.register_name(
            global_name(name), target, resolve_method(method)
        )

    async def global_re_register(
        self, name: Any, pid: Pid | Process, method: str | Export | Fun = "random_exit_name"
    ) -> None:
        """``global:re_register_name/3``: point ``name`` at ``pid`` even if it is taken."""
        target = pid if isinstance(pid, Pid) else pid.pid
        await self.global_server.re_register_name(global_name(name), target, resolve_method(method))

    async def global_unregister(self, name: Any) -> None:
        """``global:unregister_name/1``."""
        await self.global_server.unregister_name(global_name(name))

    async def global_whereis(self, name: Any) -> Pid | None:
        """``global:whereis_name/1``: the pid, or None."""
        return self.global_server.where(global_name(name))

    def global_names(self) -> list[Any]:
        """``global:registered_names/0``."""
        return self.global_server.registered_names()

    def global_send(self, name: Any, message: Any) -> Pid:
        """``global:send/2``: send to the pid registered as ``name`` and return it;
        `UnknownName` when nobody holds the name (Erlang exits with badarg)."""
        pid = self.global_server.where(global_name(name))
        if pid is None:
            raise UnknownName(f"no process is globally registered as {name!r}")
        self.global_server.node.send(pid, message)
        return pid

    async def global_sync(self, timeout: float | None = None) -> None:
        """``global:sync()``: wait until global has synced with every connected visible node.

        ``TimeoutError`` after ``timeout`` seconds (``None``: no limit, as in Erlang).
        """
        await asyncio.wait_for(self.global_server.sync(), timeout)


def global_name(name: Any) -> Any:
    """A global name as a term: a plain ``str`` becomes an atom, anything else is kept."""
    return Atom(name) if type(name) is str else name


def _key(name: Any) -> Any:
    """The table key of a term: its form as decoded from the wire (``[1, 2]`` and the Erlang
    string it travels as are the same name), made hashable."""
    return freeze(decode(encode(name)))


def _extra_info(tag: Atom, extra: Any) -> Any:
    if isinstance(extra, list):
        for item in extra:
            if type(item) is tuple and len(item) == 2 and item[0] == tag:
                return item[1]
    return None


def _call(fun: Callable[[], None] | None) -> None:
    if fun is not None:
        fun()


def _ignore(*_args: Any) -> None:
    return None


def _log_task_error(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("global background task failed: %s", task.exception())
