"""The state of one ``pg`` scope and its transitions, sans-I/O.

`ScopeState` holds what ``pg.erl``'s scope process holds: the membership table (group ->
every member, and the members on this node), the local members it monitors with the groups each
joined, and per peer scope process the groups and pids that peer reported. Each transition
returns the effects the adapter (`scope.py`) carries out, in order: `Send` a message (always
``noconnect``, as pg does), `Monitor` or `Demonitor` a pid, `Notify` watchers of a join or a
leave. Nothing here sends, awaits or knows a socket, so the protocol is tested with plain calls.

Wire protocol (pg.erl, the same in OTP 23..28; OTP 29 still speaks it to peers that announce no
version): ``{discover, Peer}`` to ``{Scope, Node}`` on start and on nodeup, answered with the
gen_server cast ``{sync, Peer, [{Group, Pids}]}`` and, from a peer not yet known, a
``{discover, Peer}`` back plus a monitor on the peer; ``{join, Peer, Group, PidOrPids}`` and
``{leave, Peer, PidOrPids, Groups}`` to every known peer. A DOWN from a peer scope drops all its
members; a DOWN from a local member makes it leave every group it joined. OTP 26+ also accepts
``{discover, Peer, Version}`` (OTP 29 sends it); the version is ignored here and answered in the
versionless protocol, which OTP 29 then speaks to us.

Group keys are terms in their decoded, hashable form (`beamlink.etf.freeze`); member lists keep
pg's order (the newest first) and multiplicity (a pid that joined twice is listed twice).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from beamlink.etf import Atom, Pid, freeze
from beamlink.node.atoms import GEN_CAST

DISCOVER: Final = Atom("discover")
SYNC: Final = Atom("sync")
JOIN: Final = Atom("join")
LEAVE: Final = Atom("leave")


@dataclass(frozen=True, slots=True)
class Send:
    """``erlang:send(Dest, Message, [noconnect])`` from the scope process."""

    dest: Pid | tuple[Atom, Atom]
    message: Any


@dataclass(frozen=True, slots=True)
class Monitor:
    """Monitor ``pid`` (a local member or a peer scope process)."""

    pid: Pid


@dataclass(frozen=True, slots=True)
class Demonitor:
    """Drop the monitor on ``pid`` (and any DOWN of it already queued)."""

    pid: Pid


@dataclass(frozen=True, slots=True)
class Notify:
    """``pids`` joined or left ``group`` (what ``pg:monitor`` subscribers receive)."""

    action: Atom
    group: Any
    pids: tuple[Pid, ...]


Effect = Send | Monitor | Demonitor | Notify


class _Group:
    __slots__ = ("all", "local")

    def __init__(self) -> None:
        self.all: list[Pid] = []
        self.local: list[Pid] = []


def _remove_each(items: list[Pid], remove: Iterable[Pid]) -> list[Pid]:
    """Erlang's ``Items -- Remove``: each element of ``remove`` takes away one occurrence."""
    result = list(items)
    for pid in remove:
        with contextlib.suppress(ValueError):
            result.remove(pid)
    return result


def pid_list(pid_or_pids: Any) -> list[Pid]:
    """``PidOrPids`` as a list; TypeError when it is neither a pid nor a list of pids."""
    if type(pid_or_pids) is Pid:
        return [pid_or_pids]
    if isinstance(pid_or_pids, list | tuple) and all(type(p) is Pid for p in pid_or_pids):
        return list(pid_or_pids)
    raise TypeError(f"not a pid or a list of pids: {pid_or_pids!r}")


def _peer(value: Any) -> Pid:
    if type(value) is not Pid:
        raise TypeError(f"peer scope is not a pid: {value!r}")
    return value


