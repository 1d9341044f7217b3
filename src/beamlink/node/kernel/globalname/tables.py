"""global's name and lock tables, sans-I/O: what ``global_name_server`` keeps in its ETS tables
(``global_names``, ``global_names_ext``, ``global_pid_names``, ``global_locks``,
``global_pid_ids``). The server monitors the pids and passes the monitor references in; these
classes only keep the bookkeeping consistent and say which monitors to drop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from beamlink.etf import Atom, Pid, Reference
from beamlink.node.kernel.globalname.vocabulary import GLOBAL, LOCK, extra_info, key


@dataclass
class NameEntry:
    """A registered global name: the pid, its resolve method and the server's monitor on it."""

    name: Any
    pid: Pid
    method: Any
    ref: Reference


@dataclass
class Lock:
    """A set lock: the resource, the requester id, and every holder with its monitor."""

    resource: Any
    requester: Any
    holders: list[tuple[Pid, Reference]]


class NameTable:
    """Global names by key, with the reverse maps by pid and by monitor reference."""

    def __init__(self) -> None:
        self.entries: dict[Any, NameEntry] = {}
        self.ext: dict[Any, tuple[Any, Pid, Atom]] = {}
        self._by_pid: dict[Pid, set[Any]] = {}
        self._by_ref: dict[Reference, Any] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, name: Any) -> NameEntry | None:
        """The entry of ``name``, or None."""
        return self.entries.get(key(name))

    def insert(self, name: Any, pid: Pid, method: Any, ref: Reference) -> None:
        """Add ``name`` (the caller has deleted any previous holder)."""
        k = key(name)
        self.entries[k] = NameEntry(name, pid, method, ref)
        self._by_pid.setdefault(pid, set()).add(k)
        self._by_ref[ref] = k

    def insert_ext(self, name: Any, pid: Pid, reg_node: Atom) -> None:
        """Remember that ``name`` was registered through ``register_name_external``."""
        self.ext[key(name)] = (name, pid, reg_node)

    def delete(self, name: Any) -> NameEntry | None:
        """Remove ``name``; the removed entry (its monitor is the caller's to drop) or None."""
        k = key(name)
        entry = self.entries.pop(k, None)
        if entry is None:
            return None
        self._by_ref.pop(entry.ref, None)
        names = self._by_pid.get(entry.pid)
        if names is not None:
            names.discard(k)
            if not names:
                del self._by_pid[entry.pid]
        self.ext.pop(k, None)
        return entry

    def names_of(self, pid: Pid) -> list[Any]:
        """The names ``pid`` holds."""
        return [self.entries[k].name for k in self._by_pid.get(pid, ())]

    def name_monitored_by(self, ref: Reference) -> NameEntry | None:
        """The entry whose monitor is ``ref`` (a DOWN for it deletes the name)."""
        k = self._by_ref.get(ref)
        entry = None if k is None else self.entries.get(k)
        return entry if entry is not None and entry.ref == ref else None

    def on_node(self, node: Atom) -> list[NameEntry]:
        """Entries whose pid lives on ``node``."""
        return [e for e in self.entries.values() if e.pid.node == node]

    def triples(self) -> list[tuple[Any, Pid, Any]]:
        """``[{Name, Pid, Method}]`` as the exchange sends it."""
        return [(e.name, e.pid, e.method) for e in self.entries.values()]

    def ext_list(self) -> list[tuple[Any, Pid, Atom]]:
        """``[{Name, Pid, RegNode}]`` as exchanged in ``resolved``/``new_nodes``."""
        return list(self.ext.values())


class LockTable:
    """Locks by resource key, the monitors of their holders, and whether the ``global`` lock
    was last released by a holder going down (global.erl's ``global_lock_down``)."""

    def __init__(self) -> None:
        self.locks: dict[Any, Lock] = {}
        self._by_ref: dict[Reference, set[Any]] = {}
        self.global_lock_down = False

    def __contains__(self, resource: Any) -> bool:
        return key(resource) in self.locks

    def can_set(self, lock_id: Any) -> bool:
        """True when ``{Resource, Requester}`` is free or already held by that requester."""
        resource, requester = lock_id
        lock = self.locks.get(key(resource))
        return lock is None or lock.requester == requester

    def holds(self, lock_id: Any, pid: Pid) -> bool:
        """True when ``pid`` already holds ``lock_id``."""
        lock = self.locks.get(key(lock_id[0]))
        return lock is not None and any(holder == pid for holder, _ in lock.holders)

    def add(self, lock_id: Any, pid: Pid, ref: Reference) -> None:
        """``pid`` (monitored by ``ref``) now holds ``lock_id`` (the caller checked `can_set`)."""
        resource, requester = lock_id
        k = key(resource)
        lock = self.locks.get(k)
        holders = [] if lock is None else lock.holders
        self.locks[k] = Lock(resource, requester, [(pid, ref), *holders])
        self._by_ref.setdefault(ref, set()).add(k)

    def release(self, lock_id: Any, pid: Pid) -> list[Reference]:
        """``del_lock``: ``pid`` lets go of ``lock_id``; the monitors to drop."""
        resource, requester = lock_id
        k = key(resource)
        lock = self.locks.get(k)
        if lock is None or lock.requester != requester:
            return []
        return self._remove(k, pid, down=False)

    def holder_down(self, ref: Reference) -> list[Reference]:
        """The holder monitored by ``ref`` died: it loses every lock; the monitors to drop."""
        dropped: list[Reference] = []
        for k in self._by_ref.pop(ref, ()):
            lock = self.locks.get(k)
            holder = None if lock is None else next((p for p, r in lock.holders if r == ref), None)
            if holder is not None:
                dropped += self._remove(k, holder, down=True)
        return dropped

    def node_down(self, node: Atom) -> list[Reference]:
        """Every holder on ``node`` loses its locks; the monitors to drop."""
        dropped: list[Reference] = []
        for k, lock in list(self.locks.items()):
            for holder, _ in list(lock.holders):
                if holder.node == node and k in self.locks:
                    dropped += self._remove(k, holder, down=True)
        return dropped

    def still_set(self, from_: Pid | Atom, extra: Any) -> bool:
        """Whether an operation from ``from_`` (a pid, or a node for synced ops with their
        ``extra`` info) still runs under the ``global`` lock it was made under."""
        lock = self.locks.get(GLOBAL)
        if lock is None:
            return not self.global_lock_down
        if type(from_) is Pid:
            return any(holder == from_ for holder, _ in lock.holders)
        lock_id = extra_info(LOCK, extra)
        return type(lock_id) is tuple and len(lock_id) == 2 and lock.requester == lock_id[1]

    def _remove(self, k: Any, pid: Pid, *, down: bool) -> list[Reference]:
        lock = self.locks[k]
        kept = []
        dropped = []
        for holder, ref in lock.holders:
            if holder == pid:
                dropped.append(ref)
                self._by_ref.pop(ref, None)
            else:
                kept.append((holder, ref))
        if kept:
            lock.holders = kept
        else:
            del self.locks[k]
            if k == GLOBAL:
                self.global_lock_down = down
        return dropped
