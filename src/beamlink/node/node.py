"""`Node`: a Python process as a distributed Erlang node.

`Node.start` picks the name and cookie, listens, registers with EPMD (running an embedded EPMD
when none answers, and registering again if the embedded one goes away) or, in fixed-port mode,
listens on its own address and port without EPMD. The node then is the connection layer's
handler: connections come and go through `ConnectionManager`, control messages go to the process
runtime it extends (`ProcessRuntime`), nodeup/nodedown go to `NodeMonitors`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable, Generator, Iterable
from types import TracebackType
from typing import Any, overload

from beamlink.connection import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_NET_TICKTIME,
    ConnectionManager,
    DownReason,
    PeerInfo,
)
from beamlink.distribution.cookie import resolve_cookie
from beamlink.distribution.names import NodeName, NodeNameError
from beamlink.epmd import KeptRegistration, keep_registered, port_please
from beamlink.etf import Atom
from beamlink.node.errors import NodeStartError, ReceiveTimeout
from beamlink.node.globalname import GlobalApi, GlobalServer
from beamlink.node.netkernel import (
    GEN_CALL,
    IS_AUTH,
    NET_KERNEL,
    YES,
    NodeCallback,
    NodeEventStream,
    NodeMonitors,
    net_kernel,
)
from beamlink.node.rex import RpcServer
from beamlink.node.rpc import RpcApi
from beamlink.node.runtime import DOWN_TAG, ProcessRuntime, current_process
from beamlink.settings import DIST_PORT, NODE_NAME

log = logging.getLogger("beamlink.node")

DEFAULT_PING_TIMEOUT = 10.0
# Creations 0..3 are what old 2-bit creations could be; a fixed-port node picks above them.
_MIN_RANDOM_CREATION = 4


_running_nodes: list[Node] = []


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


class Node(GlobalApi, RpcApi, ProcessRuntime):
    """A distributed Erlang node in this Python process; create it with `Node.start`.

    Besides the process API of `ProcessRuntime` (``spawn``, ``send``, ``whereis``, ...):
    ``name``, ``creation``, ``nodes()``, ``connect``, ``disconnect``, ``ping``,
    ``monitor_nodes``, ``stop``; RPC and GenServer calls (``rpc``, ``rpc_cast``, ``call``,
    ``cast``, see docs/rpc.md); usable as ``async with``.
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
        )
        super().__init__(name.full, 0, send_remote=self.manager.send, connect_peer=self.connect)
        self.node_monitors = NodeMonitors()
        self._hidden_peers: set[Atom] = set()
        self._registration: KeptRegistration | None = None
        self.epmd_reregistrations = 0
        self._stopped = False
        self.port = 0
        self.rpc_server = RpcServer(self, rpc_allow)
        self.global_server = GlobalServer(self)

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
    ) -> _NodeStart:
        """Start a node: ``await Node.start(...)`` or ``async with Node.start(...) as node``.

        ``name``: ``name@host`` or a short ``name`` (default $BEAMLINK_NODE, $RELEASE_NODE).
        ``cookie``: default $BEAMLINK_COOKIE, $RELEASE_COOKIE, ~/.erlang.cookie.
        ``dist_port`` (or $ERL_DIST_PORT): fixed-port mode, no EPMD: listen on that port on the
        name's host address only and dial every peer on the same port. Otherwise the node
        listens on ``listen_host`` (default all interfaces) on a free port and registers with
        the EPMD on ``epmd_port`` (default $ERL_EPMD_PORT or 4369), starting an embedded one
        when none answers. ``net_ticktime`` as in OTP (peers silent that long are down).
        ``rpc_allow``: the Python modules RPC from other nodes may call (default: any, as any
        cookie holder is trusted in Erlang; see docs/rpc.md).
        ``listen=False``: a client-only node (control commands): it only dials, never listens
        and never registers with EPMD, so it leaves no trace on the host.
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
                on_change=self._creation_changed,
            )
            creation = await self._registration.wait_registered()
        self.manager.creation = creation
        self.registry.creation = creation
        self.system_pid = self.registry.new_pid()
        self.spawn(net_kernel, name=NET_KERNEL)
        self.rpc_server.install()
        self.global_server.install()
        _running_nodes.append(self)
        log.info("node %s up (port %d, creation %d)", self.name, self.port, creation)

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
        self.node_down(peer)
        self.node_monitors.nodedown(peer, hidden, reason)

    on_message = ProcessRuntime.dispatch

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

        Connects if needed, then makes the gen_call with a monitor, so a missing net_kernel
        fails at once. On pang the connection is dropped, as net_adm does.
        """
        peer = Atom(str(name))
        if peer == self.name:
            return True
        if not await self.connect(peer):
            return False
        with self.new_process() as proc:
            ref = proc.monitor((NET_KERNEL, peer))
            proc.send((NET_KERNEL, peer), (GEN_CALL, (proc.pid, ref), (IS_AUTH, self.name)))
            try:
                answer = await proc.receive(
                    lambda m: (
                        type(m) is tuple
                        and (
                            (len(m) == 2 and m[0] == ref)
                            or (len(m) == 5 and m[0] == DOWN_TAG and m[1] == ref)
                        )
                    ),
                    timeout,
                )
            except ReceiveTimeout:
                answer = None
            proc.demonitor(ref, flush=True)
        if answer is not None and len(answer) == 2 and answer[1] == YES:
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
        await self._shutdown_processes()
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
