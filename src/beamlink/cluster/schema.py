"""The topology schema: one frozen dataclass per strategy, and the cluster config loaders.

A file is shaped like libcluster's config, one flat table per named topology::

    [topologies.swarm]
    strategy = "dns_poll"
    query = "tasks.t_cluster_demo"
    node_basename = "cluster_demo"
    polling_interval = 5000        # ms, libcluster's default

Validation is strict, unlike libcluster (see ``beamlink.cluster.config`` for the generic loader):
errors name the topology and the key. A strategy is registered by its config class alone: a
``TopologyConfig`` subclass with ``strategy`` (its name in files) and ``implementation``
(``"package.module:Class"`` of its ``Strategy``, imported only when used) is in ``STRATEGIES``;
its ``dns_listing``/``peer_hosts`` tell ``beamlink.cluster.address`` where to look for this
node's own address. This module never imports a strategy implementation.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from beamlink.cluster.config import ConfigError, build, check_sections, read_toml, suggest
from beamlink.cluster.membership import ConnectHook, DisconnectHook, ListNodesHook
from beamlink.settings import CONFIG

CONFIG_ENV = CONFIG.variables[0]
HOOK_KEYS = frozenset({"connect", "disconnect", "list_nodes"})

# Strategy name -> config class; filled by ``TopologyConfig.__init_subclass__``.
STRATEGIES: dict[str, type[TopologyConfig]] = {}


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(message, key=key)


def _check_host_port(key: str, value: str, default_port: int | None) -> None:
    """Accept ``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    try:
        split_host_port(value, default_port)
    except ValueError as exc:
        raise ConfigError(str(exc), key=key) from None


def split_host_port(value: str, default_port: int | None) -> tuple[str, int]:
    """Split ``host:port`` / ``[v6]:port`` / ``v6`` / ``host``; ValueError when malformed."""
    host, port_text = value, ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError(f"{value!r}: missing ']'")
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{value!r}: expected ':port' after ']'")
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    elif value.count(":") > 1:
        ipaddress.IPv6Address(value)
    if not host:
        raise ValueError(f"{value!r}: empty host")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{value!r}: port must be 1..65535")
        return host, int(port_text)
    if default_port is None:
        raise ValueError(f"{value!r}: a port is required (host:port)")
    return host, default_port


@dataclass(frozen=True)
class DnsListing:
    """A DNS name whose A/AAAA records list a topology's nodes, and how to ask for it."""

    query: str
    nameservers: tuple[str, ...] = ()
    timeout_ms: int = 2000


@dataclass(frozen=True, kw_only=True)
class TopologyConfig:
    """Options every topology has. Durations are milliseconds, as in libcluster.

    ``prune`` (None = the strategy's default) disconnects nodes that vanished from discovery;
    ``connect``/``disconnect``/``list_nodes`` replace the membership's own operations.
    """

    strategy: ClassVar[str] = ""
    implementation: ClassVar[str] = ""
    default_prune: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Register a strategy: a subclass that names its ``implementation`` is looked up by its
        ``strategy`` name in config files (``STRATEGIES``); this is the only registration."""
        super().__init_subclass__(**kwargs)
        if "implementation" not in cls.__dict__:
            return
        if not cls.strategy or STRATEGIES.get(cls.strategy, cls) is not cls:
            raise TypeError(f"{cls.__name__}: strategy name {cls.strategy!r} empty or taken")
        STRATEGIES[cls.strategy] = cls

    polling_interval: int = 5000
    connect_timeout: int = 5000
    jitter: float = 0.1
    prune: bool | None = None
    connect: ConnectHook | None = None
    disconnect: DisconnectHook | None = None
    list_nodes: ListNodesHook | None = None

    def __post_init__(self) -> None:
        _require(self.polling_interval > 0, "polling_interval", "must be > 0 (milliseconds)")
        _require(self.connect_timeout > 0, "connect_timeout", "must be > 0 (milliseconds)")
        _require(0.0 <= self.jitter < 1.0, "jitter", "must be in [0, 1)")
        for key in HOOK_KEYS:
            value = getattr(self, key)
            _require(value is None or callable(value), key, "must be callable")

    @property
    def pruning(self) -> bool:
        """Whether vanished nodes are disconnected."""
        return self.default_prune if self.prune is None else self.prune

    def dns_listing(self) -> DnsListing | None:
        """The DNS name whose A/AAAA answers list this topology's nodes (this node among them
        once it runs), used to find this node's own address; None when there is none."""
        return None

    def peer_hosts(self) -> tuple[str, ...]:
        """Hosts this config names peers at, tried as routes toward this node's own address."""
        return ()


