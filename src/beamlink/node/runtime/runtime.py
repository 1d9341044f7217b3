"""The process runtime: spawning, sending, links, monitors, aliases, exits, and the control
messages that carry them between nodes.

Theory of operation:
- Every signal has one local meaning, implemented once here. A signal to a local process is
  applied directly; a signal to a remote process becomes a control message handed to the
  transport (`send_remote(peer, control, message) -> bool`, False when not connected); a control
  message from a peer comes in through `dispatch(peer, control, message)` and ends up in the same
  local code. `node_down(peer)` applies the ``noconnection`` rules.
- Sending to a node that is not connected starts a connection (`connect_peer`) and queues what
  is sent meanwhile, in order; if the connection fails the queue is dropped and every link,
  monitor and spawn request towards that node gets ``noconnection``, as in Erlang.
- Exit signals between local processes go through one queue drained in a loop, so a chain of
  linked processes dying never recurses.
- SEND/REG_SEND to a local process is the hot path: a dict lookup and a mailbox append.
- Counters for metrics are plain integer attributes (``delivered_remote``, ``delivered_local``,
  ``dropped``) bumped where a message lands or is dropped; nothing else runs per message.

This runtime knows nothing about sockets; a `Node` owns one and wires it to a ConnectionManager,
EPMD and the kernel services.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import logging
import reprlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from beamlink.distribution import control as ctl
from beamlink.distribution.control import NO_MESSAGE
from beamlink.etf import Atom, Charlist, Pid, Reference
from beamlink.logs import RateLimiter
from beamlink.node.atoms import (
    DOWN_TAG,
    ERROR,
    EXIT_TAG,
    KILL,
    KILLED,
    NOCONNECTION,
    NOPROC,
    NORMAL,
    OK,
    PROCESS,
    PYTHON_EXCEPTION,
    SHUTDOWN,
    SPAWN_REPLY_TAG,
    UNDEF,
)
from beamlink.node.errors import ProcessExit, UnknownName
from beamlink.node.runtime.executor import Executor, runs_inline
from beamlink.node.runtime.process import Monitor, Process, Target, Watcher
from beamlink.node.runtime.registry import Registry

log = logging.getLogger("beamlink.node")

_LINK_OPT: Final = Atom("link")
_MONITOR_OPT: Final = Atom("monitor")

# How an exit signal arrived: through a link, from exit/2, or a link-kind signal whose link is
# already gone (noproc for a link to a dead process, noconnection after a lost connection).
_VIA_LINK: Final = 0
_VIA_EXIT2: Final = 1
_VIA_LOST_LINK: Final = 2

ProcessBody = Callable[..., Any]
"""``fn(proc, *args)``: a coroutine function, or a plain function run in a worker thread."""
SendRemote = Callable[[Atom, tuple[Any, ...], Any], bool]
ConnectPeer = Callable[[Atom], Awaitable[bool]]


def exception_reason(exc: BaseException) -> tuple[Atom, bytes, bytes]:
    """The exit reason of a process whose body raised ``exc``.

    ``('python_exception', b'module.Type', b'message')``; builtins drop the module part
    (``b'ValueError'``). An Erlang peer sees ``{python_exception, <<"ValueError">>, <<"msg">>}``.
    """
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return (PYTHON_EXCEPTION, name.encode(), str(exc).encode("utf-8", "backslashreplace"))


_current_process: contextvars.ContextVar[Process | None] = contextvars.ContextVar(
    "beamlink_current_process", default=None
)


def current_process() -> Process | None:
    """The process whose body is running in the current task (spawned ones only), or None."""
    return _current_process.get()


def run_as(proc: Process, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with ``proc`` as `current_process` (a callback of ``proc`` run outside its
    task, e.g. from the mailbox's ``direct`` hook)."""
    token = _current_process.set(proc)
    try:
        return fn(*args)
    finally:
        _current_process.reset(token)


def _as_atom(name: str) -> Atom:
    return name if type(name) is Atom else Atom(name)


