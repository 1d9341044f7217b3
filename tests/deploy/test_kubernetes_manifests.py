"""The Kubernetes manifests of ``deploy/kubernetes/`` checked against what the ``kubernetes`` topology
needs: a headless Service whose EndpointSlices the topology selects, pods named from ``POD_IP``,
a service account allowed to read EndpointSlices, and a ConfigMap that beamlink's own loader
accepts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from beamlink.cluster.schema import KubernetesConfig, load_config
from beamlink.cluster.strategies.base import StrategyContext
from beamlink.cluster.strategies.kubernetes import KubernetesStrategy

K8S = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
DOCKER = Path(__file__).resolve().parents[2] / "deploy" / "docker"


def manifests() -> list[dict[str, Any]]:
    """Every document of every manifest except the kustomization."""
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def one(kind: str) -> dict[str, Any]:
    """The single manifest of ``kind``."""
    found = [doc for doc in manifests() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container() -> dict[str, Any]:
    """The node container of the Deployment."""
    containers = one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def env() -> dict[str, dict[str, Any]]:
    """The container's environment, by variable name."""
    return {var["name"]: var for var in container()["env"]}


@pytest.fixture
def topology(tmp_path: Path) -> KubernetesConfig:
    """The topology of the ConfigMap, loaded by beamlink's strict config loader."""
    data = one("ConfigMap")["data"]
    assert set(data) == {"cluster.toml"}
    path = tmp_path / "cluster.toml"
    path.write_text(data["cluster.toml"])
    topologies = load_config(path).topologies
    assert len(topologies) == 1
    config = next(iter(topologies.values()))
    assert isinstance(config, KubernetesConfig)
    return config


def test_every_manifest_is_in_the_kustomization() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert all(doc["metadata"]["name"] for doc in manifests())


def test_service_is_headless_and_selects_the_pods() -> None:
    service = one("Service")
    assert service["spec"]["clusterIP"] == "None"
    pod_labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert one("Deployment")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert not service["spec"].get("publishNotReadyAddresses", False)


def test_topology_reads_the_endpointslices_of_the_headless_service(
    topology: KubernetesConfig,
) -> None:
    assert topology.kubernetes_ip_lookup_mode == "endpointslices"
    assert topology.mode == "ip"
    service = one("Service")["metadata"]["name"]
    assert topology.kubernetes_service_name == service
    context = StrategyContext("kubernetes", "cluster_demo@10.1.2.3", lambda event: None)
    path, selector = KubernetesStrategy(topology, context).request_target("demo")
    assert path == "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices"
    # The label the EndpointSlice controller puts on the slices of a Service.
    assert selector == f"kubernetes.io/service-name={service}"


def test_node_name_comes_from_the_pod_ip(topology: KubernetesConfig) -> None:
    variables = list(env())
    pod_ip = env()["POD_IP"]
    assert pod_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    node = env()["BEAMLINK_NODE"]["value"]
    assert node == f"{topology.kubernetes_node_basename}@$(POD_IP)"
    # $(VAR) only expands variables defined earlier in the list.
    assert variables.index("POD_IP") < variables.index("BEAMLINK_NODE")


def test_config_and_cookie_reach_the_container() -> None:
    config_path = Path(env()["BEAMLINK_CONFIG"]["value"])
    configmap = one("ConfigMap")["metadata"]["name"]
    volumes = one("Deployment")["spec"]["template"]["spec"]["volumes"]
    topology_volume = next(v for v in volumes if v.get("configMap", {}).get("name") == configmap)
    mount = next(m for m in container()["volumeMounts"] if m["name"] == topology_volume["name"])
    assert config_path == Path(mount["mountPath"]) / "cluster.toml"
    assert env()["BEAMLINK_COOKIE"]["valueFrom"]["secretKeyRef"]["key"] == "cookie"
    assert "value" not in env()["BEAMLINK_COOKIE"]


def test_service_account_may_read_endpointslices() -> None:
    pod_spec = one("Deployment")["spec"]["template"]["spec"]
    account = one("ServiceAccount")["metadata"]["name"]
    assert pod_spec["serviceAccountName"] == account
    assert pod_spec.get("automountServiceAccountToken", True)
    role = one("Role")
    binding = one("RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]
    }
    assert {"kind": "ServiceAccount", "name": account} in binding["subjects"]
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for verb in ("get", "list", "watch"):
        assert ("discovery.k8s.io", "endpointslices", verb) in granted


def test_probes_check_that_the_node_is_up_not_clustered() -> None:
    healthcheck = "/opt/beamlink/healthcheck.sh"
    assert (DOCKER / "healthcheck.sh").exists()
    assert healthcheck in (DOCKER / "Dockerfile").read_text()
    for probe in ("readinessProbe", "livenessProbe"):
        assert container()[probe]["exec"]["command"] == [healthcheck]
    assert container()["readinessProbe"]["periodSeconds"] <= 5


def test_pods_run_as_the_image_user() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    uid = re.search(r"useradd .*--uid (\d+)", dockerfile, re.S)
    assert uid is not None
    security = one("Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == int(uid.group(1))
    assert container()["securityContext"]["allowPrivilegeEscalation"] is False