@dataclass(frozen=True, kw_only=True)
class DnsOptions(TopologyConfig):
    """DNS resolver options shared by the DNS strategies, and the checks of their name keys:
    each of ``required_keys`` must not be empty, and ``basename_key`` names the key that holds
    the node name part before ``@`` of every node found."""

    required_keys: ClassVar[tuple[str, ...]] = ()
    basename_key: ClassVar[str] = ""

    nameservers: tuple[str, ...] = ()
    dns_timeout: int = 2000

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.dns_timeout > 0, "dns_timeout", "must be > 0 (milliseconds)")
        for server in self.nameservers:
            _check_host_port("nameservers", server, 53)
        for key in self.required_keys:
            _require(bool(getattr(self, key)), key, "must not be empty")
        if self.basename_key:
            basename = getattr(self, self.basename_key)
            _require(_valid_basename(basename), self.basename_key, "must be a node name part")


@dataclass(frozen=True, kw_only=True)
class DnsPollConfig(DnsOptions):
    """A and AAAA records of ``query`` -> ``node_basename@<ip>`` (the Docker Swarm strategy)."""

    strategy: ClassVar[str] = "dns_poll"
    implementation: ClassVar[str] = "beamlink.cluster.strategies.dns:DnsPollStrategy"
    required_keys: ClassVar[tuple[str, ...]] = ("query",)
    basename_key: ClassVar[str] = "node_basename"

    query: str
    node_basename: str

    def dns_listing(self) -> DnsListing:
        return DnsListing(self.query, self.nameservers, self.dns_timeout)


@dataclass(frozen=True, kw_only=True)
class KubernetesDnsConfig(DnsOptions):
    """A and AAAA records of a headless ``service`` -> ``application_name@<ip>``."""

    strategy: ClassVar[str] = "kubernetes_dns"
    implementation: ClassVar[str] = "beamlink.cluster.strategies.dns:KubernetesDnsStrategy"
    required_keys: ClassVar[tuple[str, ...]] = ("service",)
    basename_key: ClassVar[str] = "application_name"

    service: str
    application_name: str

    def dns_listing(self) -> DnsListing:
        return DnsListing(self.service, self.nameservers, self.dns_timeout)


@dataclass(frozen=True, kw_only=True)
class KubernetesDnsSrvConfig(DnsOptions):
    """SRV of ``<service>.<namespace>.svc.<cluster_domain>`` -> ``application_name@<target>``."""

    strategy: ClassVar[str] = "kubernetes_dnssrv"
    implementation: ClassVar[str] = "beamlink.cluster.strategies.dns:KubernetesDnsSrvStrategy"
    required_keys: ClassVar[tuple[str, ...]] = ("service", "namespace")
    basename_key: ClassVar[str] = "application_name"

    service: str
    namespace: str
    application_name: str
    cluster_domain: str = "cluster.local"

    @property
    def query(self) -> str:
        return f"{self.service}.{self.namespace}.svc.{self.cluster_domain}"


