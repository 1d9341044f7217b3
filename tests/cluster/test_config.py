"""Topology configuration: TOML loading, strict validation, helpful errors, property tests."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beamlink.cluster.config import ConfigError
from beamlink.cluster.schema import (
    STRATEGIES,
    ClusterConfig,
    DnsListing,
    DnsPollConfig,
    EpmdConfig,
    GossipConfig,
    KubernetesConfig,
    config_from_env,
    load_config,
    parse_config,
    split_host_port,
)

EXAMPLE = """
[topologies.swarm]
strategy = "dns_poll"
query = "tasks.t_cluster_demo"
node_basename = "cluster_demo"
polling_interval = 5000        # ms, libcluster's default
nameservers = ["127.0.0.11:53", "[::1]:5353"]

[topologies.k8s]
strategy = "kubernetes"
kubernetes_node_basename = "app"
kubernetes_selector = "app=myapp"
mode = "dns"
prune = false

[topologies.gossip]
strategy = "gossip"
secret = "s3cret"
transport = "unicast"
peers = ["127.0.0.2", "127.0.0.3:45000"]
"""


def connect_hook(membership: object, name: str) -> bool:
    return True


def test_load_example(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(EXAMPLE)
    config = load_config(path)
    swarm = config.topologies["swarm"]
    assert isinstance(swarm, DnsPollConfig)
    assert swarm.query == "tasks.t_cluster_demo"
    assert swarm.nameservers == ("127.0.0.11:53", "[::1]:5353")
    assert swarm.pruning
    k8s = config.topologies["k8s"]
    assert isinstance(k8s, KubernetesConfig)
    assert k8s.mode == "dns" and not k8s.pruning
    assert k8s.kubernetes_ip_lookup_mode == "endpointslices"
    gossip = config.topologies["gossip"]
    assert isinstance(gossip, GossipConfig) and not gossip.pruning
    assert config_from_env({"BEAMLINK_CONFIG": str(path)}) == config
    assert config_from_env({}) is None


def error(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value


def dns(**extra: Any) -> dict[str, Any]:
    return {"topologies": {"swarm": {"strategy": "dns_poll", "query": "q", "node_basename": "a", **extra}}}


def test_typo_names_topology_key_and_suggestion() -> None:
    exc = error(dns(poll_interval=1000))
    assert (exc.topology, exc.key, exc.suggestion) == ("swarm", "poll_interval", "polling_interval")
    assert "topology 'swarm'" in str(exc) and "did you mean 'polling_interval'" in str(exc)


def test_unknown_key_without_close_match() -> None:
    exc = error(dns(zzzzzz=1))
    assert exc.key == "zzzzzz" and exc.suggestion is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("polling_interval", "5000"),
        ("polling_interval", True),
        ("polling_interval", 5.5),
        ("prune", "no"),
        ("nameservers", "127.0.0.1"),
        ("nameservers", [53]),
        ("query", 7),
    ],
)
def test_wrong_type(key: str, value: Any) -> None:
    exc = error(dns(**{key: value}))
    assert (exc.topology, exc.key) == ("swarm", key)
    assert "expected" in exc.message


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"polling_interval": 0}, "polling_interval"),
        ({"jitter": 1.5}, "jitter"),
        ({"nameservers": ["127.0.0.1:99999"]}, "nameservers"),
        ({"node_basename": "a@b"}, "node_basename"),
    ],
)
def test_bad_values(extra: dict[str, Any], key: str) -> None:
    exc = error(dns(**extra))
    assert (exc.topology, exc.key) == ("swarm", key)


def test_missing_required_and_unknown_strategy() -> None:
    exc = error({"topologies": {"t": {"strategy": "dns_poll", "query": "q"}}})
    assert (exc.topology, exc.key) == ("t", "node_basename")
    exc = error({"topologies": {"t": {"strategy": "dnspoll"}}})
    assert exc.key == "strategy" and exc.suggestion == "dns_poll"
    exc = error({"topologies": {"t": {"query": "q"}}})
    assert exc.key == "strategy"
    exc = error({"topology": {}})
    assert exc.suggestion == "topologies"
    assert parse_config({"topologies": {}, "node": {}}, other_sections=["node"]) == ClusterConfig()


def test_literal_and_cross_field_checks() -> None:
    base = {"strategy": "kubernetes", "kubernetes_node_basename": "app"}
    exc = error({"topologies": {"k": {**base, "kubernetes_selector": "a=b", "mode": "pods"}}})
    assert exc.key == "mode" and "'ip', 'dns', 'hostname'" in exc.message
    exc = error({"topologies": {"k": base}})
    assert exc.key == "kubernetes_selector"
    exc = error({"topologies": {"k": {**base, "kubernetes_selector": "a=b", "mode": "hostname"}}})
    assert exc.key == "kubernetes_service_name"
    exc = error({"topologies": {"g": {"strategy": "gossip"}}})
    assert exc.key == "secret"
    exc = error({"topologies": {"g": {"strategy": "gossip", "secret": "x", "multicast_addr": "10.0.0.1"}}})
    assert exc.key == "multicast_addr"
    exc = error({"topologies": {"e": {"strategy": "epmd", "hosts": ["nohost"]}}})
    assert exc.key == "hosts"


def test_hooks_from_dotted_names() -> None:
    config = parse_config(dns(connect=f"{__name__}:connect_hook"))
    assert config.topologies["swarm"].connect is connect_hook
    exc = error(dns(connect="no.such.module:f"))
    assert exc.key == "connect" and exc.topology == "swarm"
    exc = error(dns(disconnect="os"))
    assert exc.key == "disconnect"


def test_python_objects() -> None:
    config = ClusterConfig({"swarm": DnsPollConfig(query="q", node_basename="a")})
    assert config.topologies["swarm"].polling_interval == 5000
    with pytest.raises(ConfigError) as info:
        DnsPollConfig(query="q", node_basename="a", polling_interval=-1)
    assert info.value.key == "polling_interval"
    with pytest.raises(ConfigError):
        ClusterConfig({"x": object()})  # type: ignore[dict-item]


def test_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[topologies.x\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_split_host_port() -> None:
    assert split_host_port("10.0.0.1", 53) == ("10.0.0.1", 53)
    assert split_host_port("10.0.0.1:5353", 53) == ("10.0.0.1", 5353)
    assert split_host_port("[fd00::1]:5353", 53) == ("fd00::1", 5353)
    assert split_host_port("fd00::1", 53) == ("fd00::1", 53)
    for bad in ("", ":53", "[fd00::1", "h:x", "fd00::zz"):
        with pytest.raises(ValueError):
            split_host_port(bad, 53)


KEYS = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=25)
VALUES = st.one_of(
    st.integers(-10, 10**6), st.booleans(), st.text(max_size=20), st.floats(allow_nan=False),
    st.lists(st.text(max_size=10), max_size=3),
)


@given(st.sampled_from(sorted(STRATEGIES)), st.dictionaries(KEYS, VALUES, max_size=6))
def test_any_table_is_a_config_or_a_config_error(strategy: str, table: dict[str, Any]) -> None:
    data = {"topologies": {"fuzz": {"strategy": strategy, **table}}}
    try:
        config = parse_config(data)
    except ConfigError as exc:
        assert exc.topology == "fuzz"
        assert exc.key is not None
    else:
        assert type(config.topologies["fuzz"]) is STRATEGIES[strategy]


def test_each_registered_strategy_names_its_implementation() -> None:
    """One registration per strategy: the config class names the Strategy class it builds."""
    import importlib

    from beamlink.cluster.strategies import Strategy

    assert set(STRATEGIES) == {
        "dns_poll", "kubernetes_dns", "kubernetes_dnssrv", "kubernetes", "epmd", "local_epmd",
        "erlang_hosts", "gossip",
    }
    for name, cls in STRATEGIES.items():
        assert cls.strategy == name
        module, _, attribute = cls.implementation.partition(":")
        assert issubclass(getattr(importlib.import_module(module), attribute), Strategy)


def test_a_second_config_class_cannot_take_a_strategy_name() -> None:
    with pytest.raises(TypeError, match="dns_poll"):

        class Again(DnsPollConfig):
            strategy = "dns_poll"
            implementation = "somewhere:Else"


def test_configs_say_where_this_node_is_listed_and_where_its_peers_are() -> None:
    swarm = DnsPollConfig(query="tasks.app", node_basename="app", nameservers=("10.0.0.2",))
    assert swarm.dns_listing() == DnsListing("tasks.app", ("10.0.0.2",), 2000)
    assert swarm.peer_hosts() == ()
    assert EpmdConfig(hosts=("a@h1", "b@10.0.0.7")).peer_hosts() == ("h1", "10.0.0.7")
    assert EpmdConfig(hosts=("a@h1",)).dns_listing() is None
    unicast = GossipConfig(secret="s", transport="unicast", peers=("10.0.0.3:45000", "[fd00::2]"))
    assert unicast.peer_hosts() == ("10.0.0.3", "fd00::2")
    assert GossipConfig(secret="s").peer_hosts() == ()