class ProcessRuntime:
    """Processes of one node and the signals between them and other nodes.

    ``name``/``creation`` mint the pids; ``send_remote``/``connect_peer`` reach other nodes
    (without them the runtime is local only and every remote target counts as unreachable).
    ``spawn_handlers[(module, function, arity)] = fn`` serves SPAWN_REQUESTs from other nodes:
    ``fn(proc, *args)`` is a coroutine function run as the new process. ``owner`` is what
    `Process.node` gives user code (the `Node` that owns this runtime; the runtime itself when
    it runs alone).
    """

    def __init__(
        self,
        name: str,
        creation: int,
        *,
        send_remote: SendRemote | None = None,
        connect_peer: ConnectPeer | None = None,
        owner: object = None,
        executor: Executor | None = None,
    ) -> None:
        self.owner: Any = self if owner is None else owner
        # Where synchronous user code runs (RPC targets, GenServer callbacks): worker threads.
        self.executor = Executor() if executor is None else executor
        self._name = _as_atom(name)
        self.registry = Registry(self._name, creation)
        self._pids = self.registry.pids
        self._names = self.registry.names
        self.spawn_handlers: dict[tuple[Atom, Atom, int], ProcessBody] = {}
        # The process every `genserver.call` of this node calls from (genserver makes it).
        self.gen_caller: Process | None = None
        self.undefined_mfa: dict[Pid, tuple[Atom, Atom, Any]] = {}
        self._send_remote = send_remote
        self._connect_peer = connect_peer
        self._connecting: dict[Atom, list[tuple[tuple[Any, ...], Any]]] = {}
        self._connect_tasks: set[asyncio.Task[None]] = set()
        # request id -> (requesting pid, peer)
        self._spawn_requests: dict[Reference, tuple[Pid, Atom]] = {}
        self._exit_queue: deque[tuple[Process, Pid, Any, int]] = deque()
        self._draining = False
        self._unlink_ids = itertools.count(1)
        self.system_pid = self.registry.new_pid()
        # Messages put in a local mailbox, from peers and from this node; messages to a local
        # pid, name or alias that does not exist (dropped, as in Erlang).
        self.delivered_remote = 0
        self.delivered_local = 0
        self.dropped = 0
        # One "malformed control message" line per peer per interval: no peer floods the log.
        self._malformed = RateLimiter(interval=10.0)
        self._handlers: dict[int, Callable[[Atom, tuple[Any, ...], Any], None]] = {
            ctl.LINK: self._on_link,
            ctl.EXIT: self._on_exit,
            ctl.EXIT_TT: self._on_exit_tt,
            ctl.PAYLOAD_EXIT: self._on_payload_exit,
            ctl.PAYLOAD_EXIT_TT: self._on_payload_exit,
            ctl.EXIT2: self._on_exit2,
            ctl.EXIT2_TT: self._on_exit2_tt,
            ctl.PAYLOAD_EXIT2: self._on_payload_exit2,
            ctl.PAYLOAD_EXIT2_TT: self._on_payload_exit2,
            ctl.UNLINK: self._on_old_unlink,
            ctl.UNLINK_ID: self._on_unlink_id,
            ctl.UNLINK_ID_ACK: self._on_unlink_id_ack,
            ctl.GROUP_LEADER: self._on_group_leader,
            ctl.MONITOR_P: self._on_monitor_p,
            ctl.DEMONITOR_P: self._on_demonitor_p,
            ctl.MONITOR_P_EXIT: self._on_monitor_p_exit,
            ctl.PAYLOAD_MONITOR_P_EXIT: self._on_payload_monitor_p_exit,
            ctl.SPAWN_REQUEST: self._on_spawn_request,
            ctl.SPAWN_REQUEST_TT: self._on_spawn_request,
            ctl.SPAWN_REPLY: self._on_spawn_reply,
            ctl.SPAWN_REPLY_TT: self._on_spawn_reply,
            ctl.ALIAS_SEND: self._on_alias_send,
            ctl.ALIAS_SEND_TT: self._on_alias_send,
            ctl.SEND_TT: self._on_send,
            ctl.SEND_SENDER_TT: self._on_send,
            ctl.REG_SEND_TT: self._on_reg_send,
        }

    @property
    def name(self) -> Atom:
        """This node's name as an atom."""
        return self._name

    @property
    def creation(self) -> int:
        """The 32-bit creation in every pid and reference this node mints."""
        return self.registry.creation

    def set_creation(self, creation: int) -> None:
        """Take the creation EPMD (or the node) chose; pids minted from now on carry it."""
        self.registry.creation = creation
        self.system_pid = self.registry.new_pid()

    # ------------------------------------------------------------------ processes

    def spawn(
        self,
        fn: ProcessBody,
        *args: Any,
        name: str | None = None,
        link: Pid | Process | None = None,
        trap_exit: bool = False,
    ) -> Process:
        """Start ``fn(proc, *args)`` as a new process and return it.

        ``fn`` is a coroutine function (it runs on the event loop), or a plain function, which
        runs in a worker thread of `executor` (it may block; it must not use the process API,
        which belongs to the loop's thread).

        ``name`` registers it; ``link`` links it to that pid (or process) before it runs. The
        process exits ``normal`` when ``fn`` returns, with `ProcessExit`'s reason when that is
        raised, and with `exception_reason` of any other exception.
        """
        proc = self.new_process(name=name, trap_exit=trap_exit)
        if link is not None:
            self.link(proc, link.pid if isinstance(link, Process) else link)
        self._start(proc, fn, args)
        return proc

    def new_process(self, *, name: str | None = None, trap_exit: bool = False) -> Process:
        """A process driven by the caller instead of a task (for request/response code).

        Use it as a context manager or call ``close()``; it exits ``normal`` then.
        """
        proc = Process(self, self.registry.new_pid(), trap_exit=trap_exit)
        self._pids[proc.pid] = proc
        if name is not None:
            self.register(name, proc)
        return proc

    def _start(self, proc: Process, fn: ProcessBody, args: Iterable[Any]) -> None:
        proc.task = asyncio.get_running_loop().create_task(
            self._run(proc, fn, tuple(args)), name=f"beamlink process {proc.pid}"
        )

    async def _run(self, proc: Process, fn: ProcessBody, args: tuple[Any, ...]) -> None:
        _current_process.set(proc)
        try:
            if runs_inline(fn):
                await fn(proc, *args)
            else:  # a plain function: it may block, so it runs in a worker thread
                result = await self.executor.submit(fn, proc, *args)
                if inspect.isawaitable(result):  # e.g. a lambda returning a coroutine
                    await result
        except ProcessExit as exc:
            self.terminate(proc, exc.reason)
        except asyncio.CancelledError:
            self.terminate(proc, KILLED)
            raise
        except Exception as exc:
            if proc.is_alive:
                log.error("process %s exited with an exception", proc.pid, exc_info=exc)
            self.terminate(proc, exception_reason(exc))
        except BaseException:
            self.terminate(proc, KILLED)
            raise
        else:
            self.terminate(proc, NORMAL)

    def process(self, pid: Pid) -> Process | None:
        """The live local process with ``pid``, or None."""
        return self._pids.get(pid)

    def processes(self) -> list[Process]:
        """Every live local process."""
        return list(self._pids.values())

    # ------------------------------------------------------------------ names and references

    def register(self, name: str, proc: Process) -> None:
        """Register ``proc`` under ``name`` (`NameInUse` if either already has one)."""
        self.registry.register(_as_atom(name), proc)

    def unregister(self, name: str) -> bool:
        """Remove the registered name ``name``; False if nobody held it."""
        return self.registry.unregister(_as_atom(name))

    def whereis(self, name: str) -> Pid | None:
        """The pid registered as ``name`` here, or None."""
        proc = self._names.get(_as_atom(name))
        return None if proc is None else proc.pid

    def registered(self) -> list[Atom]:
        """Every name registered on this node."""
        return list(self._names)

    def make_ref(self) -> Reference:
        """A new unique reference of this node."""
        return self.registry.make_ref()

    def alias(self, proc: Process) -> Reference:
        """A new alias of ``proc`` (see `Process.alias`)."""
        ref = self.registry.make_ref()
        proc.aliases.add(ref)
        self.registry.aliases[ref] = proc
        return ref

    def unalias(self, proc: Process, ref: Reference) -> bool:
        """Deactivate alias ``ref`` of ``proc``."""
        if ref not in proc.aliases:
            return False
        proc.aliases.discard(ref)
        self.registry.aliases.pop(ref, None)
        return True

    # ------------------------------------------------------------------ sending

    def send(
        self,
        dest: Target | Reference,
        message: Any,
        *,
        sender: Pid | None = None,
        noconnect: bool = False,
    ) -> None:
        """Send ``message`` to a pid, a local name, ``(name, node)`` or an alias.

        Local delivery is immediate. Remote sends go out as SEND, REG_SEND or ALIAS_SEND,
        connecting first if needed (the message is dropped if that fails, as in Erlang). With
        ``noconnect`` (``erlang:send/3``'s option) a remote send to a node that is not connected
        is dropped instead: system replies use it so a late reply never reconnects a node that
        was just disconnected. A send to a local name nobody holds raises `UnknownName`;
        ``(name, node)`` never raises.
        """
        # Atoms are interned, so equal atoms are the same object: `is` compares them.
        if isinstance(dest, Pid):
            proc = self._pids.get(dest)
            if proc is not None:
                proc.mailbox.put(message)
                self.delivered_local += 1
            elif dest.node is not self._name:
                self._remote(dest.node, ctl.send(dest), message, noconnect)
            else:
                self.dropped += 1
        elif isinstance(dest, tuple):
            name = dest[0]
            node = dest[1]
            if type(name) is not Atom:
                name = Atom(name)
            if type(node) is not Atom:
                node = Atom(node)
            if node is self._name:
                proc = self._names.get(name)
                if proc is not None:
                    proc.mailbox.put(message)
                    self.delivered_local += 1
                else:
                    self.dropped += 1
            else:
                self._remote(
                    node, ctl.reg_send(sender or self.system_pid, name), message, noconnect
                )
        elif isinstance(dest, str):
            proc = self._names.get(_as_atom(dest))
            if proc is None:
                raise UnknownName(f"no process is registered as {dest!r} on {self._name}")
            proc.mailbox.put(message)
            self.delivered_local += 1
        elif isinstance(dest, Reference):
            proc = self.registry.aliases.get(dest)
            if proc is not None:
                proc.mailbox.put(message)
                self.delivered_local += 1
            elif dest.node is not self._name:
                self._remote(
                    dest.node, ctl.alias_send(sender or self.system_pid, dest), message, noconnect
                )
            else:
                self.dropped += 1
        else:
            raise TypeError(
                f"cannot send to {dest!r}: use a Pid, a name, (name, node) or an alias Reference"
            )

    def _remote(
        self,
        peer: Atom,
        control: tuple[Any, ...],
        message: Any = NO_MESSAGE,
        noconnect: bool = False,
    ) -> None:
        queued = self._connecting.get(peer)
        if queued is not None:
            queued.append((control, message))
            return
        if self._send_remote is not None and self._send_remote(peer, control, message):
            return
        if noconnect:
            return
        if self._connect_peer is None:
            self.node_down(peer)
            return
        self._connecting[peer] = [(control, message)]
        task = asyncio.get_running_loop().create_task(self._connect_then_flush(peer))
        self._connect_tasks.add(task)
        task.add_done_callback(self._connect_tasks.discard)

    async def _connect_then_flush(self, peer: Atom) -> None:
        assert self._connect_peer is not None
        try:
            ok = await self._connect_peer(peer)
        except Exception as exc:
            log.info("could not connect to %s: %s", peer, exc)
            ok = False
        queued = self._connecting.pop(peer, [])
        if ok and self._send_remote is not None:
            send_remote = self._send_remote
            for control, message in queued:
                if not send_remote(peer, control, message):
                    ok = False
                    break
        if not ok:
            log.debug("dropped %d signals to unreachable node %s", len(queued), peer)
            self.node_down(peer)

    # ------------------------------------------------------------------ links and exits

    def link(self, proc: Process, pid: Pid) -> None:
        """Link ``proc`` and ``pid`` (see `Process.link`)."""
        if pid == proc.pid or proc.links.get(pid) == 0 or not proc.is_alive:
            return
        if pid.node != self._name:
            proc.links[pid] = 0
            self._remote(pid.node, ctl.link(proc.pid, pid))
            return
        other = self._pids.get(pid)
        if other is None:
            self._exit(proc, pid, NOPROC, _VIA_LOST_LINK)
            return
        proc.links[pid] = 0
        other.links[proc.pid] = 0

    def unlink(self, proc: Process, pid: Pid) -> None:
        """Remove the link between ``proc`` and ``pid`` (UNLINK_ID protocol if remote)."""
        state = proc.links.get(pid)
        if state is None or state != 0:
            return
        if pid.node != self._name:
            unlink_id = next(self._unlink_ids)
            proc.links[pid] = unlink_id
            self._remote(pid.node, ctl.unlink_id(unlink_id, proc.pid, pid))
            return
        del proc.links[pid]
        other = self._pids.get(pid)
        if other is not None:
            other.links.pop(proc.pid, None)

    def exit_signal(self, proc: Process | None, pid: Pid, reason: Any) -> None:
        """Erlang's ``exit(Pid, Reason)`` from ``proc`` (or from the node when None)."""
        sender = self.system_pid if proc is None else proc.pid
        target = self._pids.get(pid)
        if target is not None:
            self._exit(target, sender, reason, _VIA_EXIT2)
        elif pid.node != self._name:
            self._remote(pid.node, ctl.exit2(sender, pid, reason))

    def _exit(self, target: Process, sender: Pid, reason: Any, via: int) -> None:
        self._exit_queue.append((target, sender, reason, via))
        if self._draining:
            return
        self._draining = True
        try:
            queue = self._exit_queue
            while queue:
                self._apply_exit(*queue.popleft())
        finally:
            self._draining = False

    def _apply_exit(self, target: Process, sender: Pid, reason: Any, via: int) -> None:
        if not target.is_alive:
            return
        if via == _VIA_LINK:
            if target.links.get(sender) != 0:
                return  # no link, or we are unlinking: OTP 26 ignores the signal
            del target.links[sender]
        elif via == _VIA_EXIT2 and reason == KILL:
            self.terminate(target, KILLED)
            return
        if target.trap_exit:
            target.mailbox.put((EXIT_TAG, sender, reason))
        elif reason != NORMAL:
            self.terminate(target, reason)
        elif via == _VIA_EXIT2 and sender == target.pid:
            self.terminate(target, NORMAL)

    def terminate(self, proc: Process, reason: Any) -> None:
        """End ``proc`` with ``reason``: unregister it, fire its links and monitors."""
        if not proc.is_alive:
            return
        proc._mark_exited(reason)
        registry = self.registry
        self._pids.pop(proc.pid, None)
        if proc.name is not None:
            registry.unregister(proc.name)
        for ref in proc.aliases:
            registry.aliases.pop(ref, None)
        proc.aliases.clear()
        links, proc.links = proc.links, {}
        for pid, state in links.items():
            if state != 0:
                continue
            other = self._pids.get(pid)
            if other is not None:
                self._exit(other, proc.pid, reason, _VIA_LINK)
            elif pid.node != self._name:
                self._remote(pid.node, ctl.exit_signal(proc.pid, pid, reason))
        monitors, proc.monitors = proc.monitors, {}
        for ref, mon in monitors.items():
            if mon.peer is None:
                watched = self._pids.get(mon.target)  # type: ignore[arg-type]
                if watched is not None:
                    watched.monitored_by.pop(ref, None)
            else:
                self._remote(mon.peer, ctl.demonitor_p(proc.pid, mon.target, ref))
        watchers, proc.monitored_by = proc.monitored_by, {}
        for ref, watch in watchers.items():
            watcher = self._pids.get(watch.watcher)
            if watcher is not None:
                fired = watcher.monitors.pop(ref, None)
                if fired is not None:
                    watcher.mailbox.put((DOWN_TAG, ref, PROCESS, fired.item, reason))
            elif watch.watcher.node != self._name:
                self._remote(
                    watch.watcher.node, ctl.monitor_p_exit(watch.target, watch.watcher, ref, reason)
                )
        task = proc.task
        if task is not None and not task.done():
            try:
                current = asyncio.current_task()
            except RuntimeError:
                current = None
            if task is not current:
                task.cancel()

    # ------------------------------------------------------------------ monitors

    def monitor(self, proc: Process, target: Target) -> Reference:
        """Monitor ``target`` from ``proc`` (see `Process.monitor`)."""
        ref = self.registry.make_ref()
        if type(target) is Pid:
            if target.node != self._name:
                proc.monitors[ref] = Monitor(target, target, target.node)
                self._remote(target.node, ctl.monitor_p(proc.pid, target, ref))
                return ref
            watched = self._pids.get(target)
            item: Pid | tuple[Atom, Atom] = target
        else:
            if isinstance(target, tuple):
                name, node = _as_atom(target[0]), _as_atom(target[1])
            elif isinstance(target, str):
                name, node = _as_atom(target), self._name
            else:
                raise TypeError(f"cannot monitor {target!r}: use a Pid, a name or (name, node)")
            item = (name, node)
            if node != self._name:
                proc.monitors[ref] = Monitor(name, item, node)
                self._remote(node, ctl.monitor_p(proc.pid, name, ref))
                return ref
            watched = self._names.get(name)
        if watched is None:
            proc.mailbox.put((DOWN_TAG, ref, PROCESS, item, NOPROC))
        elif watched is not proc:
            proc.monitors[ref] = Monitor(watched.pid, item, None)
            watched.monitored_by[ref] = Watcher(proc.pid, watched.pid)
        return ref

    def demonitor(self, proc: Process, ref: Reference, flush: bool = False) -> bool:
        """Remove monitor ``ref`` of ``proc`` (see `Process.demonitor`)."""
        mon = proc.monitors.pop(ref, None)
        if mon is not None:
            if mon.peer is None:
                watched = self._pids.get(mon.target)  # type: ignore[arg-type]
                if watched is not None:
                    watched.monitored_by.pop(ref, None)
            else:
                self._remote(mon.peer, ctl.demonitor_p(proc.pid, mon.target, ref))
        if flush:
            proc.mailbox.remove_all(
                lambda m: type(m) is tuple and len(m) == 5 and m[0] == DOWN_TAG and m[1] == ref
            )
        return mon is not None

    # ------------------------------------------------------------------ spawn requests

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
    ) -> Reference:
        """Send a SPAWN_REQUEST from ``proc`` (see `Process.spawn_request`)."""
        node = _as_atom(node_name)
        mfa = (_as_atom(module), _as_atom(function))
        arg_list = list(args)
        req_id = self.registry.make_ref()
        if node == self._name:
            child = self._spawn_mfa(mfa[0], mfa[1], arg_list, None)
            if link:
                proc.links[child.pid] = 0
                child.links[proc.pid] = 0
            if monitor:
                proc.monitors[req_id] = Monitor(child.pid, child.pid, None)
                child.monitored_by[req_id] = Watcher(proc.pid, child.pid)
            proc.mailbox.put((SPAWN_REPLY_TAG, req_id, OK, child.pid))
            return req_id
        opts = ([_LINK_OPT] if link else []) + ([_MONITOR_OPT] if monitor else [])
        self._spawn_requests[req_id] = (proc.pid, node)
        request = ctl.spawn_request(
            req_id, proc.pid, proc.group_leader or proc.pid, (*mfa, len(arg_list)), opts
        )
        self._remote(node, request, arg_list)
        return req_id

    def _spawn_mfa(self, module: Atom, function: Atom, args: Any, leader: Pid | None) -> Process:
        """Start the process a spawn request asks for; ``args`` is the argument list as it
        arrived (an Erlang string such as ``[1]`` comes as a `Charlist`)."""
        arg_list = args.codes if isinstance(args, Charlist) else list(args)
        proc = self.new_process()
        proc.group_leader = leader
        handler = self.spawn_handlers.get((module, function, len(arg_list)))
        if handler is None:
            self.undefined_mfa[proc.pid] = (module, function, args)
            handler = self._undefined
        self._start(proc, handler, arg_list)
        return proc

    async def _undefined(self, proc: Process, *args: Any) -> None:
        """Body of a process spawned for an MFA nobody registered: exits like BEAM's ``undef``."""
        module, function, arg_term = self.undefined_mfa.pop(proc.pid)
        raise ProcessExit((UNDEF, [(module, function, arg_term, [])]))

    # ------------------------------------------------------------------ incoming control messages

    def dispatch(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        """Apply one control message from ``peer`` (see `dispatch_all`)."""
        self.dispatch_all(peer, ((control, message),))

    def dispatch_all(self, peer: Atom, messages: Iterable[tuple[tuple[Any, ...], Any]]) -> None:
        """Apply the control messages of one read from ``peer``, in order (the connection
        layer's ``on_messages``): a message for a pid or a registered name goes to its mailbox
        here, any other operation to its handler. A malformed control message is logged
        (rate-limited), a handler that fails is logged, and the rest are applied all the same."""
        pids = self._pids.get
        names = self._names.get
        handlers = self._handlers.get
        delivered = dropped = 0
        try:
            for control, message in messages:
                try:
                    op = control[0]
                    if op == ctl.SEND or op == ctl.SEND_SENDER:
                        proc = pids(control[2])
                    elif op == ctl.REG_SEND:
                        proc = names(control[3])
                    else:
                        handler = handlers(op)
                        if handler is not None:
                            handler(peer, control, message)
                        else:
                            log.debug("ignored control message %r from %s", control, peer)
                        continue
                    if proc is None:
                        dropped += 1
                    else:
                        proc.mailbox.put(message)
                        delivered += 1
                except (IndexError, TypeError, ValueError, AttributeError) as exc:
                    self._malformed.log(
                        log,
                        logging.WARNING,
                        peer,
                        "malformed control message %s from %s: %s",
                        reprlib.repr(control),
                        peer,
                        exc,
                    )
                except Exception:
                    log.exception("handler failed on a message from %s: %r", peer, control)
        finally:
            self.delivered_remote += delivered
            self.dropped += dropped

    def _deliver_remote(self, proc: Process | None, message: Any) -> None:
        if proc is not None:
            proc.mailbox.put(message)
            self.delivered_remote += 1
        else:
            self.dropped += 1

    def _on_send(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        self._deliver_remote(self._pids.get(control[2]), message)

    def _on_reg_send(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        self._deliver_remote(self._names.get(control[3]), message)

    def _on_alias_send(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        self._deliver_remote(self.registry.aliases.get(control[2]), message)

    def _on_link(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        _, sender, to = control
        proc = self._pids.get(to)
        if proc is None:
            self._remote(peer, ctl.exit_signal(to, sender, NOPROC))
        else:
            proc.links[sender] = 0

    def _exit_from_peer(self, sender: Pid, to: Pid, reason: Any, via: int) -> None:
        proc = self._pids.get(to)
        if proc is not None:
            self._exit(proc, sender, reason, via)

    def _on_exit(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        self._exit_from_peer(control[1], control[2], control[3], _VIA_LINK)

    def _on_exit_tt(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        self._exit_from_peer(control[1], control[2], control[4], _VIA_LINK)

    def _on_payload_exit(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        self._exit_from_peer(control[1], control[2], message, _VIA_LINK)

    def _on_exit2(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        self._exit_from_peer(control[1], control[2], control[3], _VIA_EXIT2)

    def _on_exit2_tt(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        self._exit_from_peer(control[1], control[2], control[4], _VIA_EXIT2)

    def _on_payload_exit2(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        self._exit_from_peer(control[1], control[2], message, _VIA_EXIT2)

    def _on_old_unlink(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        proc = self._pids.get(control[2])
        if proc is not None and proc.links.get(control[1]) == 0:
            del proc.links[control[1]]

    def _on_unlink_id(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        _, unlink_id, sender, to = control
        proc = self._pids.get(to)
        if proc is not None and proc.links.get(sender) == 0:
            del proc.links[sender]
        self._remote(peer, ctl.unlink_id_ack(unlink_id, to, sender))

    def _on_unlink_id_ack(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        _, unlink_id, sender, to = control
        proc = self._pids.get(to)
        if proc is not None and proc.links.get(sender) == unlink_id:
            del proc.links[sender]

    def _on_group_leader(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        proc = self._pids.get(control[2])
        if proc is not None and type(control[1]) is Pid:
            proc.group_leader = control[1]

    def _on_monitor_p(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        _, watcher, target, ref = control
        proc = self._pids.get(target) if type(target) is Pid else self._names.get(target)
        if proc is None:
            self._remote(peer, ctl.monitor_p_exit(target, watcher, ref, NOPROC))
        else:
            proc.monitored_by[ref] = Watcher(watcher, target)

    def _on_demonitor_p(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        _, _watcher, target, ref = control
        proc = self._pids.get(target) if type(target) is Pid else self._names.get(target)
        if proc is not None:
            proc.monitored_by.pop(ref, None)

    def _monitor_fired(self, to: Pid, ref: Reference, reason: Any) -> None:
        proc = self._pids.get(to)
        if proc is not None:
            mon = proc.monitors.pop(ref, None)
            if mon is not None:
                proc.mailbox.put((DOWN_TAG, ref, PROCESS, mon.item, reason))

    def _on_monitor_p_exit(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        self._monitor_fired(control[2], control[3], control[4])

    def _on_payload_monitor_p_exit(
        self, peer: Atom, control: tuple[Any, ...], message: Any
    ) -> None:
        self._monitor_fired(control[2], control[3], message)

    def _on_spawn_request(self, peer: Atom, control: tuple[Any, ...], args: Any) -> None:
        req_id, sender, leader, (module, function, _arity), opts = control[1:6]
        link = monitor = False
        for opt in opts:
            if opt == _LINK_OPT:
                link = True
            elif opt == _MONITOR_OPT or (type(opt) is tuple and opt and opt[0] == _MONITOR_OPT):
                monitor = True
        proc = self._spawn_mfa(module, function, args, leader)
        flags = 0
        if link:
            proc.links[sender] = 0
            flags |= ctl.SPAWN_FLAG_LINK
        if monitor:
            proc.monitored_by[req_id] = Watcher(sender, proc.pid)
            flags |= ctl.SPAWN_FLAG_MONITOR
        self._remote(peer, ctl.spawn_reply(req_id, sender, flags, proc.pid))

    def _on_spawn_reply(self, peer: Atom, control: tuple[Any, ...], message: Any) -> None:
        req_id, to, flags, result = control[1:5]
        self._spawn_requests.pop(req_id, None)
        proc = self._pids.get(to)
        if type(result) is not Pid:
            if proc is not None:
                proc.mailbox.put((SPAWN_REPLY_TAG, req_id, ERROR, result))
            return
        if proc is None:
            if flags & ctl.SPAWN_FLAG_LINK:
                self._remote(peer, ctl.exit_signal(to, result, NOPROC))
            if flags & ctl.SPAWN_FLAG_MONITOR:
                self._remote(peer, ctl.demonitor_p(to, result, req_id))
            return
        if flags & ctl.SPAWN_FLAG_LINK:
            proc.links[result] = 0
        if flags & ctl.SPAWN_FLAG_MONITOR:
            proc.monitors[req_id] = Monitor(result, result, peer)
        proc.mailbox.put((SPAWN_REPLY_TAG, req_id, OK, result))

    # ------------------------------------------------------------------ lost connections

    def node_down(self, peer: Atom) -> None:
        """The connection to ``peer`` is gone: ``noconnection`` for everything that crossed it."""
        for proc in list(self._pids.values()):
            lost = [pid for pid in proc.links if pid.node == peer]
            for pid in lost:
                if proc.links.pop(pid) == 0:
                    self._exit(proc, pid, NOCONNECTION, _VIA_LOST_LINK)
            for ref, mon in list(proc.monitors.items()):
                if mon.peer == peer:
                    del proc.monitors[ref]
                    proc.mailbox.put((DOWN_TAG, ref, PROCESS, mon.item, NOCONNECTION))
            for ref, watch in list(proc.monitored_by.items()):
                if watch.watcher.node == peer:
                    del proc.monitored_by[ref]
        for req_id, (pid, node) in list(self._spawn_requests.items()):
            if node == peer:
                del self._spawn_requests[req_id]
                requester = self._pids.get(pid)
                if requester is not None:
                    requester.mailbox.put((SPAWN_REPLY_TAG, req_id, ERROR, NOCONNECTION))

    async def shutdown(self) -> None:
        """End every local process with reason ``shutdown`` (node stop, as supervisors end their
        children at ``init:stop()``) and wait for their tasks to finish."""
        tasks = []
        for proc in list(self._pids.values()):
            self.terminate(proc, SHUTDOWN)
            if proc.task is not None:
                tasks.append(proc.task)
        for task in list(self._connect_tasks):
            task.cancel()
            tasks.append(task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.executor.shutdown()