SERVICE_ACCOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True, kw_only=True)
class KubernetesConfig(TopologyConfig):
    """The Kubernetes API: EndpointSlices (default) or pods matching a selector.

    Node names: ``mode = "ip"`` -> ``basename@10.1.2.3``; ``"dns"`` ->
    ``basename@10-1-2-3.<ns>.pod.<cluster>.local``; ``"hostname"`` ->
    ``basename@<hostname>.<service>.<ns>.svc.<cluster>.local``. ``kubernetes_master`` is
    ``host[:port]`` (default: ``KUBERNETES_SERVICE_HOST``/``_PORT``, else
    ``kubernetes.default.svc``). TLS is always verified against the CA file.
    """

    strategy: ClassVar[str] = "kubernetes"
    implementation: ClassVar[str] = "beamlink.cluster.strategies.kubernetes:KubernetesStrategy"

    kubernetes_node_basename: str
    kubernetes_selector: str | None = None
    kubernetes_service_name: str | None = None
    kubernetes_namespace: str | None = None
    mode: Literal["ip", "dns", "hostname"] = "ip"
    kubernetes_ip_lookup_mode: Literal["endpointslices", "pods"] = "endpointslices"
    kubernetes_master: str | None = None
    kubernetes_cluster_name: str = "cluster"
    kubernetes_service_account_path: str = SERVICE_ACCOUNT_PATH
    token_path: str | None = None
    ca_path: str | None = None
    request_timeout: int = 10000

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(
            _valid_basename(self.kubernetes_node_basename),
            "kubernetes_node_basename",
            "must be a node name part",
        )
        _require(
            self.kubernetes_selector is not None or self.kubernetes_service_name is not None,
            "kubernetes_selector",
            "set kubernetes_selector or kubernetes_service_name",
        )
        _require(
            self.mode != "hostname" or self.kubernetes_service_name is not None,
            "kubernetes_service_name",
            'required when mode = "hostname"',
        )
        _require(
            self.kubernetes_ip_lookup_mode != "pods" or self.kubernetes_selector is not None,
            "kubernetes_selector",
            'required when kubernetes_ip_lookup_mode = "pods"',
        )
        _require(self.request_timeout > 0, "request_timeout", "must be > 0 (milliseconds)")
        if self.kubernetes_master is not None:
            _check_host_port("kubernetes_master", self.kubernetes_master, 443)

    @property
    def resolved_token_path(self) -> Path:
        return Path(self.token_path or Path(self.kubernetes_service_account_path, "token"))

    @property
    def resolved_ca_path(self) -> Path:
        return Path(self.ca_path or Path(self.kubernetes_service_account_path, "ca.crt"))

    @property
    def namespace_path(self) -> Path:
        return Path(self.kubernetes_service_account_path, "namespace")


@dataclass(frozen=True, kw_only=True)
class EpmdConfig(TopologyConfig):
    """A static list of node names, retried every polling interval until connected."""

    strategy: ClassVar[str] = "epmd"
    implementation: ClassVar[str] = "beamlink.cluster.strategies.epmd:EpmdStrategy"
    default_prune: ClassVar[bool] = False

    hosts: tuple[str, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in self.hosts:
            _require(_valid_node_name(name), "hosts", f"{name!r} is not a name@host node name")

    def peer_hosts(self) -> tuple[str, ...]:
        return tuple(name.partition("@")[2] for name in self.hosts)


@dataclass(frozen=True, kw_only=True)
class LocalEpmdConfig(TopologyConfig):
    """Every node registered in the EPMD of this node's own host whose name matches ``allow``
    (required: node names or shell-style patterns such as ``"app@*"``)."""

    strategy: ClassVar[str] = "local_epmd"
    implementation: ClassVar[str] = "beamlink.cluster.strategies.epmd:LocalEpmdStrategy"
    default_prune: ClassVar[bool] = False

    epmd_port: int | None = None
    allow: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.epmd_port is None or 0 < self.epmd_port < 65536, "epmd_port", "1..65535")
        _check_allow(self.allow, "any local user can register a name in EPMD")


