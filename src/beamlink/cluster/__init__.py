"""libcluster-style automatic clustering: topologies, the reconcile loop and the strategies.

Layer 5, a sibling of ``node``: it imports neither ``node`` nor ``cli`` (the CLI composes the
two). A strategy only discovers node names; the reconcile loop (``topology``) connects and
disconnects through a ``Membership`` that ``beamlink.node.Node`` satisfies. See
docs/clustering.md.
"""

from beamlink.cluster.address import AddressError, resolve_own_host
from beamlink.cluster.config import ConfigError
from beamlink.cluster.events import (
    ClusterEvent,
    ConnectError,
    ConnectOk,
    DatagramDropped,
    DisconnectError,
    DisconnectOk,
    PollFailure,
    PollOk,
    TopologyCrashed,
)
from beamlink.cluster.membership import Membership
from beamlink.cluster.schema import (
    ClusterConfig,
    DnsPollConfig,
    EpmdConfig,
    ErlangHostsConfig,
    GossipConfig,
    KubernetesConfig,
    KubernetesDnsConfig,
    KubernetesDnsSrvConfig,
    LocalEpmdConfig,
    TopologyConfig,
    config_from_env,
    load_config,
    parse_config,
)
from beamlink.cluster.strategies import Discovery, DiscoveryError, Strategy
from beamlink.cluster.topology import Cluster, Topology

__all__ = [
    "AddressError",
    "Cluster",
    "ClusterConfig",
    "ClusterEvent",
    "ConfigError",
    "ConnectError",
    "ConnectOk",
    "DatagramDropped",
    "DisconnectError",
    "DisconnectOk",
    "Discovery",
    "DiscoveryError",
    "DnsPollConfig",
    "EpmdConfig",
    "ErlangHostsConfig",
    "GossipConfig",
    "KubernetesConfig",
    "KubernetesDnsConfig",
    "KubernetesDnsSrvConfig",
    "LocalEpmdConfig",
    "Membership",
    "PollFailure",
    "PollOk",
    "Strategy",
    "Topology",
    "TopologyConfig",
    "TopologyCrashed",
    "config_from_env",
    "load_config",
    "parse_config",
    "resolve_own_host",
]
