"""Prometheus metrics follow the events of a real reconcile loop."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from beamlink.cluster.metrics import ClusterMetrics
from beamlink.cluster.topology import Cluster
from tests.cluster.support import MemoryMembership, Script, ScriptedConfig
from tests.support.wait import eventually


async def test_metrics_count_connects_and_poll_failures() -> None:
    registry = CollectorRegistry()
    membership = MemoryMembership("a@1", reachable={"b@2"})
    script = Script()
    script.set("b@2", "c@3")
    cluster = Cluster(
        membership,
        {"t": ScriptedConfig(polling_interval=30, jitter=0.0)},
        strategy_factory=script.factory(),
    )
    cluster.subscribe(ClusterMetrics(registry))
    await cluster.start()
    try:
        await eventually(lambda: membership.connected == {"b@2"})
        script.fail()
        await eventually(
            lambda: (registry.get_sample_value("beamlink_cluster_polls_total", {"topology": "t", "result": "error"}) or 0) >= 1
        )
    finally:
        await cluster.stop(leave=False)
    value = registry.get_sample_value
    assert value("beamlink_cluster_connects_total", {"topology": "t", "result": "ok"}) == 1
    assert (value("beamlink_cluster_connects_total", {"topology": "t", "result": "error"}) or 0) >= 1
    assert value("beamlink_cluster_discovered_nodes", {"topology": "t"}) == 2