@dataclass(frozen=True, kw_only=True)
class ErlangHostsConfig(TopologyConfig):
    """Hosts from ``.hosts.erlang`` (``hosts_file``, else ./ then ~/), then each host's EPMD names
    that match ``allow`` (required, as for ``local_epmd``)."""

    strategy: ClassVar[str] = "erlang_hosts"
    implementation: ClassVar[str] = "beamlink.cluster.strategies.epmd:ErlangHostsStrategy"
    default_prune: ClassVar[bool] = False

    hosts_file: str | None = None
    epmd_port: int | None = None
    allow: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.epmd_port is None or 0 < self.epmd_port < 65536, "epmd_port", "1..65535")
        _check_allow(self.allow, "any user of a listed host can register a name in its EPMD")


GOSSIP_PORT = 45892
GOSSIP_MULTICAST_ADDR = "233.252.1.32"


@dataclass(frozen=True, kw_only=True)
class GossipConfig(TopologyConfig):
    """UDP heartbeats: multicast (libcluster's group and port), broadcast or unicast ``peers``.

    Heartbeats are sealed with ChaCha20-Poly1305 under a key derived from ``secret``; with
    ``libcluster_compat`` they use libcluster's own format instead (plain, or AES-256-CBC when
    a secret is set). A node heard within ``node_ttl`` ms counts as discovered.

    ``allow`` (node names or patterns such as ``"app@*"``) limits the names dialled; it is
    required with ``libcluster_compat``, whose heartbeats anyone can forge. At most ``max_nodes``
    names are held, at most ``max_new_per_round`` new ones are handed out per round, and each
    sender address may deliver ``sender_rate`` heartbeats per second (the rest are dropped).
    """

    strategy: ClassVar[str] = "gossip"
    implementation: ClassVar[str] = "beamlink.cluster.strategies.gossip:GossipStrategy"
    default_prune: ClassVar[bool] = False

    port: int = GOSSIP_PORT
    if_addr: str = "0.0.0.0"
    transport: Literal["multicast", "broadcast", "unicast"] = "multicast"
    multicast_addr: str = GOSSIP_MULTICAST_ADDR
    multicast_if: str | None = None
    multicast_ttl: int = 1
    broadcast_addr: str = "255.255.255.255"
    peers: tuple[str, ...] = ()
    secret: str | None = None
    libcluster_compat: bool = False
    heartbeat_min: int = 1000
    heartbeat_max: int = 5000
    node_ttl: int = 30000
    max_clock_skew: int = 30000
    allow: tuple[str, ...] = ()
    max_nodes: int = 1024
    max_new_per_round: int = 16
    sender_rate: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0 < self.port < 65536, "port", "must be 1..65535")
        _require(0 <= self.multicast_ttl <= 255, "multicast_ttl", "must be 0..255")
        _require(
            0 < self.heartbeat_min <= self.heartbeat_max, "heartbeat_max", "need 0 < min <= max"
        )
        _require(self.node_ttl > 0, "node_ttl", "must be > 0 (milliseconds)")
        _require(self.max_clock_skew > 0, "max_clock_skew", "must be > 0 (milliseconds)")
        _require(self.max_nodes > 0, "max_nodes", "must be > 0")
        _require(self.max_new_per_round > 0, "max_new_per_round", "must be > 0")
        _require(self.sender_rate > 0, "sender_rate", "must be > 0 (heartbeats per second)")
        if self.libcluster_compat:
            _check_allow(self.allow, "libcluster heartbeats are not authenticated")
        else:
            _check_allow(self.allow, None)
        _require(
            self.libcluster_compat or bool(self.secret),
            "secret",
            "required (heartbeats are authenticated) unless libcluster_compat = true",
        )
        for key in ("if_addr", "multicast_addr", "broadcast_addr"):
            _require(_is_ip(getattr(self, key)), key, "must be an IP address")
        if self.multicast_if is not None:
            _require(_is_ip(self.multicast_if), "multicast_if", "must be an IP address")
        if self.transport == "multicast":
            _require(
                ipaddress.ip_address(self.multicast_addr).is_multicast,
                "multicast_addr",
                "is not a multicast address",
            )
        if self.transport == "unicast":
            _require(bool(self.peers), "peers", 'required when transport = "unicast"')
        for peer in self.peers:
            _check_host_port("peers", peer, self.port)

    def peer_hosts(self) -> tuple[str, ...]:
        if self.transport != "unicast":
            return ()
        return tuple(split_host_port(peer, self.port)[0] for peer in self.peers)


