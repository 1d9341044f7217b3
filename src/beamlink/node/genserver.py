"""GenServer interop: Python servers that answer ``gen_server:call``/``GenServer.call``, and a client
that calls Erlang/Elixir GenServers.

Wire conventions (``gen.erl``): a call is the message ``{'$gen_call', {Pid, Tag}, Request}``; the
reply is ``{Tag, Reply}``, sent to the alias when ``Tag`` is the improper list ``[alias | Alias]``
(OTP 24+ callers) and to ``Pid`` otherwise. A cast is ``{'$gen_cast', Msg}``; anything else is a
plain message (``handle_info``).

Server side: subclass :class:`GenServer` and start it with ``await MyServer.start(node, ...)``.
Its callbacks may be coroutines (they run on the event loop) or plain methods, which run in the
node's worker pool (`Executor`) unless marked ``on_loop``: a blocking callback then blocks only its
own server, which still handles one message at a time, in order.
Client side: :func:`call` monitors the target first, so a dead or missing server (or a lost
connection) raises :class:`CallError` at once instead of waiting for the timeout; every call of a
node is made by one long-lived caller process whose mailbox hands each reply to its call.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, ClassVar, Final

from beamlink.errors import NodeError
from beamlink.etf import Atom, ImproperList, Pid, Reference
from beamlink.node.atoms import ALIAS, DOWN_TAG, GEN_CALL, GEN_CAST, NORMAL
from beamlink.node.errors import ProcessExit, UnknownName
from beamlink.node.runtime import Mailbox, Process, on_loop, run_as, runs_inline

__all__ = [
    "GEN_CALL",
    "GEN_CAST",
    "NOREPLY",
    "CallError",
    "CallTimeout",
    "From",
    "GenServer",
    "call",
    "cast",
    "gen_reply",
    "parse_call",
    "parse_cast",
    "reply",
]

From = tuple[Pid, Any]
"""``{Pid, Tag}``: who made a call and the tag its reply must carry."""


class _NoReply:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOREPLY"


NOREPLY: Final = _NoReply()
"""Return it from ``handle_call`` to answer later with :meth:`GenServer.reply`."""


def parse_call(msg: Any) -> tuple[From, Any] | None:
    """``(from_, request)`` when ``msg`` is a ``'$gen_call'`` message, else ``None``."""
    if (
        type(msg) is tuple
        and len(msg) == 3
        and msg[0] == GEN_CALL
        and type(msg[1]) is tuple
        and len(msg[1]) == 2
        and isinstance(msg[1][0], Pid)
    ):
        return msg[1], msg[2]
    return None


def parse_cast(msg: Any) -> tuple[bool, Any]:
    """``(True, payload)`` when ``msg`` is ``{'$gen_cast', Msg}``, else ``(False, None)``."""
    if type(msg) is tuple and len(msg) == 2 and msg[0] == GEN_CAST:
        return True, msg[1]
    return False, None


def gen_reply(node: Any, sender: Pid, from_: tuple[Any, Any], reply: Any) -> None:
    """Answer a ``$gen_call`` whose From is ``from_`` = ``(Pid, Tag)``, like gen:reply/2.

    ``node`` is what sends (a `Node`, or anything with its ``send``); ``sender`` the pid the
    reply comes from. A ``[alias|Alias]`` tag (an `ImproperList`) is answered by sending
    ``{Tag, Reply}`` to the alias (ALIAS_SEND), any other tag by sending it to the caller's pid.
    """
    caller, tag = from_
    if type(tag) is ImproperList and tag.items == (ALIAS,) and type(tag.tail) is Reference:
        node.send(tag.tail, (tag, reply), sender=sender)
    else:
        node.send(caller, (tag, reply), sender=sender)


def reply(proc: Any, from_: From, value: Any) -> None:
    """Answer the call ``from_`` with ``value`` from process ``proc`` (``gen_server:reply/2``)."""
    gen_reply(proc.node, proc.pid, from_, value)


class CallError(NodeError):
    """The server of a call is dead, missing or unreachable: ``reason`` is the DOWN reason
    (``noproc``, ``noconnection``, or the reason the server exited with)."""

    def __init__(self, dest: Any, reason: Any) -> None:
        super().__init__(f"call to {dest!r} failed: {reason!r}")
        self.dest = dest
        self.reason = reason


class CallTimeout(CallError, TimeoutError):
    """The server did not reply within the timeout (it may still be working on the request)."""

    def __init__(self, dest: Any, timeout: float) -> None:
        super().__init__(dest, Atom("timeout"))
        self.args = (f"call to {dest!r} got no reply within {timeout} s",)
        self.timeout = timeout


class _Calls(Mailbox):
    """Mailbox of a node's caller process: it queues nothing, it hands each reply ``{Ref, Reply}``
    and each ``'DOWN'`` to the call waiting for ``Ref`` (in ``waiting``) and drops the rest (late
    replies after a timeout, exit signals from servers that linked to the caller)."""

    __slots__ = ("last_down", "owner", "waiting")

    def __init__(self, owner: Process) -> None:
        super().__init__()
        self.owner = owner
        self.waiting: dict[Reference, asyncio.Future[Any]] = {}
        # The last DOWN that came for no waiting call: a monitor of a missing local target (or
        # of a node that cannot be reached) fires inside `monitor`, before the call waits.
        self.last_down: Any = None

    def put(self, message: Any) -> None:
        if type(message) is not tuple:
            return
        size = len(message)
        if size == 2:
            ref = message[0]
            if type(ref) is Reference:
                future = self.waiting.pop(ref, None)
                if future is not None and not future.done():
                    future.set_result(message)
                    # Demonitored here, after the call's wake-up was scheduled: the
                    # DEMONITOR_P then leaves in one write with the caller's next request.
                    self.owner.demonitor(ref)
        elif size == 5 and message[0] == DOWN_TAG and type(message[1]) is Reference:
            future = self.waiting.pop(message[1], None)
            if future is None:
                self.last_down = message
            elif not future.done():
                future.set_result(message)

    def close(self, reason: Any) -> None:
        super().close(reason)
        waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(ProcessExit(reason))


def _caller(node: Any) -> Process:
    """The node's caller process (made on first use, again if something killed it): the
    ``From`` pid of every call made with :func:`call`. Its runtime keeps it (``node`` is a
    `Node` or a `ProcessRuntime`)."""
    runtime = getattr(node, "runtime", node)
    proc: Process | None = runtime.gen_caller
    if proc is None or not proc.is_alive:
        proc = runtime.new_process(trap_exit=True)
        proc.mailbox = _Calls(proc)
        runtime.gen_caller = proc
    return proc


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


async def call(node: Any, dest: Any, request: Any, timeout: float | None = 5.0) -> Any:
    """``gen_server:call(Dest, Request, Timeout)`` from Python: returns the reply.

    ``dest`` is a pid, a registered name (local) or ``(name, node_name)``. As ``gen:do_call``
    does, the call monitors ``dest`` first, sends ``{'$gen_call', {Pid, Ref}, Request}`` (not
    reconnecting a node that is down) and waits for ``{Ref, Reply}`` or the monitor's DOWN, then
    removes the monitor. :class:`CallError` comes as soon as the target is found dead or missing
    or its node unreachable; :class:`CallTimeout` after ``timeout`` seconds (``None``: wait for
    ever), and a reply that comes later is dropped. ``Pid`` is the node's caller process, one
    long-lived process that makes every such call of the node (many at once), so a call spawns
    nothing; its mailbox hands each reply straight to the call that waits for it.
    """
    proc = _caller(node)
    calls: _Calls = proc.mailbox  # type: ignore[assignment]
    calls.last_down = None
    ref = proc.monitor(dest)
    down = calls.last_down
    if down is not None and down[1] == ref:
        raise CallError(dest, down[4])
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    calls.waiting[ref] = future  # first: a local server may answer inside the send
    timer = None if timeout is None else loop.call_later(timeout, _expire, future)
    msg = None
    try:
        with contextlib.suppress(UnknownName):  # a local name: the monitor has seen it missing
            proc.send(dest, (GEN_CALL, (proc.pid, ref), request), noconnect=True)
        msg = await future
    finally:
        if timer is not None:
            timer.cancel()
        if msg is None:  # a timeout or a cancel (a reply or a DOWN has removed the monitor)
            calls.waiting.pop(ref, None)
            proc.demonitor(ref)
    if msg is None:
        raise CallTimeout(dest, timeout or 0.0)
    if len(msg) == 2:
        return msg[1]
    raise CallError(dest, msg[4])


def cast(sender: Any, dest: Any, msg: Any) -> None:
    """``gen_server:cast(Dest, Msg)``: send ``{'$gen_cast', Msg}``; never fails."""
    sender.send(dest, (GEN_CAST, msg))


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


BATCH = 64
"""At most this many queued messages of one server are handled in one worker job."""

_QUEUE, _HERE, _POOL = range(3)
_CALL, _CAST, _INFO = range(3)


class _Resume:
    """What a server's task must do after `GenServer._direct` took a message: await
    ``step()`` (raise the callback's exception, await the awaitable it returned and reply with
    its value, or finish the worker job it started), or with no step only look at
    ``_stop_reason`` again. Put first in the server's own mailbox."""

    __slots__ = ("step",)

    def __init__(self, step: Callable[[], Awaitable[None]] | None = None) -> None:
        self.step = step