class ScopeState:
    """One scope's membership and peers; ``me`` is the scope process's pid."""

    def __init__(self, scope: Atom, me: Pid) -> None:
        self.scope = scope
        self.me = me
        self.groups: dict[Any, _Group] = {}
        self.local: dict[Pid, list[Any]] = {}
        self.remote: dict[Pid, dict[Any, list[Pid]]] = {}

    # ------------------------------------------------------------------ queries

    def members(self, group: Any) -> list[Pid]:
        """``pg:get_members/2``: every member, the newest first, repeated if joined twice."""
        entry = self.groups.get(group)
        return list(entry.all) if entry is not None else []

    def local_members(self, group: Any) -> list[Pid]:
        """``pg:get_local_members/2``."""
        entry = self.groups.get(group)
        return list(entry.local) if entry is not None else []

    def which_groups(self) -> list[Any]:
        """``pg:which_groups/1``."""
        return list(self.groups)

    def which_local_groups(self) -> list[Any]:
        """``pg:which_local_groups/1``."""
        return [group for group, entry in self.groups.items() if entry.local]

    def snapshot(self) -> dict[Any, list[Pid]]:
        """Every group with its members (what ``pg:monitor_scope`` returns first)."""
        return {group: list(entry.all) for group, entry in self.groups.items()}

    def peers(self) -> list[Pid]:
        """The peer scope processes this scope knows."""
        return list(self.remote)

    # ------------------------------------------------------------------ start and nodes

    def start(self, nodes: Iterable[Atom]) -> list[Effect]:
        """``init/1``: discover the scope on every connected node."""
        return [Send((self.scope, node), (DISCOVER, self.me)) for node in nodes]

    def nodeup(self, node: Atom) -> list[Effect]:
        """A visible node connected: discover its scope (noconnect, as pg does)."""
        if node == self.me.node:
            return []
        return [Send((self.scope, node), (DISCOVER, self.me))]

    # ------------------------------------------------------------------ local joins and leaves

    def join_local(self, group: Any, pids: list[Pid]) -> list[Effect]:
        """``pg:join/3`` of local ``pids`` (each must be alive and on this node)."""
        effects: list[Effect] = []
        for pid in pids:
            joined = self.local.get(pid)
            if joined is None:
                self.local[pid] = [group]
                effects.append(Monitor(pid))
            else:
                joined.insert(0, group)
        entry = self.groups.setdefault(group, _Group())
        entry.all[:0] = pids
        entry.local[:0] = pids
        effects.append(Notify(JOIN, group, tuple(pids)))
        payload: Any = pids[0] if len(pids) == 1 else pids
        effects.extend(Send(peer, (JOIN, self.me, group, payload)) for peer in self.remote)
        return effects

    def leave_local(self, group: Any, pids: list[Pid]) -> tuple[bool, list[Effect]]:
        """``pg:leave/3``: one membership of each pid that had joined ``group`` ends;
        ``(False, [])`` (not_joined) when none had."""
        effects: list[Effect] = []
        left: list[Pid] = []
        for pid in pids:
            joined = self.local.get(pid)
            if joined is None or group not in joined:
                continue
            left.append(pid)
            joined.remove(group)
            if not joined:
                del self.local[pid]
                effects.append(Demonitor(pid))
        if not left:
            return False, []
        effects.extend(self._drop_local(group, left))
        payload: Any = left[0] if len(left) == 1 else left
        effects.extend(Send(peer, (LEAVE, self.me, payload, [group])) for peer in self.remote)
        return True, effects

    def _drop_local(self, group: Any, pids: list[Pid]) -> list[Effect]:
        entry = self.groups.get(group)
        if entry is None:
            return []
        entry.all = _remove_each(entry.all, pids)
        entry.local = _remove_each(entry.local, pids)
        if not entry.all:
            del self.groups[group]
        return [Notify(LEAVE, group, tuple(pids))]

    # ------------------------------------------------------------------ peers

    def receive(self, msg: Any) -> list[Effect]:
        """A message to the scope process from a peer: ``{discover, Peer[, Version]}``, the
        cast ``{sync, Peer, Groups}``, ``{join, ...}`` or ``{leave, ...}``. Anything else (and
        any malformed part) raises ValueError or TypeError; the scope logs and drops it."""
        if type(msg) is not tuple or not msg:
            raise ValueError("not a tuple")
        tag, size = msg[0], len(msg)
        if tag == JOIN and size == 4:
            return self.join_remote(_peer(msg[1]), freeze(msg[2]), msg[3])
        if tag == LEAVE and size == 4:
            if not isinstance(msg[3], list):
                raise TypeError("leave groups are not a list")
            return self.leave_remote(_peer(msg[1]), msg[2], [freeze(g) for g in msg[3]])
        if tag == DISCOVER and size in (2, 3):  # OTP 29 adds its protocol version
            return self.discover(_peer(msg[1]))
        if tag == GEN_CAST and size == 2:
            cast = msg[1]
            if type(cast) is tuple and len(cast) == 3 and cast[0] == SYNC:
                if not isinstance(cast[2], list):
                    raise TypeError("sync groups are not a list")
                groups = [(freeze(group), pid_list(pids)) for group, pids in cast[2]]
                return self.sync(_peer(cast[1]), groups)
        raise ValueError("not a pg message")

    def discover(self, peer: Pid) -> list[Effect]:
        """``{discover, Peer}``: send it our local members; discover it back if it is new."""
        effects: list[Effect] = [Send(peer, (GEN_CAST, (SYNC, self.me, self._local_groups())))]
        if peer not in self.remote:
            self.remote[peer] = {}
            effects.append(Monitor(peer))
            effects.append(Send(peer, (DISCOVER, self.me)))
        return effects

    def _local_groups(self) -> list[tuple[Any, list[Pid]]]:
        by_group: dict[Any, list[Pid]] = {}
        for pid, groups in self.local.items():
            for group in groups:
                by_group.setdefault(group, []).insert(0, pid)
        return list(by_group.items())

    def sync(self, peer: Pid, groups: list[tuple[Any, list[Pid]]]) -> list[Effect]:
        """``{sync, Peer, Groups}``: ``Groups`` is now everything ``peer`` has; the difference
        to what it had before joins and leaves here."""
        effects: list[Effect] = []
        old = self.remote.get(peer)
        if old is None:
            old = {}
            effects.append(Monitor(peer))
        new: dict[Any, list[Pid]] = {}
        for group, pids in groups:
            if not pids:
                continue
            new[group] = list(pids)
            before = old.pop(group, None)
            if before is None:
                effects.extend(self._add_remote(group, pids))
            elif before != pids:
                effects.extend(self._drop_remote(group, before))
                effects.extend(self._add_remote(group, pids))
        for group, pids in old.items():
            effects.extend(self._drop_remote(group, pids))
        self.remote[peer] = new
        return effects

    def join_remote(self, peer: Pid, group: Any, pid_or_pids: Any) -> list[Effect]:
        """``{join, Peer, Group, PidOrPids}`` (ignored from a peer we do not know)."""
        groups = self.remote.get(peer)
        if groups is None:
            return []
        pids = pid_list(pid_or_pids)
        if not pids:
            return []
        groups[group] = pids + groups.get(group, [])
        return self._add_remote(group, pids)

    def leave_remote(self, peer: Pid, pid_or_pids: Any, groups: list[Any]) -> list[Effect]:
        """``{leave, Peer, PidOrPids, Groups}`` (ignored from a peer we do not know; only pids
        the peer had reported in a group leave it)."""
        known = self.remote.get(peer)
        if known is None:
            return []
        pids = pid_list(pid_or_pids)
        effects: list[Effect] = []
        for group in groups:
            before = known.get(group)
            if before is None:
                continue
            remaining = _remove_each(before, pids)
            if remaining:
                known[group] = remaining
            else:
                del known[group]
            left = _remove_each(before, remaining)
            if left:
                effects.extend(self._drop_remote(group, left))
        return effects

    def _add_remote(self, group: Any, pids: list[Pid]) -> list[Effect]:
        entry = self.groups.setdefault(group, _Group())
        entry.all[:0] = pids
        return [Notify(JOIN, group, tuple(pids))]

    def _drop_remote(self, group: Any, pids: list[Pid]) -> list[Effect]:
        entry = self.groups.get(group)
        if entry is None:
            return []
        entry.all = _remove_each(entry.all, pids)
        if not entry.all:
            del self.groups[group]
        return [Notify(LEAVE, group, tuple(pids))]

    # ------------------------------------------------------------------ DOWN

    def down(self, pid: Pid) -> list[Effect]:
        """A monitored pid went down: a local member leaves all its groups (and every peer is
        told), a peer scope's members all leave."""
        joined = self.local.pop(pid, None)
        if joined is not None:
            effects: list[Effect] = []
            for group in joined:
                effects.extend(self._drop_local(group, [pid]))
            effects.extend(Send(peer, (LEAVE, self.me, pid, joined)) for peer in self.remote)
            return effects
        groups = self.remote.pop(pid, None)
        if groups is None:
            return []
        effects = []
        for group, pids in groups.items():
            effects.extend(self._drop_remote(group, pids))
        return effects
