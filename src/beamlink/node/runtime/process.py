"""A process: pid, mailbox, links, monitors, aliases and an optional registered name.

A `Process` is the handle Python code uses to act as an Erlang process: it receives from its own
mailbox and sends, links, monitors and exits through the runtime that owns it
(`ProcessRuntime`, which a `Node` owns; this file sees it only as the `Signals` protocol, so it
imports nothing above it). Every method here is a thin, synchronous front for that runtime,
except `receive` and `wait`, which are awaited.

The signal semantics (what an exit signal does, when DOWN fires) live in the runtime, next to
the control messages that carry them over the wire; this file only holds per-process state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any, NamedTuple, Protocol

from beamlink.etf import Atom, Pid, Reference
from beamlink.node.atoms import NORMAL
from beamlink.node.runtime.mailbox import Mailbox, Match

Target = Pid | Atom | str | tuple[Any, Any]


class Monitor(NamedTuple):
    """A monitor this process holds: on whom, what its DOWN names, and the node if remote.

    ``target`` is the monitored pid, or for a remote monitor by name the name atom; ``item`` is
    the fourth element of the DOWN message (the pid, or ``(name, node)``); ``peer`` is the remote
    node's name, or None when the target is local.
    """

    target: Pid | Atom
    item: Pid | tuple[Atom, Atom]
    peer: Atom | None


class Watcher(NamedTuple):
    """A monitor on this process: who watches, and the pid or name it was set on."""

    watcher: Pid
    target: Pid | Atom


class Signals(Protocol):
    """What a `Process` asks of its runtime (`ProcessRuntime` implements it)."""

    @property
    def owner(self) -> Any: ...

    def send(
        self, dest: Target | Reference, message: Any, *, sender: Pid | None = None, noconnect: bool = False
    ) -> None: ...

    def link(self, proc: Process, pid: Pid) -> None: ...

    def unlink(self, proc: Process, pid: Pid) -> None: ...

    def exit_signal(self, proc: Process | None, pid: Pid, reason: Any) -> None: ...

    def monitor(self, proc: Process, target: Target) -> Reference: ...

    def demonitor(self, proc: Process, ref: Reference, flush: bool = False) -> bool: ...

    def register(self, name: str, proc: Process) -> None: ...

    def unregister(self, name: str) -> bool: ...

    def alias(self, proc: Process) -> Reference: ...

    def unalias(self, proc: Process, ref: Reference) -> bool: ...

    def spawn_request(
        self,
        proc: Process,
        node_name: str,
        module: str,
        function: str,
        args: Iterable[Any],
        *,
        monitor: bool = False,
        link: bool = False,
    ) -> Reference: ...

    def terminate(self, proc: Process, reason: Any) -> None: ...


class Process:
    """One Erlang-style process living on a beamlink node.

    Attributes: ``pid``; ``node`` (the `Node` that owns it, or the bare runtime in tests);
    ``name`` (registered name
    or None); ``trap_exit`` (when True, exit signals arrive as ``('EXIT', From, Reason)``
    messages instead of ending the process); ``group_leader`` (the pid a remote spawner gave, or
    None); ``exit_reason`` (None while alive).
    """

    __slots__ = (
        "_done",
        "_runtime",
        "aliases",
        "exit_reason",
        "group_leader",
        "is_alive",
        "links",
        "mailbox",
        "monitored_by",
        "monitors",
        "name",
        "node",
        "pid",
        "task",
        "trap_exit",
    )

    def __init__(self, runtime: Signals, pid: Pid, *, trap_exit: bool = False) -> None:
        self._runtime = runtime
        self.node: Any = runtime.owner
        self.pid = pid
        self.name: Atom | None = None
        self.trap_exit = trap_exit
        self.group_leader: Pid | None = None
        self.mailbox = Mailbox()
        self.is_alive = True
        self.exit_reason: Any = None
        self.task: asyncio.Task[None] | None = None
        # linked pid -> 0 for an active link, or the id of our pending UNLINK_ID
        self.links: dict[Pid, int] = {}
        self.monitors: dict[Reference, Monitor] = {}
        self.monitored_by: dict[Reference, Watcher] = {}
        self.aliases: set[Reference] = set()
        self._done: asyncio.Future[Any] | None = None

    def __repr__(self) -> str:
        state = "alive" if self.is_alive else f"exited {self.exit_reason!r}"
        name = f" {self.name}" if self.name is not None else ""
        return f"<Process {self.pid}{name} {state}>"

    def receive(
        self, match: Match | None = None, timeout: float | None = None
    ) -> Coroutine[Any, Any, Any]:
        """Await the oldest message ``match`` accepts (any when None); see `Mailbox.receive`.

        Raises `ReceiveTimeout` after ``timeout`` seconds, `ProcessExit` if the process has exited.
        The mailbox's own coroutine is returned, not wrapped in one more (~80 ns per message).
        """
        return self.mailbox.receive(match, timeout)

    def send(self, dest: Target | Reference, message: Any, *, noconnect: bool = False) -> None:
        """Send ``message`` to a pid, a local name, ``(name, node)`` or an alias; with
        ``noconnect``, a message for a node that is not connected is dropped (no auto-connect)."""
        self._runtime.send(dest, message, sender=self.pid, noconnect=noconnect)

    def link(self, pid: Pid) -> None:
        """Link to ``pid`` (LINK if remote); a dead or unknown target sends us exit ``noproc``."""
        self._runtime.link(self, pid)

    def unlink(self, pid: Pid) -> None:
        """Remove the link to ``pid`` (UNLINK_ID if remote; exits via the link stop at once)."""
        self._runtime.unlink(self, pid)

    def exit(self, pid: Pid, reason: Any) -> None:
        """Send an exit signal to ``pid`` (Erlang's ``exit/2``; EXIT2 if remote)."""
        self._runtime.exit_signal(self, pid, reason)

    def monitor(self, target: Target) -> Reference:
        """Monitor a pid, a local name or ``(name, node)``; DOWN comes once as a message."""
        return self._runtime.monitor(self, target)

    def demonitor(self, ref: Reference, flush: bool = False) -> bool:
        """Stop monitor ``ref``; ``flush`` also drops its DOWN if queued. True if it was active."""
        return self._runtime.demonitor(self, ref, flush)

    def register(self, name: str) -> None:
        """Register this process under ``name`` (`NameInUse` if taken)."""
        self._runtime.register(name, self)

    def unregister(self) -> bool:
        """Drop this process's registered name; False if it had none."""
        if self.name is None:
            return False
        return self._runtime.unregister(self.name)

    def alias(self) -> Reference:
        """A new alias: messages sent to it (ALIAS_SEND) land in this mailbox until `unalias`."""
        return self._runtime.alias(self)

    def unalias(self, ref: Reference) -> bool:
        """Deactivate alias ``ref``; False if it was not an active alias of this process."""
        return self._runtime.unalias(self, ref)

    def spawn_request(
        self,
        node_name: str,
        module: str,
        function: str,
        args: Iterable[Any],
        *,
        monitor: bool = False,
        link: bool = False,
    ) -> Reference:
        """Ask ``node_name`` to spawn ``module:function(*args)``; returns the request id.

        The answer arrives as ``('spawn_reply', ReqId, 'ok', Pid)`` or
        ``('spawn_reply', ReqId, 'error', Reason)``; with ``monitor`` the monitor's reference is
        ReqId, with ``link`` the new process is linked to this one.
        """
        return self._runtime.spawn_request(
            self, node_name, module, function, args, monitor=monitor, link=link
        )

    def close(self, reason: Any = NORMAL) -> None:
        """End this process with ``reason`` now (links and monitors fire as for any exit)."""
        self._runtime.terminate(self, reason)

    async def wait(self) -> Any:
        """Wait until the process has exited and return its exit reason."""
        if not self.is_alive:
            return self.exit_reason
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        return await asyncio.shield(self._done)

    def _mark_exited(self, reason: Any) -> None:
        self.is_alive = False
        self.exit_reason = reason
        self.mailbox.close(reason)
        if self._done is not None and not self._done.done():
            self._done.set_result(reason)

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Process:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