@dataclass(frozen=True)
class ClusterConfig:
    """All topologies of one node, by name."""

    topologies: Mapping[str, TopologyConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, topology in self.topologies.items():
            if not isinstance(name, str) or not name:
                raise ConfigError("topology names must be non-empty strings")
            if not isinstance(topology, TopologyConfig) or not topology.strategy:
                raise ConfigError(
                    f"expected a strategy config such as DnsPollConfig, got {topology!r}",
                    topology=name,
                )


def _check_allow(patterns: tuple[str, ...], unauthenticated: str | None) -> None:
    """``allow``: node names or shell-style patterns (``"app@*"``); required (non-empty) when the
    strategy learns names from an ``unauthenticated`` source, which the message explains."""
    if unauthenticated is not None and not patterns:
        raise ConfigError(
            f"required: this strategy learns node names from a source anyone can write to "
            f"({unauthenticated}), and dialling a name an attacker chose lets them relay our "
            'cookie challenge; list the nodes it may dial, e.g. allow = ["app@*"]',
            key="allow",
        )
    for pattern in patterns:
        _require(
            bool(pattern) and "@" in pattern and all(c.isprintable() and not c.isspace() for c in pattern),
            "allow",
            f"{pattern!r} is not a node name or pattern such as \"app@*\"",
        )


def _valid_basename(value: str) -> bool:
    return bool(value) and "@" not in value and all(c.isalnum() or c in "_-." for c in value)


def _valid_node_name(value: str) -> bool:
    base, sep, host = value.partition("@")
    return bool(sep) and _valid_basename(base) and bool(host) and "@" not in host


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def parse_topology(name: str, table: Mapping[str, Any]) -> TopologyConfig:
    """Build the config object of topology ``name`` from its table; ConfigError on any problem."""
    if not isinstance(table, Mapping):
        raise ConfigError("must be a table", topology=name)
    strategy = table.get("strategy")
    if strategy is None:
        raise ConfigError("missing", key="strategy", topology=name)
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ConfigError(
            f"unknown strategy {strategy!r}; known: {', '.join(sorted(STRATEGIES))}",
            key="strategy",
            topology=name,
            suggestion=suggest(str(strategy), STRATEGIES),
        )
    options = {key: value for key, value in table.items() if key != "strategy"}
    try:
        return build(
            STRATEGIES[strategy], options, what=f"strategy {strategy!r}", callables=HOOK_KEYS
        )
    except ConfigError as exc:
        raise exc.in_topology(name) from None


def parse_config(data: Mapping[str, Any], *, other_sections: Collection[str] = ()) -> ClusterConfig:
    """Build a ``ClusterConfig`` from a parsed TOML document (or an equivalent dict).

    Top-level keys other than ``topologies`` are errors unless listed in ``other_sections``
    (sections owned by other parts of beamlink, such as the CLI's).
    """
    check_sections(data, {"topologies", *other_sections})
    topologies = data.get("topologies", {})
    if not isinstance(topologies, Mapping):
        raise ConfigError("must be a table of [topologies.NAME] tables", key="topologies")
    return ClusterConfig({name: parse_topology(name, t) for name, t in topologies.items()})


def load_config(path: str | os.PathLike[str], *, other_sections: Collection[str] = ()) -> ClusterConfig:
    """Read and validate a TOML config file; ConfigError names the file on syntax errors."""
    return parse_config(read_toml(path), other_sections=other_sections)


def config_from_env(
    environ: Mapping[str, str] | None = None, *, other_sections: Collection[str] = ()
) -> ClusterConfig | None:
    """The config named by ``BEAMLINK_CONFIG``, or None when the variable is unset or empty."""
    path = (os.environ if environ is None else environ).get(CONFIG_ENV, "")
    return load_config(path, other_sections=other_sections) if path else None
