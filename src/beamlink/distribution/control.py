"""Control messages of connected nodes: operation numbers and tuple builders.

A control message is the ETF tuple exactly as it travels, ``control[0]`` being the operation
(erl_dist_protocol "Protocol between Connected Nodes", erts `dist.h` `DOP_*`). Tuples are kept
as they are decoded, with no wrapper objects, because this sits on the hot path of every message.
Operations in `WITH_MESSAGE` are followed by a second term (the message, an exit reason for the
PAYLOAD_* ones, the argument list for SPAWN_REQUEST*); the others carry `NO_MESSAGE`.
The builders make the tuples this node sends; they need the term types of `beamlink.etf` only
through their arguments.
"""

from __future__ import annotations

from typing import Any, Final

from beamlink.etf import Atom

LINK: Final = 1
SEND: Final = 2
EXIT: Final = 3
UNLINK: Final = 4  # replaced by UNLINK_ID; mandatory UNLINK_ID makes it unused since OTP 26
NODE_LINK: Final = 5
REG_SEND: Final = 6
GROUP_LEADER: Final = 7
EXIT2: Final = 8
SEND_TT: Final = 12
EXIT_TT: Final = 13
REG_SEND_TT: Final = 16
EXIT2_TT: Final = 18
MONITOR_P: Final = 19
DEMONITOR_P: Final = 20
MONITOR_P_EXIT: Final = 21
SEND_SENDER: Final = 22
SEND_SENDER_TT: Final = 23
PAYLOAD_EXIT: Final = 24
PAYLOAD_EXIT_TT: Final = 25
PAYLOAD_EXIT2: Final = 26
PAYLOAD_EXIT2_TT: Final = 27
PAYLOAD_MONITOR_P_EXIT: Final = 28
SPAWN_REQUEST: Final = 29
SPAWN_REQUEST_TT: Final = 30
SPAWN_REPLY: Final = 31
SPAWN_REPLY_TT: Final = 32
ALIAS_SEND: Final = 33
ALIAS_SEND_TT: Final = 34
UNLINK_ID: Final = 35
UNLINK_ID_ACK: Final = 36
ALTACT_SIG_SEND: Final = 37

# Operations followed by a second term in the same frame.
WITH_MESSAGE: Final = frozenset(
    {
        SEND,
        REG_SEND,
        SEND_TT,
        REG_SEND_TT,
        SEND_SENDER,
        SEND_SENDER_TT,
        PAYLOAD_EXIT,
        PAYLOAD_EXIT_TT,
        PAYLOAD_EXIT2,
        PAYLOAD_EXIT2_TT,
        PAYLOAD_MONITOR_P_EXIT,
        SPAWN_REQUEST,
        SPAWN_REQUEST_TT,
        ALIAS_SEND,
        ALIAS_SEND_TT,
        ALTACT_SIG_SEND,
    }
)

# SPAWN_REPLY flags (erts ERTS_DIST_SPAWN_FLAG_*).
SPAWN_FLAG_LINK: Final = 1
SPAWN_FLAG_MONITOR: Final = 2

_EMPTY: Final = Atom("")


class _NoMessage:
    """The message slot of a control message that carries none."""

    _instance: _NoMessage | None = None

    def __new__(cls) -> _NoMessage:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_MESSAGE"

    def __reduce__(self) -> str:
        return "NO_MESSAGE"


NO_MESSAGE: Final = _NoMessage()


def link(from_pid: Any, to_pid: Any) -> tuple[Any, ...]:
    return (LINK, from_pid, to_pid)


def send(to_pid: Any) -> tuple[Any, ...]:
    return (SEND, _EMPTY, to_pid)


def send_sender(from_pid: Any, to_pid: Any) -> tuple[Any, ...]:
    return (SEND_SENDER, from_pid, to_pid)


def reg_send(from_pid: Any, to_name: Atom) -> tuple[Any, ...]:
    return (REG_SEND, from_pid, _EMPTY, to_name)


def alias_send(from_pid: Any, alias: Any) -> tuple[Any, ...]:
    return (ALIAS_SEND, from_pid, alias)


def exit_signal(from_pid: Any, to_pid: Any, reason: Any) -> tuple[Any, ...]:
    """EXIT (a linked process died); prefer `payload_exit` when EXIT_PAYLOAD was agreed."""
    return (EXIT, from_pid, to_pid, reason)


def payload_exit(from_pid: Any, to_pid: Any) -> tuple[Any, ...]:
    """PAYLOAD_EXIT; the reason goes in the message slot."""
    return (PAYLOAD_EXIT, from_pid, to_pid)


def exit2(from_pid: Any, to_pid: Any, reason: Any) -> tuple[Any, ...]:
    return (EXIT2, from_pid, to_pid, reason)


def payload_exit2(from_pid: Any, to_pid: Any) -> tuple[Any, ...]:
    return (PAYLOAD_EXIT2, from_pid, to_pid)


def group_leader(from_pid: Any, to_pid: Any) -> tuple[Any, ...]:
    return (GROUP_LEADER, from_pid, to_pid)


def monitor_p(from_pid: Any, to_proc: Any, ref: Any) -> tuple[Any, ...]:
    return (MONITOR_P, from_pid, to_proc, ref)


def demonitor_p(from_pid: Any, to_proc: Any, ref: Any) -> tuple[Any, ...]:
    return (DEMONITOR_P, from_pid, to_proc, ref)


def monitor_p_exit(from_proc: Any, to_pid: Any, ref: Any, reason: Any) -> tuple[Any, ...]:
    return (MONITOR_P_EXIT, from_proc, to_pid, ref, reason)


def payload_monitor_p_exit(from_proc: Any, to_pid: Any, ref: Any) -> tuple[Any, ...]:
    """PAYLOAD_MONITOR_P_EXIT; the reason goes in the message slot."""
    return (PAYLOAD_MONITOR_P_EXIT, from_proc, to_pid, ref)


def spawn_request(
    req_id: Any, from_pid: Any, group_leader_pid: Any, mfa: tuple[Any, Any, int], opts: Any
) -> tuple[Any, ...]:
    """SPAWN_REQUEST; the argument list goes in the message slot."""
    return (SPAWN_REQUEST, req_id, from_pid, group_leader_pid, mfa, opts)


def spawn_reply(req_id: Any, to_pid: Any, flags: int, result: Any) -> tuple[Any, ...]:
    return (SPAWN_REPLY, req_id, to_pid, flags, result)


def unlink_id(unlink_id_: int, from_pid: Any, to_pid: Any) -> tuple[Any, ...]:
    return (UNLINK_ID, unlink_id_, from_pid, to_pid)


def unlink_id_ack(unlink_id_: int, from_pid: Any, to_pid: Any) -> tuple[Any, ...]:
    return (UNLINK_ID_ACK, unlink_id_, from_pid, to_pid)
