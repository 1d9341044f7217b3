"""The local process table: pids and references minted from the node name and creation, the
pid -> process map, registered names and active aliases.

Pids carry the node's 32-bit creation (NEW_PID_EXT); ids count up to 2**28 and then wrap into the
next serial, so a pid is not reused while its predecessor could still be referred to. References
have three 32-bit words like the ones BEAM mints. No I/O here.
"""

from __future__ import annotations

import itertools
import secrets
from typing import TYPE_CHECKING

from beamlink.etf import Atom, Pid, Reference
from beamlink.node.errors import NameInUse

if TYPE_CHECKING:
    from beamlink.node.runtime.process import Process

PID_ID_LIMIT = 1 << 28
REF_WORD0_LIMIT = 1 << 18


class Registry:
    """Pids, names and aliases of one node's live processes."""

    __slots__ = (
        "_next_pid",
        "_ref_counter",
        "_ref_salt",
        "aliases",
        "creation",
        "names",
        "node_name",
        "pids",
    )

    def __init__(self, node_name: Atom, creation: int) -> None:
        self.node_name = node_name
        self.creation = creation
        self.pids: dict[Pid, Process] = {}
        self.names: dict[Atom, Process] = {}
        self.aliases: dict[Reference, Process] = {}
        self._next_pid = itertools.count(1)
        self._ref_counter = itertools.count(1)
        self._ref_salt = secrets.randbits(32)

    def new_pid(self) -> Pid:
        """A pid of this node that no live process has."""
        while True:
            n = next(self._next_pid)
            pid = Pid(self.node_name, n % PID_ID_LIMIT, n // PID_ID_LIMIT, self.creation)
            if pid not in self.pids:
                return pid

    def make_ref(self) -> Reference:
        """A reference unique on this node (Erlang's ``make_ref()``)."""
        n = next(self._ref_counter)
        return Reference(
            self.node_name,
            self.creation,
            (n % REF_WORD0_LIMIT, (n // REF_WORD0_LIMIT) & 0xFFFFFFFF, self._ref_salt),
        )

    def register(self, name: Atom, process: Process) -> None:
        """Give ``process`` the name ``name``; NameInUse if either is taken."""
        holder = self.names.get(name)
        if holder is not None:
            raise NameInUse(f"{name!r} is already registered to {holder.pid}")
        if process.name is not None:
            raise NameInUse(f"{process.pid} is already registered as {process.name!r}")
        self.names[name] = process
        process.name = name

    def unregister(self, name: Atom) -> bool:
        """Remove the name ``name``; False if nobody held it."""
        process = self.names.pop(name, None)
        if process is None:
            return False
        process.name = None
        return True