async def _raise(error: BaseException) -> None:
    raise error


class GenServer:
    """Base class of a Python server process speaking the ``gen_server`` protocol.

    Override any of :meth:`init`, :meth:`handle_call`, :meth:`handle_cast`, :meth:`handle_info` and
    :meth:`terminate`; each may be a plain or an ``async`` method. ``handle_call`` returns the reply
    (or :data:`NOREPLY` and calls :meth:`reply` later). Messages are handled one at a time, in
    arrival order. An exception in a handler ends the process with a reason carrying it (callers
    see it in their monitor, as with a crashed gen_server); :meth:`stop` ends it cleanly.

    Where callbacks run: ``async`` ones on the event loop; plain ones in a worker thread of the
    node's pool, so they may block (a database driver, a long computation) without stalling other
    servers; mark a quick plain callback ``@on_loop`` to run it inline instead. In a worker
    thread, use this class's :meth:`reply`, :meth:`cast`, :meth:`send` and :meth:`stop` (they are
    thread-safe), not the node's process API directly.
    """

    #: Registered name used when :meth:`start` is given none.
    name: ClassVar[str | None] = None
    # Where each of handle_call, handle_cast, handle_info runs when `_direct` takes its message:
    # _QUEUE (async: the task runs it), _HERE (synchronous on_loop), _POOL; set as `_run` starts.
    _placement: tuple[int, int, int]

    def __init__(self) -> None:
        self.proc: Any = None
        self._stop_reason: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._directing = False
        self._direct_job: asyncio.Future[tuple[int, Any, Any]] | None = None

    @property
    def pid(self) -> Pid:
        """The server's pid."""
        pid: Pid = self.proc.pid
        return pid

    @classmethod
    async def start(
        cls, node: Any, /, *args: Any, name: str | None = None, link: Any = None, **kwargs: Any
    ) -> GenServer:
        """Create the server (``cls(**kwargs)``), spawn its process (registered as ``name`` or the
        class attribute ``name``), run ``init(*args)`` in it and return once ``init`` has returned.
        An exception in ``init`` is raised here."""
        server = cls(**kwargs)
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        reg = name or cls.name
        server.proc = node.spawn(
            server._run, started, args, name=None if reg is None else Atom(reg), link=link
        )
        await started
        return server

    @on_loop
    def init(self, *args: Any) -> Any:
        """Called in the new process before any message is handled."""

    @on_loop
    def handle_call(self, request: Any, from_: From) -> Any:
        """Answer a call; the default crashes the server like gen_server's default."""
        raise NotImplementedError(f"{type(self).__name__} does not handle calls ({request!r})")

    @on_loop
    def handle_cast(self, msg: Any) -> Any:
        """Handle a cast; the default crashes the server like gen_server's default."""
        raise NotImplementedError(f"{type(self).__name__} does not handle casts ({msg!r})")

    @on_loop
    def handle_info(self, msg: Any) -> Any:
        """Handle any other message; the default drops it."""

    @on_loop
    def terminate(self, reason: Any) -> Any:
        """Called when the server stops. ``reason``: the one given to :meth:`stop`; the exception
        a handler raised; the exit reason when the process is ended from outside (an exit signal
        from a link, ``killed``); ``Atom('shutdown')`` when the node stops (as OTP supervisors
        stop their children at ``init:stop()``)."""

    def reply(self, from_: From, value: Any) -> None:
        """Answer the call ``from_`` (for calls whose ``handle_call`` returned NOREPLY)."""
        self._on_loop(reply, self.proc, from_, value)

    def cast(self, dest: Any, msg: Any) -> None:
        """Cast ``msg`` to another server from this one."""
        self._on_loop(cast, self.proc, dest, msg)

    def send(self, dest: Any, msg: Any) -> None:
        """Send ``msg`` to ``dest`` (a pid, a name, ``(name, node)``) from this server."""
        self._on_loop(self.proc.send, dest, msg)

    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """``fn(*args)`` now on the loop's thread, else queued to the loop (in order)."""
        if self._loop is None or threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    async def _callback(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one callback where it belongs (see the class docstring) and return its value."""
        value = fn(*args) if runs_inline(fn) else await self.proc.node.executor.submit(fn, *args)
        return await _maybe_await(value)

    def stop(self, reason: Any = NORMAL) -> None:
        """Stop after the current message: ``terminate(reason)`` runs, then the process exits."""
        self._stop_reason = reason

    async def _run(self, proc: Any, started: asyncio.Future[None], args: tuple[Any, ...]) -> None:
        self.proc = proc
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        try:
            await self._callback(self.init, *args)
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise
        started.set_result(None)
        mailbox = proc.mailbox
        self._placement = self._direct_placement()
        direct = self._direct if self._placement != (_QUEUE,) * 3 else None
        try:
            while self._stop_reason is None:
                mailbox.direct = direct
                try:
                    msg = await proc.receive()
                finally:
                    mailbox.direct = None
                if type(msg) is _Resume:
                    if msg.step is not None:
                        await msg.step()
                    continue
                if runs_inline(self._route(msg)[1]):
                    await self._handle(msg)
                else:
                    await self._handle_pooled([msg, *proc.mailbox.take_queued(BATCH - 1)])
        except BaseException as exc:
            if self._direct_job is not None:  # its marker was dropped with the mailbox
                self._direct_job.cancel()
            if isinstance(exc, ProcessExit):
                reason = exc.reason
            elif isinstance(exc, asyncio.CancelledError) and proc.exit_reason is not None:
                reason = proc.exit_reason  # ended from outside: exit signal, node stop
            else:
                reason = exc
            await self._callback(self.terminate, reason)
            raise
        await self._callback(self.terminate, self._stop_reason)
        if self._stop_reason != NORMAL:
            raise ProcessExit(self._stop_reason)

    def _direct_placement(self) -> tuple[int, int, int]:
        """Where handle_call, handle_cast and handle_info run when `_direct` takes a message."""

        def placement(fn: Callable[..., Any]) -> int:
            if inspect.iscoroutinefunction(fn):
                return _QUEUE
            return _HERE if runs_inline(fn) else _POOL

        return placement(self.handle_call), placement(self.handle_cast), placement(self.handle_info)

    def _direct(self, msg: Any) -> bool:
        """The mailbox's ``direct`` hook, installed while the server's task waits for a message
        and none is queued. The message is taken at once, inside its delivery (for a message
        from another node: in the connection's ``data_received``): a synchronous on_loop
        callback runs here and its reply leaves with that read's flush; a worker-pool callback
        is handed to a worker from here (the task then waits for that job). No task wake-up
        and no loop iteration come first. An async callback, or a message the callback sends to
        its own server, is queued for the task (returns False)."""
        if self._directing or self._stop_reason is not None:
            return False
        kind, fn, args, from_ = self._route(msg)
        where = self._placement[kind]
        proc = self.proc
        if where == _POOL:
            batch = [msg]
            job = self._direct_job = run_as(proc, self._submit, batch)
            proc.mailbox.put_first(_Resume(partial(self._finish_direct_job, batch, job)))
            return True
        if where != _HERE:
            return False
        self._directing = True
        try:
            value = run_as(proc, fn, *args)
            if inspect.isawaitable(value):
                proc.mailbox.put_first(_Resume(partial(self._answer_awaited, from_, value)))
                return True
            self._answer(from_, value)
        except BaseException as exc:  # the task raises it: the server ends as in `_handle`
            proc.mailbox.put_first(_Resume(partial(_raise, exc)))
            return True
        finally:
            self._directing = False
        if self._stop_reason is not None:
            proc.mailbox.put_first(_Resume())
        return True

    async def _finish_direct_job(
        self, batch: list[Any], job: asyncio.Future[tuple[int, Any, Any]]
    ) -> None:
        try:
            await self._finish_job(batch, job)
        finally:
            self._direct_job = None

    async def _answer_awaited(self, from_: From | None, pending: Awaitable[Any]) -> None:
        self._answer(from_, await pending)

    def _answer(self, from_: From | None, value: Any) -> None:
        """Reply ``value`` to the call ``from_`` (none for a cast or an info; none for NOREPLY)."""
        if from_ is not None and value is not NOREPLY:
            reply(self.proc, from_, value)

    def _route(
        self, msg: Any
    ) -> tuple[int, Callable[..., Any], tuple[Any, ...], From | None]:
        """``(kind, callback, its arguments, From)`` of ``msg``: a call (_CALL, handle_call,
        ``(request, from_)``, from_), a cast (_CAST, handle_cast, ``(msg,)``, None) or anything
        else (_INFO, handle_info, ``(msg,)``, None)."""
        call_ = parse_call(msg)
        if call_ is not None:
            return _CALL, self.handle_call, (call_[1], call_[0]), call_[0]
        is_cast, payload = parse_cast(msg)
        if is_cast:
            return _CAST, self.handle_cast, (payload,), None
        return _INFO, self.handle_info, (msg,), None

    async def _handle(self, msg: Any) -> None:
        _, fn, args, from_ = self._route(msg)
        self._answer(from_, await self._callback(fn, *args))

    async def _handle_pooled(self, batch: list[Any]) -> None:
        """Handle ``batch`` (the first message has a worker-pool callback; the others were queued
        behind it) in order: runs of worker-pool callbacks go to a worker as one job (one thread
        hop for the lot instead of one per message), the others run here."""
        while batch and self._stop_reason is None:
            if runs_inline(self._route(batch[0])[1]):
                await self._handle(batch[0])
                batch = batch[1:]
                continue
            batch = await self._finish_job(batch, self._submit(batch))

    def _submit(self, batch: list[Any]) -> asyncio.Future[tuple[int, Any, Any]]:
        """Hand ``batch`` to a worker (`_run_batch`); its last reply is sent as the job settles."""
        return self.proc.node.executor.submit(  # type: ignore[no-any-return]
            self._run_batch, batch, then=self._last_reply
        )

    def _last_reply(self, outcome: tuple[int, Any, Any]) -> None:
        if outcome[2] is not None:
            from_, value = outcome[2]
            reply(self.proc, from_, value)

    async def _finish_job(
        self, batch: list[Any], job: asyncio.Future[tuple[int, Any, Any]]
    ) -> list[Any]:
        """Wait for the worker job handling ``batch`` (`_run_batch`); returns what it left."""
        done, pending, _ = await job
        if pending is not None:  # batch[done]'s callback returned an awaitable
            await self._answer_awaited(self._route(batch[done])[3], pending)
            done += 1
        return batch[done:]

    def _run_batch(self, batch: list[Any]) -> tuple[int, Any, Any]:
        """In a worker thread: handle the messages of ``batch`` in order while their callbacks
        are worker-pool ones; each reply goes out as soon as its callback returns (the batch's
        last one is returned, to go out with the job's completion: one hand-over to the loop
        instead of two). Stops early (returning the index reached) after a `stop`, at a message
        whose callback runs on the loop, or when a callback returns an awaitable (returned with
        its index, to be awaited on the loop)."""
        last = len(batch) - 1
        for index, msg in enumerate(batch):
            if self._stop_reason is not None:
                return len(batch), None, None  # the process exits: the rest would be dropped
            _, fn, args, from_ = self._route(msg)
            if runs_inline(fn):
                return index, None, None
            value = fn(*args)
            if inspect.isawaitable(value):
                return index, value, None
            if from_ is not None and value is not NOREPLY:
                if index == last:
                    return len(batch), None, (from_, value)
                self._on_loop(reply, self.proc, from_, value)
        return len(batch), None, None
