"""The ``gossip`` strategy: UDP heartbeats over multicast, broadcast or a unicast peer list.

Every node sends a heartbeat carrying its name at once on start, then every ``heartbeat_min``..
``heartbeat_max`` ms (random), and listens on the same port. A valid heartbeat from a node not
heard recently wakes the reconcile loop, which connects at once; ``discover()`` returns the nodes
heard within ``node_ttl``. Datagrams are parsed by ``beamlink.cluster.heartbeat`` (sans-I/O);
rejected ones are counted in ``dropped`` by reason and reported as ``DatagramDropped``.

Bounds (a forged heartbeat costs the sender one datagram; it must not cost us a dial): each
sender address may deliver ``sender_rate`` heartbeats per second (burst of twice that), at most
``max_nodes`` names are held, names outside ``allow`` are never held, and each ``discover()``
hands out at most ``max_new_per_round`` names not handed out before (the rest follow in the
next rounds). Drops for these reasons (``rate``, ``full``, ``not-allowed``) are only counted.

Socket trouble never ends the strategy: send and receive errors are logged, the socket is
closed and reopened on the next heartbeat (the same goes for a socket that failed to open).
IPv4 and IPv6 both work; the family follows ``if_addr``/``multicast_addr``/the peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import struct
import time
from collections import Counter
from typing import Any

from beamlink.cluster.events import DatagramDropped
from beamlink.cluster.heartbeat import (
    HeartbeatRejected,
    Heartbeats,
    LibclusterHeartbeats,
    SealedHeartbeats,
)
from beamlink.cluster.schema import GossipConfig, split_host_port
from beamlink.cluster.strategies.allow import AllowList
from beamlink.cluster.strategies.base import Discovery, Strategy, StrategyContext

log = logging.getLogger("beamlink.cluster")

_MAX_SENDERS = 4096  # sender addresses whose rate is tracked (oldest forgotten first)


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, strategy: GossipStrategy) -> None:
        self.strategy = strategy

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.strategy.received(data, f"{addr[0]}:{addr[1]}")

    def error_received(self, exc: Exception) -> None:
        self.strategy.socket_failed(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.strategy.socket_failed(exc)


class GossipStrategy(Strategy[GossipConfig]):
    """libcluster's Gossip, authenticated (or libcluster-compatible), IPv4 and IPv6."""

    def __init__(self, config: GossipConfig, context: StrategyContext) -> None:
        super().__init__(config, context)
        self.codec: Heartbeats = (
            LibclusterHeartbeats(config.secret)
            if config.libcluster_compat
            else SealedHeartbeats(config.secret or "", max_skew_ms=config.max_clock_skew)
        )
        self.heard: dict[str, float] = {}
        self.allow = AllowList(context.topology, config.allow) if config.allow else None
        self._handed_out: set[str] = set()
        self._buckets: dict[str, tuple[float, float]] = {}
        self.dropped: Counter[str] = Counter()
        self.socket_errors = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._sender: asyncio.Task[None] | None = None
        self._family = self._address_family()

    def _address_family(self) -> socket.AddressFamily:
        config = self.config
        probe = {
            "multicast": config.multicast_addr,
            "broadcast": config.if_addr,
            "unicast": config.if_addr,
        }[config.transport]
        if config.transport == "unicast" and config.if_addr in ("0.0.0.0", "::"):
            probe = split_host_port(config.peers[0], config.port)[0]
        version = ipaddress.ip_address(probe).version
        return socket.AF_INET6 if version == 6 else socket.AF_INET

    @property
    def local_address(self) -> tuple[str, int] | None:
        """The bound (address, port), when the socket is open."""
        if self._transport is None:
            return None
        sockname = self._transport.get_extra_info("sockname")
        return (sockname[0], sockname[1]) if sockname else None

    async def start(self) -> None:
        if self.config.libcluster_compat:
            log.warning(
                "[%s] gossip in libcluster_compat mode: heartbeats are not authenticated, anyone "
                "on the network can announce names; only names in allow = %s are dialled",
                self.context.topology,
                list(self.config.allow),
            )
        await self._open()
        self._sender = asyncio.create_task(self._heartbeat_loop(), name="beamlink-gossip-sender")

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        self._close_socket()

    async def discover(self) -> Discovery:
        horizon = time.monotonic() - self.config.node_ttl / 1000
        self.heard = {node: seen for node, seen in self.heard.items() if seen >= horizon}
        self._handed_out &= self.heard.keys()
        budget = self.config.max_new_per_round
        for node in self.heard:
            if budget <= 0:
                self.context.wakeup.set()  # more to hand out: next round at once
                break
            if node not in self._handed_out:
                self._handed_out.add(node)
                budget -= 1
        return Discovery(frozenset(self._handed_out))

    def received(self, data: bytes, sender: str) -> None:
        if not self._within_rate(sender.rpartition(":")[0] or sender):
            self.dropped["rate"] += 1
            return
        try:
            node = self.codec.open(data)
        except HeartbeatRejected as exc:
            self._drop(exc.reason, sender)
            return
        if node == self.context.self_name:
            return
        fresh = node not in self.heard
        if fresh:
            if self.allow is not None and not self.allow.filter((node,)):
                self.dropped["not-allowed"] += 1
                return
            if len(self.heard) >= self.config.max_nodes:
                self.dropped["full"] += 1
                return
        self.heard[node] = time.monotonic()
        if fresh:
            self.context.wakeup.set()

    def _within_rate(self, address: str) -> bool:
        """Token bucket per sender address: ``sender_rate``/s, bursts of twice that."""
        rate = self.config.sender_rate
        now = time.monotonic()
        tokens, last = self._buckets.pop(address, (2 * rate, now))
        tokens = min(2 * rate, tokens + (now - last) * rate)
        if len(self._buckets) >= _MAX_SENDERS:
            del self._buckets[next(iter(self._buckets))]
        if tokens < 1:
            self._buckets[address] = (tokens, now)
            return False
        self._buckets[address] = (tokens - 1, now)
        return True

    def _drop(self, reason: str, sender: str) -> None:
        self.dropped[reason] += 1
        self.context.emit(DatagramDropped(self.context.topology, reason, sender))

    def socket_failed(self, exc: BaseException) -> None:
        """Log ``exc``; the socket is reopened before the next heartbeat."""
        self.socket_errors += 1
        log.warning("[%s] gossip socket error: %s", self.context.topology, exc)
        self._close_socket()

    def _close_socket(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    async def _open(self) -> None:
        try:
            sock = self._make_socket()
        except OSError as exc:
            self.socket_errors += 1
            log.warning("[%s] cannot open gossip socket: %s", self.context.topology, exc)
            return
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Receiver(self), sock=sock)
        self._transport = transport

    def _make_socket(self) -> socket.socket:
        config = self.config
        v6 = self._family == socket.AF_INET6
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if config.transport != "unicast" and hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if config.transport == "broadcast":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            bind_addr = config.if_addr
            if v6 and bind_addr == "0.0.0.0":
                bind_addr = "::"
            sock.bind((bind_addr, config.port))
            if config.transport == "multicast":
                self._join(sock, v6)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def _join(self, sock: socket.socket, v6: bool) -> None:
        config = self.config
        group = socket.inet_pton(self._family, config.multicast_addr)
        if v6:
            any_interface = struct.pack("@I", 0)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group + any_interface)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, config.multicast_ttl)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
            return
        interface = socket.inet_aton(config.multicast_if or "0.0.0.0")
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group + interface)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, config.multicast_ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        if config.multicast_if is not None:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, interface)

    def destinations(self) -> list[tuple[str, int]]:
        """Where each heartbeat goes."""
        config = self.config
        if config.transport == "multicast":
            return [(config.multicast_addr, config.port)]
        if config.transport == "broadcast":
            return [(config.broadcast_addr, config.port)]
        return [split_host_port(peer, config.port) for peer in config.peers]

    def send_heartbeat(self) -> None:
        """Send one heartbeat to every destination (reopening the socket if needed first)."""
        transport = self._transport
        if transport is None:
            return
        datagram = self.codec.seal(self.context.self_name)
        for destination in self.destinations():
            if transport.is_closing():
                return
            try:
                transport.sendto(datagram, destination)
            except OSError as exc:
                self.socket_failed(exc)

    async def _heartbeat_loop(self) -> None:
        while True:
            if self._transport is None or self._transport.is_closing():
                self._transport = None
                await self._open()
            self.send_heartbeat()
            delay = random.uniform(self.config.heartbeat_min, self.config.heartbeat_max)
            await asyncio.sleep(delay / 1000)
