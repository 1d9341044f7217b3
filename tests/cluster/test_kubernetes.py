"""The ``kubernetes`` strategy against a fake API server speaking real HTTPS with a test CA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from beamlink.cluster.events import PollFailure
from beamlink.cluster.schema import KubernetesConfig
from beamlink.cluster.strategies import Discovery, DiscoveryError, StrategyContext, create_strategy
from beamlink.cluster.topology import Cluster
from tests.cluster.fake_kubernetes import FakeKubernetes, endpoint, pod, slice_list
from tests.cluster.support import EventLog, MemoryMembership
from tests.support.wait import eventually


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeKubernetes]:
    with FakeKubernetes(tmp_path) as server:
        yield server


@pytest.fixture
def account(tmp_path: Path, api: FakeKubernetes) -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("tok-123\n")
    (directory / "namespace").write_text("prod\n")
    (directory / "ca.crt").write_bytes(api.ca.read_bytes())
    return directory


def config(api: FakeKubernetes, account: Path, **extra: Any) -> KubernetesConfig:
    options: dict[str, Any] = {
        "kubernetes_node_basename": "app",
        "kubernetes_selector": "app=myapp",
        "kubernetes_master": api.master,
        "kubernetes_service_account_path": str(account),
        "request_timeout": 1000,
        **extra,
    }
    return KubernetesConfig(**options)


async def discover(cfg: KubernetesConfig) -> Discovery:
    return await create_strategy(cfg, StrategyContext("k8s", "app@10.0.0.1", lambda e: None)).discover()


async def test_endpointslices_with_conditions(api: FakeKubernetes, account: Path) -> None:
    api.respond(
        200,
        slice_list(
            endpoint("10.0.0.1"),
            endpoint("10.0.0.2"),
            endpoint("10.0.0.3", ready=None),
            endpoint("10.0.0.4", ready=False, terminating=True),
            endpoint("10.0.0.5", ready=False),
        ),
    )
    result = await discover(config(api, account))
    assert result.nodes == {"app@10.0.0.1", "app@10.0.0.2", "app@10.0.0.3"}
    assert result.draining == {"app@10.0.0.4", "app@10.0.0.5"}
    request = api.requests[-1]
    assert request.path == "/apis/discovery.k8s.io/v1/namespaces/prod/endpointslices"
    assert request.query == {"labelSelector": ["app=myapp"]}
    assert request.authorization == "Bearer tok-123"


async def test_naming_modes(api: FakeKubernetes, account: Path) -> None:
    api.respond(200, slice_list(endpoint("10.1.2.3", hostname="app-0")))
    dns = await discover(config(api, account, mode="dns"))
    assert dns.nodes == {"app@10-1-2-3.prod.pod.cluster.local"}
    host = await discover(config(api, account, mode="hostname", kubernetes_service_name="hl"))
    assert host.nodes == {"app@app-0.hl.prod.svc.cluster.local"}
    api.respond(200, slice_list(endpoint("fd00::7"), address_type="IPv6"))
    assert (await discover(config(api, account, mode="dns"))).nodes == {"app@fd00--7.prod.pod.cluster.local"}


async def test_service_name_selector_and_explicit_namespace(api: FakeKubernetes, account: Path) -> None:
    cfg = config(api, account, kubernetes_selector=None, kubernetes_service_name="myapp", kubernetes_namespace="other")
    await discover(cfg)
    assert api.requests[-1].path.endswith("/namespaces/other/endpointslices")
    assert api.requests[-1].query == {"labelSelector": ["kubernetes.io/service-name=myapp"]}


async def test_pods_mode(api: FakeKubernetes, account: Path) -> None:
    api.respond(
        200,
        {
            "kind": "PodList",
            "items": [
                pod("a", "10.0.0.1"),
                pod("b", "10.0.0.2", deleting=True),
                pod("c", "10.0.0.3", ready=False),
                pod("d", "10.0.0.4", phase="Pending", ready=False),
                {"metadata": {"name": "e"}, "status": {"phase": "Pending"}},
            ],
        },
    )
    result = await discover(config(api, account, kubernetes_ip_lookup_mode="pods"))
    assert api.requests[-1].path == "/api/v1/namespaces/prod/pods"
    assert result.nodes == {"app@10.0.0.1"}
    assert result.draining == {"app@10.0.0.2", "app@10.0.0.3", "app@10.0.0.4"}


@pytest.mark.parametrize(
    ("status", "body", "delay", "expected"),
    [
        (403, {"kind": "Status", "message": "endpointslices is forbidden: User cannot list"}, 0.0, "403 endpointslices is forbidden"),
        (500, {"kind": "Status", "message": "etcd down"}, 0.0, "500 etcd down"),
        (200, {"kind": "List"}, 0.0, "no items"),
        (200, {"items": [{"endpoints": ["x"]}]}, 0.0, "malformed"),
        (200, slice_list(), 3.0, "Timeout"),
    ],
)
async def test_errors(api: FakeKubernetes, account: Path, status: int, body: Any, delay: float, expected: str) -> None:
    api.respond(status, body, delay)
    with pytest.raises(DiscoveryError, match=expected):
        await discover(config(api, account))


async def test_missing_ca_is_an_error_never_unverified(api: FakeKubernetes, account: Path) -> None:
    (account / "ca.crt").unlink()
    with pytest.raises(DiscoveryError, match=r"CA file .* not found"):
        await discover(config(api, account))
    assert api.requests == []


async def test_wrong_ca_fails_verification(api: FakeKubernetes, account: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with FakeKubernetes(other) as second:
        (account / "ca.crt").write_bytes(second.ca.read_bytes())
    with pytest.raises(DiscoveryError, match=r"CERTIFICATE_VERIFY_FAILED|ConnectError"):
        await discover(config(api, account))


async def test_missing_token_or_namespace(api: FakeKubernetes, account: Path) -> None:
    (account / "namespace").unlink()
    with pytest.raises(DiscoveryError, match="namespace"):
        await discover(config(api, account))
    (account / "token").unlink()
    with pytest.raises(DiscoveryError, match="token"):
        await discover(config(api, account, kubernetes_namespace="prod"))


async def test_reconcile_terminating_and_errors(api: FakeKubernetes, account: Path) -> None:
    names = {f"app@10.0.0.{i}" for i in (2, 3, 4)}
    membership = MemoryMembership("app@10.0.0.1", reachable=set(names))
    api.respond(200, slice_list(endpoint("10.0.0.1"), *(endpoint(n.partition("@")[2]) for n in sorted(names))))
    cluster = Cluster(membership, {"k8s": config(api, account, polling_interval=50)})
    events = EventLog()
    cluster.subscribe(events)
    await cluster.start()
    try:
        await eventually(lambda: membership.connected == names)
        api.respond(403, {"message": "forbidden"})
        await eventually(lambda: len(events.of(PollFailure)) >= 2)
        api.respond(500, {"message": "boom"})
        await eventually(lambda: len(events.of(PollFailure)) >= 4)
        assert membership.count("disconnect") == 0
        api.respond(
            200,
            slice_list(
                endpoint("10.0.0.1"),
                endpoint("10.0.0.2"),
                endpoint("10.0.0.3"),
                endpoint("10.0.0.4", ready=False, terminating=True),
            ),
        )
        membership.connected.discard("app@10.0.0.4")
        topology = cluster.topologies["k8s"]
        await topology.wait_polls(topology.polls + 3)
        assert "app@10.0.0.4" not in membership.connected
        assert membership.count("connect", "app@10.0.0.4") == 1
        api.respond(200, slice_list(endpoint("10.0.0.1"), endpoint("10.0.0.2")))
        await eventually(lambda: membership.connected == {"app@10.0.0.2"})
    finally:
        await cluster.stop(leave=False)
