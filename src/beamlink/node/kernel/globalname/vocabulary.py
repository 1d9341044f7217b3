"""global's wire vocabulary: the atoms and constants of ``global.erl`` (protocol version 8, the
same in OTP 25 and 27), the term order of pids both lockers must agree on, the back-off between
lock attempts, and how a Python value becomes a global name (and a table key).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any, Final

from beamlink.etf import Atom, Export, Pid, decode, encode, freeze

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
NONE: Final = Atom("none")
GLOBAL_NAME_CONFLICT: Final = Atom("global_name_conflict")
NONODE: Final = Atom("nonode@nohost")

# Conflict resolution functions of global.erl that a Python node can run itself.
RANDOM_EXIT_NAME: Final = Atom("random_exit_name")
RANDOM_NOTIFY_NAME: Final = Atom("random_notify_name")
NOTIFY_ALL_NAME: Final = Atom("notify_all_name")
METHODS: Final = (RANDOM_EXIT_NAME, RANDOM_NOTIFY_NAME, NOTIFY_ALL_NAME)
DEFAULT_METHOD: Final = Export(GLOBAL, RANDOM_EXIT_NAME, 3)

# How long a lost_connection report is remembered (global.erl: one hour).
LOST_CONNECTION_MEMORY: Final = 3600.0

DISCONNECTED: Final = Atom("disconnected")


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


def is_atom(term: Any) -> bool:
    return type(term) is Atom


def node_list(entries: Iterable[Any]) -> list[Atom]:
    """Node names of a known list whose entries are ``Node`` or ``{Node, Vsn}``."""
    return [e if is_atom(e) else e[0] for e in entries]



def global_name(name: Any) -> Any:
    """A global name as a term: a plain ``str`` becomes an atom, anything else is kept."""
    return Atom(name) if type(name) is str else name


def key(name: Any) -> Any:
    """The table key of a term: its form as decoded from the wire (``[1, 2]`` and the Erlang
    string it travels as are the same name), made hashable."""
    return freeze(decode(encode(name)))


def extra_info(tag: Atom, extra: Any) -> Any:
    """The value under ``tag`` in a ``[{Tag, Value}]`` extra-info list, or None."""
    if isinstance(extra, list):
        for item in extra:
            if type(item) is tuple and len(item) == 2 and item[0] == tag:
                return item[1]
    return None
