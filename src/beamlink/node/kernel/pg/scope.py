"""A ``pg`` scope on a beamlink node: the scope process and the Python API of one scope.

`PgScope` is the thin I/O adapter around `ScopeState` (`core.py`): it spawns the scope process,
registered under the scope's name as on every Erlang node, feeds it what arrives (discover,
sync casts, join, leave, DOWN of monitored pids) and nodeup events, and carries out the effects
the state returns (noconnect sends from the scope process, monitors, join/leave events for the
`PgMonitor` streams). The Python API (`join`, `leave`, `get_members`, ...) acts on the same
state synchronously, on the event loop's thread, so it is ordered with the scope's messages as
``gen_server:call`` to the scope is in Erlang.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from beamlink.etf import Atom, Pid, Reference, decode, encode, freeze
from beamlink.node.atoms import DOWN_TAG
from beamlink.node.genserver import parse_call
from beamlink.node.kernel.host import ServiceHost
from beamlink.node.kernel.pg.core import (
    JOIN,
    Demonitor,
    Effect,
    Monitor,
    Notify,
    ScopeState,
    Send,
)
from beamlink.node.monitors import NodeEvent
from beamlink.node.runtime import Process

log = logging.getLogger("beamlink.node.pg")

PidLike = Pid | Process
Members = PidLike | Iterable[PidLike]


def group_key(group: Any) -> Any:
    """A group as the scope stores it: the term as it arrives from the wire, hashable (a Python
    ``str`` is the binary ``b"..."``, a list a `FrozenList`, a dict a `Map`)."""
    kind = type(group)
    if kind is Atom or kind is bytes or kind is int:
        return group
    return freeze(decode(encode(group)))


@dataclass(frozen=True)
class PgEvent:
    """``pids`` joined or left ``group`` (``{Ref, join | leave, Group, Pids}`` in Erlang)."""

    action: Literal["join", "leave"]
    group: Any
    pids: tuple[Pid, ...]


class PgMonitor:
    """Join and leave events of one group (`PgScope.monitor`) or of a whole scope
    (`PgScope.monitor_scope`), from the moment it was made: an async iterator of `PgEvent`s
    and an async context manager; ``close()`` ends it.

    ``snapshot`` is the membership when the monitor started (group -> members); ``members``
    the members of the monitored group then.
    """

    def __init__(self, scope: PgScope, group: Any, snapshot: dict[Any, list[Pid]]) -> None:
        self._scope = scope
        self.group = group
        self.snapshot = snapshot
        self._queue: asyncio.Queue[PgEvent | None] = asyncio.Queue()
        self._closed = False

    @property
    def members(self) -> list[Pid]:
        """The members of the monitored group when the monitor started."""
        return self.snapshot.get(self.group, [])

    def _push(self, event: PgEvent | None) -> None:
        if not self._closed:
            self._queue.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[PgEvent]:
        return self

    async def __anext__(self) -> PgEvent:
        event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)
            raise StopAsyncIteration
        return event

    async def next(self, timeout: float | None = None) -> PgEvent:
        """The next event; `TimeoutError` after ``timeout`` s, StopAsyncIteration once closed."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    def close(self) -> None:
        """Stop receiving events (``pg:demonitor``, which also flushes what is queued); a
        pending iteration ends."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._push(None)
        self._closed = True
        self._scope._forget(self)

    async def __aenter__(self) -> PgMonitor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


_SCOPE_WIDE: Any = object()


class PgScope:
    """One ``pg`` scope on this node (``pg:start_link(Scope)``), shared with every Erlang,
    Elixir and Python node that runs a scope of the same name; see docs/pg.md.

    Groups are any term (a Python ``str`` is an Erlang binary, ``Atom("jobs")`` the atom
    ``jobs``); wherever a pid is taken a `Process` is accepted too.
    """

    def __init__(self, host: ServiceHost, name: Atom) -> None:
        self._host = host
        self.name = name
        self._proc = host.spawn(self._serve, name=str(name))
        self.state = ScopeState(name, self._proc.pid)
        self._refs: dict[Pid, Reference] = {}
        self._monitors: dict[Any, set[PgMonitor]] = {}
        self._unsubscribe: Callable[[], None] | None = host.monitor_nodes(self._on_node_event)
        self._apply(self.state.start(host.nodes()))

    @property
    def pid(self) -> Pid:
        """The scope process (registered under the scope's name)."""
        return self._proc.pid

    def stop(self) -> None:
        """Stop following nodes and end every monitor (the node ends the process)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for watchers in list(self._monitors.values()):
            for monitor in list(watchers):
                monitor.close()

    # ------------------------------------------------------------------ the API

    def join(self, group: Any, pid_or_pids: Members) -> None:
        """``pg:join(Scope, Group, PidOrPids)``: the processes (of this node) join ``group``;
        a process may join a group several times and is then listed as often. A process that
        exits leaves all its groups."""
        pids = self._local_pids(pid_or_pids, "join")
        if pids:
            self._apply(self.state.join_local(group_key(group), pids))

    def leave(self, group: Any, pid_or_pids: Members) -> bool:
        """``pg:leave/3``: one membership of each process ends; False (``not_joined``) when
        none of them had joined ``group``."""
        pids = self._local_pids(pid_or_pids, "leave")
        left, effects = self.state.leave_local(group_key(group), pids)
        self._apply(effects)
        return left

    def get_members(self, group: Any) -> list[Pid]:
        """``pg:get_members/2``: the members on every node, the latest join first."""
        return self.state.members(group_key(group))

    def get_local_members(self, group: Any) -> list[Pid]:
        """``pg:get_local_members/2``: the members on this node."""
        return self.state.local_members(group_key(group))

    def which_groups(self) -> list[Any]:
        """``pg:which_groups/1``: every group with a member, in wire form (``b"jobs"``)."""
        return self.state.which_groups()

    def which_local_groups(self) -> list[Any]:
        """``pg:which_local_groups/1``: the groups with a member on this node."""
        return self.state.which_local_groups()

    def monitor(self, group: Any) -> PgMonitor:
        """``pg:monitor(Scope, Group)``: joins and leaves of ``group`` from now on; the
        monitor's ``members`` are the members now."""
        key = group_key(group)
        monitor = PgMonitor(self, key, {key: self.state.members(key)})
        self._monitors.setdefault(key, set()).add(monitor)
        return monitor

    def monitor_scope(self) -> PgMonitor:
        """``pg:monitor_scope(Scope)``: joins and leaves of every group from now on; the
        monitor's ``snapshot`` is every group with its members now."""
        monitor = PgMonitor(self, _SCOPE_WIDE, self.state.snapshot())
        self._monitors.setdefault(_SCOPE_WIDE, set()).add(monitor)
        return monitor

    def broadcast(self, group: Any, message: Any, *, sender: PidLike | None = None) -> int:
        """Send ``message`` to every process in ``group`` (once each, even if it joined
        twice), on every node; returns how many processes it was sent to."""
        entry = self.state.groups.get(group_key(group))
        if entry is None:
            return 0
        pids = dict.fromkeys(entry.all)
        send = self._host.send
        from_ = None if sender is None else _pid(sender)
        for pid in pids:
            send(pid, message, sender=from_)
        return len(pids)

    # ------------------------------------------------------------------ the process

    async def _serve(self, proc: Process) -> None:
        while True:
            msg = await proc.receive()
            try:
                self._handle(msg)
            except (TypeError, ValueError, IndexError, AttributeError) as exc:
                log.warning("pg scope %s dropped malformed message %r: %s", self.name, msg, exc)

    def _handle(self, msg: Any) -> None:
        if type(msg) is tuple and len(msg) == 5 and msg[0] == DOWN_TAG:
            ref, pid = msg[1], msg[3]
            if self._refs.get(pid) == ref:
                del self._refs[pid]
                self._apply(self.state.down(pid))
        elif parse_call(msg) is not None:
            raise ValueError("pg scopes take calls only from their own node")
        else:
            self._apply(self.state.receive(msg))

    def _on_node_event(self, event: NodeEvent) -> None:
        if event.kind == "nodeup" and not event.hidden and self._proc.is_alive:
            self._apply(self.state.nodeup(event.node))

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if type(effect) is Send:
                self._host.send(effect.dest, effect.message, sender=self.pid, noconnect=True)
            elif type(effect) is Notify:
                self._notify(effect)
            elif type(effect) is Monitor:
                self._refs[effect.pid] = self._proc.monitor(effect.pid)
            elif type(effect) is Demonitor:
                ref = self._refs.pop(effect.pid, None)
                if ref is not None:
                    self._proc.demonitor(ref, flush=True)

    def _notify(self, effect: Notify) -> None:
        if not self._monitors:
            return
        watchers = [
            *self._monitors.get(_SCOPE_WIDE, ()),
            *self._monitors.get(effect.group, ()),
        ]
        if watchers:
            action: Literal["join", "leave"] = "join" if effect.action == JOIN else "leave"
            event = PgEvent(action, effect.group, effect.pids)
            for monitor in watchers:
                monitor._push(event)

    def _forget(self, monitor: PgMonitor) -> None:
        watchers = self._monitors.get(monitor.group)
        if watchers is not None:
            watchers.discard(monitor)
            if not watchers:
                del self._monitors[monitor.group]

    def _local_pids(self, pid_or_pids: Members, what: str) -> list[Pid]:
        items = [pid_or_pids] if isinstance(pid_or_pids, Pid | Process) else list(pid_or_pids)
        pids = [_pid(item) for item in items]
        for pid in pids:
            if pid.node != self._host.name:
                raise ValueError(
                    f"pg: only processes of this node ({self._host.name}) can {what} a group "
                    f"here; {pid} lives on {pid.node}: {what} it on its own node"
                )
        return pids


def _pid(item: PidLike) -> Pid:
    if isinstance(item, Process):
        return item.pid
    if type(item) is Pid:
        return item
    raise TypeError(f"not a pid or a Process: {item!r}")
