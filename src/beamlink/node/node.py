"""`Node`: a Python process as a distributed Erlang node.

`Node.start` picks the name and cookie, listens, registers with EPMD (running an embedded EPMD
when none answers, and registering again if the embedded one goes away) or, in fixed-port mode,
listens on its own address and port without EPMD. The node then is the connection layer's
handler: connections come and go through `ConnectionManager`, control messages go straight to the
process runtime it owns (``node.runtime``, a `ProcessRuntime`), nodeup/nodedown go to
`NodeMonitors`. The kernel services (`beamlink.node.kernel.SERVICES`: net_kernel, rex, global, pg)
are installed with the node as their `ServiceHost`; the public API is thin delegation to the
runtime, the services and the gen_server/RPC clients.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar, overload

from beamlink.connection import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_NET_TICKTIME,
    DEFAULT_STALL_THRESHOLD,
    ConnectionManager,
    DownReason,
    PeerInfo,
    TlsConfig,
)
from beamlink.distribution.cookie import resolve_cookie
from beamlink.distribution.names import NodeName, NodeNameError
from beamlink.epmd import KeptRegistration, keep_registered, port_please
from beamlink.etf import Atom, Export, Fun, Pid, Reference
from beamlink.node import genserver, rpc
from beamlink.node.atoms import YES
from beamlink.node.errors import NodeStartError
from beamlink.node.kernel import SERVICES, KernelOptions, KernelService
from beamlink.node.kernel.globalname import GlobalServer, GlobalService
from beamlink.node.kernel.net_kernel import IS_AUTH, NET_KERNEL
from beamlink.node.kernel.pg import PgScope, PgService
from beamlink.node.kernel.rex import RpcServer
from beamlink.node.monitors import NodeCallback, NodeEventStream, NodeMonitors
from beamlink.node.runtime import (
    Executor,
    Process,
    ProcessBody,
    ProcessRuntime,
    Target,
    current_process,
)
from beamlink.settings import DEFAULT_WORKERS, DIST_PORT, NODE_NAME, SSL_DIST_OPTFILE

log = logging.getLogger("beamlink.node")

DEFAULT_PING_TIMEOUT = 10.0
# Creations 0..3 are what old 2-bit creations could be; a fixed-port node picks above them.
_MIN_RANDOM_CREATION = 4


_running_nodes: list[Node] = []

S = TypeVar("S")


def current_node() -> Node:
    """The node of the process running this code, else the node started last that still runs.

    Raises RuntimeError when no node runs in this Python process.
    """
    proc = current_process()
    if proc is not None and isinstance(proc.node, Node):
        return proc.node
    if not _running_nodes:
        raise RuntimeError("no beamlink node is running in this process; start one with Node.start")
    return _running_nodes[-1]


def resolve_node_name(name: str | None = None) -> NodeName:
    """The node name: ``name``, else $BEAMLINK_NODE, else $RELEASE_NODE (`beamlink.settings`).

    ``name@host`` is a long or short name depending on the host; a bare ``name`` is a short
    name on this machine (like ``erl -sname name``). A missing or malformed name raises
    `SettingsError` naming where it came from.
    """
    setting = NODE_NAME.require(name)
    text = setting.value
    try:
        return NodeName.parse(text) if "@" in text else NodeName.short(text)
    except NodeNameError as exc:
        raise NODE_NAME.invalid(text, setting.source, str(exc)) from None


def resolve_dist_port(dist_port: int | None = None) -> int | None:
    """The fixed distribution port: ``dist_port``, else $ERL_DIST_PORT, else None (use EPMD).

    A port outside 1..65535 raises `SettingsError`.
    """
    return DIST_PORT.get(dist_port)


def resolve_tls(tls: TlsConfig | None = None) -> TlsConfig | None:
    """``tls``, else the ssl_dist_optfile named by $BEAMLINK_SSL_DIST_OPTFILE, else None (plain
    TCP). A bad file raises `OptfileError`."""
    if tls is not None:
        return tls
    path = SSL_DIST_OPTFILE.get()
    if path is None:
        return None
    from beamlink.connection import load_optfile  # with its term parser: only for an optfile

    return load_optfile(path)


def _epmd_addresses(listen_host: str | None) -> list[str] | None:
    """Where an embedded EPMD listens: everywhere, or ``listen_host`` and the loopback
    address the node registers through."""
    if listen_host is None or listen_host in ("0.0.0.0", "::", ""):
        return None
    return list(dict.fromkeys([listen_host, "127.0.0.1"]))


async def _host_address(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, None, family=socket.AF_INET, type=socket.SOCK_STREAM
    )
    if not infos:
        raise NodeStartError(f"cannot resolve host {host!r}")
    return str(infos[0][4][0])


class Node:
    """A distributed Erlang node in this Python process; create it with `Node.start`.

    The process API (``spawn``, ``send``, ``whereis``, ...) of the runtime it owns
    (``runtime``); ``name``, ``creation``, ``nodes()``, ``connect``, ``disconnect``, ``ping``,
    ``monitor_nodes``, ``stop``; RPC and GenServer calls (``rpc``, ``rpc_cast``, ``call``,
    ``cast``, see docs/rpc.md); the global name registry (``global_*``, docs/global.md); pg
    process groups (``pg``, ``pg_scope``, docs/pg.md); usable
    as ``async with``. The kernel services are ``services`` (see `service`).
    """

    def __init__(
        self,
        name: NodeName,
        cookie: str,
        *,
        hidden: bool = False,
        net_ticktime: float = DEFAULT_NET_TICKTIME,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        dist_port: int | None = None,
        epmd_port: int | None = None,
        rpc_allow: Iterable[str] | None = None,
        tls: TlsConfig | None = None,
        stall_threshold: float = DEFAULT_STALL_THRESHOLD,
        workers: int = DEFAULT_WORKERS,
        processes: int = 0,
    ) -> None:
        """Prefer `Node.start`, which also listens and registers."""
        self.node_name = name
        self.hidden = hidden
        self.dist_port = dist_port
        self.epmd_port = epmd_port
        self.manager = ConnectionManager(
            local_name=name.full,
            cookie=cookie,
            creation=0,
            handler=self,
            resolver=self._resolve,
            hidden=hidden,
            net_ticktime=net_ticktime,
            handshake_timeout=handshake_timeout,
            tls=tls,
            stall_threshold=stall_threshold,
        )
        self.runtime = ProcessRuntime(
            name.full,
            0,
            send_remote=self.manager.send,
            connect_peer=self.connect,
            owner=self,
            executor=Executor(workers, processes),
        )
        # The connection layer's hot path: bound methods of the runtime, no hop through Node;
        # on_messages takes all the messages of one read in one call.
        self.on_message = self.runtime.dispatch
        self.on_messages = self.runtime.dispatch_all
        self.node_monitors = NodeMonitors()
        self._hidden_peers: set[Atom] = set()
        self._registration: KeptRegistration | None = None
        self.epmd_reregistrations = 0
        self._stopped = False
        self.port = 0
        options = KernelOptions(rpc_allow=rpc_allow)
        self.services: tuple[KernelService, ...] = tuple(make(options) for make in SERVICES)
        self._installed = False

    @classmethod
    def start(
        cls,
        name: str | None = None,
        cookie: str | None = None,
        *,
        hidden: bool = False,
        net_ticktime: float = DEFAULT_NET_TICKTIME,
        dist_port: int | None = None,
        epmd_port: int | None = None,
        listen_host: str | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        rpc_allow: Iterable[str] | None = None,
        listen: bool = True,
        tls: TlsConfig | None = None,
        stall_threshold: float = DEFAULT_STALL_THRESHOLD,
        workers: int = DEFAULT_WORKERS,
        processes: int = 0,
    ) -> _NodeStart:
        """Start a node: ``await Node.start(...)`` or ``async with Node.start(...) as node``.

        ``name``: ``name@host`` or a short ``name`` (default $BEAMLINK_NODE, $RELEASE_NODE).
        ``cookie``: default $BEAMLINK_COOKIE, $RELEASE_COOKIE, ~/.erlang.cookie.
        ``dist_port`` (or $ERL_DIST_PORT): fixed-port mode, no EPMD: listen on that port on the
        name's host address only and dial every peer on the same port. Otherwise the node
        listens on ``listen_host`` (default all interfaces) on a free port and registers with
        the EPMD on ``epmd_port`` (default $ERL_EPMD_PORT or 4369), starting an embedded one
        when none answers (on ``listen_host`` and 127.0.0.1 when ``listen_host`` is given). ``net_ticktime`` as in OTP (peers silent that long are down).
        ``rpc_allow``: the Python modules RPC from other nodes may call (default: any, as any
        cookie holder is trusted in Erlang; see docs/rpc.md).
        ``listen=False``: a client-only node (control commands): it only dials, never listens
        and never registers with EPMD, so it leaves no trace on the host.
        ``tls``: TLS distribution, as OTP's ``-proto_dist inet_tls``: a `TlsConfig` holding the
        ``ssl.SSLContext`` of each side (``TlsConfig(server=..., client=...)``), or one read from
        an OTP ssl_dist_optfile with `load_optfile`. Default: the optfile named by
        $BEAMLINK_SSL_DIST_OPTFILE, else plain TCP (docs/tls.md).
        ``stall_threshold``: seconds the event loop may be blocked before a WARNING names what
        blocked it (docs/node.md, "Blocking code"); ticks to peers go on regardless.
        ``workers``: threads synchronous RPC targets and GenServer callbacks run in, at most that
        many at once (default 64); ``processes``: worker processes for functions marked
        ``cpu_bound`` (default 0: none, they run in the threads). See docs/node.md.
        """
        return _NodeStart(
            cls._boot(
                name,
                cookie,
                hidden=hidden,
                net_ticktime=net_ticktime,
                dist_port=dist_port,
                epmd_port=epmd_port,
                listen_host=listen_host,
                handshake_timeout=handshake_timeout,
                rpc_allow=rpc_allow,
                listen=listen,
                tls=tls,
                stall_threshold=stall_threshold,
                workers=workers,
                processes=processes,
            )
        )

    @classmethod
    async def _boot(
        cls,
        name: str | None,
        cookie: str | None,
        *,
        hidden: bool,
        net_ticktime: float,
        dist_port: int | None,
        epmd_port: int | None,
        listen_host: str | None,
        handshake_timeout: float,
        rpc_allow: Iterable[str] | None,
        listen: bool,
        tls: TlsConfig | None,
        stall_threshold: float,
        workers: int,
        processes: int,
    ) -> Node:
        node = cls(
            resolve_node_name(name),
            resolve_cookie(cookie),
            hidden=hidden,
            net_ticktime=net_ticktime,
            handshake_timeout=handshake_timeout,
            dist_port=resolve_dist_port(dist_port),
            epmd_port=epmd_port,
            rpc_allow=rpc_allow,
            tls=resolve_tls(tls),
            stall_threshold=stall_threshold,
            workers=workers,
            processes=processes,
        )
        try:
            await node._start_distribution(listen_host, listen)
        except BaseException:
            await node.stop()
            raise
        return node

    async def _start_distribution(self, listen_host: str | None, listen: bool) -> None:
        if not listen:
            creation = secrets.randbelow(0xFFFFFFFF - _MIN_RANDOM_CREATION) + _MIN_RANDOM_CREATION
        elif self.dist_port is not None:
            host = listen_host or await _host_address(self.node_name.host)
            self.port = await self.manager.listen(host, self.dist_port)
            creation = secrets.randbelow(0xFFFFFFFF - _MIN_RANDOM_CREATION) + _MIN_RANDOM_CREATION
        else:
            self.port = await self.manager.listen(listen_host or "0.0.0.0", 0)
            self._registration = await keep_registered(
                self.node_name.name,
                self.port,
                hidden=self.hidden,
                epmd_port=self.epmd_port,
                addresses=_epmd_addresses(listen_host),
                on_change=self._creation_changed,
            )
            creation = await self._registration.wait_registered()
        self.manager.creation = creation
        self.runtime.set_creation(creation)
        for service in self.services:
            service.install(self)
        self._installed = True
        _running_nodes.append(self)
        if listen:
            log.info("node %s up (port %d, creation %d)", self.name, self.port, creation)
        else:
            log.info("node %s up (not listening, creation %d)", self.name, creation)

    @property
    def registration(self) -> KeptRegistration | None:
        """The EPMD registration kept by this node (None without EPMD: fixed port, client only)."""
        return self._registration

    def _creation_changed(self, creation: int) -> None:
        self.epmd_reregistrations += 1
        log.info(
            "%s registered again with EPMD (creation %d); pids keep creation %d",
            self.name,
            creation,
            self.creation,
        )

    async def _resolve(self, peer: Atom) -> tuple[str, int]:
        target = NodeName.parse(str(peer))
        if self.dist_port is not None:
            return target.host, self.dist_port
        address = await port_please(target.host, target.name, epmd_port=self.epmd_port)
        return target.host, address.port

    # ------------------------------------------------------------------ ConnectionHandler

    def on_nodeup(self, peer: Atom, info: PeerInfo) -> None:
        if info.hidden:
            self._hidden_peers.add(peer)
        log.debug("nodeup %s%s", peer, " (hidden)" if info.hidden else "")
        self.node_monitors.nodeup(peer, info.hidden)

    def on_nodedown(self, peer: Atom, reason: DownReason) -> None:
        hidden = peer in self._hidden_peers
        self._hidden_peers.discard(peer)
        log.debug("nodedown %s: %s", peer, reason)
        self.runtime.node_down(peer)
        self.node_monitors.nodedown(peer, hidden, reason)

    # ------------------------------------------------------------------ kernel services

    def service(self, kind: type[S]) -> S | None:
        """The kernel service of type ``kind`` (e.g. `RpcServer`), or None."""
        for service in self.services:
            if isinstance(service, kind):
                return service
        return None

    def _service(self, kind: type[S]) -> S:
        found = self.service(kind)
        if found is None:
            raise LookupError(f"{self.name} runs no {kind.__name__} service")
        return found

    @property
    def rpc_server(self) -> RpcServer:
        """The RPC service (``rpc_server.resolver.modules`` serves Python objects, docs/rpc.md)."""
        return self._service(RpcServer)

    @property
    def global_server(self) -> GlobalServer:
        """The ``global_name_server`` state (known nodes, names, sessions)."""
        return self._service(GlobalService).server

    # ------------------------------------------------------------------ the runtime's API

    @property
    def name(self) -> Atom:
        """This node's name as an atom."""
        return self.runtime.name

    @property
    def creation(self) -> int:
        """The 32-bit creation in every pid and reference this node mints."""
        return self.runtime.creation

    @property
    def executor(self) -> Executor:
        """The worker pool synchronous user code runs in (docs/node.md, "Blocking code")."""
        return self.runtime.executor

    @property
    def spawn_handlers(self) -> dict[tuple[Atom, Atom, int], ProcessBody]:
        """SPAWN_REQUEST services: ``spawn_handlers[(module, function, arity)] = fn``."""
        return self.runtime.spawn_handlers

    @property
    def system_pid(self) -> Pid:
        """The pid signals sent by the node itself (not by a process) come from."""
        return self.runtime.system_pid

    @property
    def delivered_remote(self) -> int:
        """Messages from peers put in a local mailbox."""
        return self.runtime.delivered_remote

    @property
    def delivered_local(self) -> int:
        """Messages from this node put in a local mailbox."""
        return self.runtime.delivered_local

    @property
    def dropped(self) -> int:
        """Messages to a local pid, name or alias that does not exist."""
        return self.runtime.dropped

    def spawn(
        self,
        fn: ProcessBody,
        *args: Any,
        name: str | None = None,
        link: Pid | Process | None = None,
        trap_exit: bool = False,
    ) -> Process:
        """Start ``fn(proc, *args)`` as a new process; see `ProcessRuntime.spawn`."""
        return self.runtime.spawn(fn, *args, name=name, link=link, trap_exit=trap_exit)

    def new_process(self, *, name: str | None = None, trap_exit: bool = False) -> Process:
        """A process driven by the caller; see `ProcessRuntime.new_process`."""
        return self.runtime.new_process(name=name, trap_exit=trap_exit)

    def send(
        self,
        dest: Target | Reference,
        message: Any,
        *,
        sender: Pid | None = None,
        noconnect: bool = False,
    ) -> None:
        """Send to a pid, a local name, ``(name, node)`` or an alias; see `ProcessRuntime.send`."""
        self.runtime.send(dest, message, sender=sender, noconnect=noconnect)

    def exit_signal(self, proc: Process | None, pid: Pid, reason: Any) -> None:
        """Erlang's ``exit(Pid, Reason)`` from ``proc`` (or from the node when None)."""
        self.runtime.exit_signal(proc, pid, reason)

    def process(self, pid: Pid) -> Process | None:
        """The live local process with ``pid``, or None."""
        return self.runtime.process(pid)

    def processes(self) -> list[Process]:
        """Every live local process."""
        return self.runtime.processes()

    def register(self, name: str, proc: Process) -> None:
        """Register ``proc`` under ``name`` (`NameInUse` if either already has one)."""
        self.runtime.register(name, proc)

    def unregister(self, name: str) -> bool:
        """Remove the registered name ``name``; False if nobody held it."""
        return self.runtime.unregister(name)

    def whereis(self, name: str) -> Pid | None:
        """The pid registered as ``name`` here, or None."""
        return self.runtime.whereis(name)

    def registered(self) -> list[Atom]:
        """Every name registered on this node."""
        return self.runtime.registered()

    def make_ref(self) -> Reference:
        """A new unique reference of this node."""
        return self.runtime.make_ref()

    # ------------------------------------------------------------------ RPC and gen_server

    async def rpc(
        self,
        peer: Atom | str,
        module: Atom | str,
        function: Atom | str,
        args: Sequence[Any] = (),
        *,
        timeout: float | None = None,
    ) -> Any:
        """``erpc:call(Peer, Module, Function, Args, Timeout)``; see `beamlink.node.rpc.call`."""
        return await rpc.call(self, peer, module, function, args, timeout=timeout)

    def rpc_cast(
        self, peer: Atom | str, module: Atom | str, function: Atom | str, args: Sequence[Any] = ()
    ) -> None:
        """``erpc:cast(Peer, Module, Function, Args)``; see `beamlink.node.rpc.cast`."""
        rpc.cast(self, peer, module, function, args)

    async def call(self, dest: Any, request: Any, timeout: float | None = 5.0) -> Any:
        """``gen_server:call(Dest, Request, Timeout)``; see `beamlink.node.genserver.call`."""
        return await genserver.call(self, dest, request, timeout)

    def cast(self, dest: Any, msg: Any) -> None:
        """``gen_server:cast(Dest, Msg)``; see `beamlink.node.genserver.cast`."""
        genserver.cast(self, dest, msg)

    # ------------------------------------------------------------------ global names

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
        return await self._service(GlobalService).register(name, pid, method)

    async def global_re_register(
        self, name: Any, pid: Pid | Process, method: str | Export | Fun = "random_exit_name"
    ) -> None:
        """``global:re_register_name/3``: point ``name`` at ``pid`` even if it is taken."""
        await self._service(GlobalService).re_register(name, pid, method)

    async def global_unregister(self, name: Any) -> None:
        """``global:unregister_name/1``."""
        await self._service(GlobalService).unregister(name)

    async def global_whereis(self, name: Any) -> Pid | None:
        """``global:whereis_name/1``: the pid, or None."""
        return self._service(GlobalService).whereis(name)

    def global_names(self) -> list[Any]:
        """``global:registered_names/0``."""
        return self._service(GlobalService).names()

    def global_send(self, name: Any, message: Any) -> Pid:
        """``global:send/2``: send to the pid registered as ``name`` and return it;
        `UnknownName` when nobody holds the name (Erlang exits with badarg)."""
        return self._service(GlobalService).send(name, message)

    async def global_sync(self, timeout: float | None = None) -> None:
        """``global:sync()``: wait until global has synced with every connected visible node.

        ``TimeoutError`` after ``timeout`` seconds (``None``: no limit, as in Erlang).
        """
        await asyncio.wait_for(self._service(GlobalService).sync(), timeout)

    # ------------------------------------------------------------------ pg process groups

    @property
    def pg(self) -> PgScope:
        """The default ``pg`` scope (started on first use): ``node.pg.join(group, proc)``,
        ``get_members``, ``monitor``, ``broadcast``... shared with every node running ``pg``;
        see docs/pg.md."""
        return self._service(PgService).scope()

    def pg_scope(self, name: str | Atom) -> PgScope:
        """The pg scope ``name`` (``pg:start_link(Name)`` on first use), e.g. Phoenix.PubSub's
        ``"Elixir.Phoenix.PubSub"``; see docs/pg.md."""
        return self._service(PgService).scope(name)

    # ------------------------------------------------------------------ public node API

    def nodes(self, *, hidden: bool = False) -> list[Atom]:
        """Connected visible nodes, like ``erlang:nodes()``; ``hidden=True`` adds hidden ones."""
        return self.manager.connected_nodes(visible_only=not hidden)

    async def connect(self, name: str) -> bool:
        """Connect to node ``name`` (``net_kernel:connect_node/1``); True when connected."""
        if self._stopped:
            return False
        try:
            return await self.manager.connect(str(name))
        except Exception as exc:
            log.info("connecting to %s failed: %s", name, exc)
            return False

    async def disconnect(self, name: str) -> bool:
        """Close the connection to ``name``; True if there was one (nodedown follows)."""
        return await self.manager.disconnect(str(name))

    async def ping(self, name: str, timeout: float | None = DEFAULT_PING_TIMEOUT) -> bool:
        """``net_adm:ping/1``: True (pong) when ``name``'s net_kernel answers ``is_auth``.

        Connects if needed, then makes the gen_server call (`beamlink.node.genserver.call`,
        which monitors first, so a missing net_kernel fails at once). On pang the connection is dropped, as net_adm does.
        """
        peer = Atom(str(name))
        if peer == self.name:
            return True
        if not await self.connect(peer):
            return False
        try:
            answer = await genserver.call(self, (NET_KERNEL, peer), (IS_AUTH, self.name), timeout)
        except genserver.CallError:  # net_kernel missing or down, or no answer in time
            answer = None
        if answer == YES:
            return True
        await self.disconnect(peer)
        return False

    @overload
    def monitor_nodes(self) -> NodeEventStream: ...

    @overload
    def monitor_nodes(self, callback: NodeCallback) -> Callable[[], None]: ...

    def monitor_nodes(
        self, callback: NodeCallback | None = None
    ) -> NodeEventStream | Callable[[], None]:
        """``net_kernel:monitor_nodes(true)``: nodeup/nodedown as `NodeEvent`s.

        With ``callback``: it is called for each event and an unsubscribe function is returned.
        Without: an async iterator of events (``async for ev in node.monitor_nodes()``), which is
        also an async context manager; ``close()`` it when done.
        """
        if callback is None:
            return self.node_monitors.stream()
        return self.node_monitors.subscribe(callback)

    async def stop(self) -> None:
        """Leave the cluster: close every connection, end every process, unregister from EPMD
        (stopping the embedded EPMD if this node runs it). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await self.manager.close()
        if self._installed:
            for service in reversed(self.services):
                service.stop()
        await self.runtime.shutdown()
        if self._registration is not None:
            await self._registration.close()
        self.node_monitors.close()
        if self in _running_nodes:
            _running_nodes.remove(self)
        log.info("node %s stopped", self.name)

    async def __aenter__(self) -> Node:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class _NodeStart:
    """What `Node.start` returns: await it for the node, or use it as ``async with``."""

    def __init__(self, starting: Any) -> None:
        self._starting = starting
        self._node: Node | None = None

    def __await__(self) -> Generator[Any, None, Node]:
        return self._starting.__await__()  # type: ignore[no-any-return]

    async def __aenter__(self) -> Node:
        self._node = await self._starting
        return self._node

    async def __aexit__(self, *exc: object) -> None:
        if self._node is not None:
            await self._node.stop()
