"""The ``kubernetes`` strategy: pods from the Kubernetes API (EndpointSlices, or pods).

One GET per poll, with the service-account token (re-read every poll: bound tokens rotate) over
TLS verified against the service-account CA. There is no unverified fallback: a missing CA file
is a discovery error that says so. Any non-200 answer (403, 500, ...), a timeout or a malformed
body is a ``DiscoveryError``, so the last good answer stays in force.

Endpoint states (EndpointSlice ``conditions``, or pod phase/Ready/deletionTimestamp): a ready
endpoint that is not terminating is connected; a terminating or not-ready one is *draining*:
never (re)connected, never disconnected while it is still listed (so a pod handing off work on
shutdown keeps its connections until it exits). Only a pod that vanishes from the API is pruned.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from beamlink.cluster.schema import KubernetesConfig
from beamlink.cluster.strategies.base import Discovery, DiscoveryError, Strategy

DEFAULT_MASTER = "kubernetes.default.svc"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class PodEndpoint:
    """What naming needs to know about one pod, and whether it may be connected."""

    ip: str
    namespace: str
    hostname: str | None
    active: bool


def _read(path: os.PathLike[str] | str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise DiscoveryError(f"cannot read the {what} at {os.fspath(path)}: {exc.strerror}") from None


def _master(config: KubernetesConfig) -> str:
    if config.kubernetes_master is not None:
        return config.kubernetes_master
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        return DEFAULT_MASTER
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _items(body: Any) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise DiscoveryError("malformed answer: no items list")
    return list(body["items"])


def endpoints_from_slices(body: Any, default_namespace: str) -> Iterator[PodEndpoint]:
    """Endpoints of an ``EndpointSliceList`` (discovery.k8s.io/v1)."""
    for item in _items(body):
        if not isinstance(item, dict) or item.get("addressType") == "FQDN":
            continue
        namespace = (item.get("metadata") or {}).get("namespace") or default_namespace
        for endpoint in item.get("endpoints") or []:
            addresses = endpoint.get("addresses") or []
            if not addresses:
                continue
            conditions = endpoint.get("conditions") or {}
            active = conditions.get("ready") is not False and conditions.get("terminating") is not True
            target = endpoint.get("targetRef") or {}
            yield PodEndpoint(
                ip=str(addresses[0]),
                namespace=target.get("namespace") or namespace,
                hostname=endpoint.get("hostname"),
                active=active,
            )


def endpoints_from_pods(body: Any, default_namespace: str) -> Iterator[PodEndpoint]:
    """Endpoints of a ``PodList`` (v1): running + Ready + not being deleted is active."""
    for pod in _items(body):
        if not isinstance(pod, dict):
            continue
        status = pod.get("status") or {}
        metadata = pod.get("metadata") or {}
        ip = status.get("podIP")
        if not ip:
            continue
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        active = ready and status.get("phase") == "Running" and not metadata.get("deletionTimestamp")
        yield PodEndpoint(
            ip=str(ip),
            namespace=metadata.get("namespace") or default_namespace,
            hostname=(pod.get("spec") or {}).get("hostname") or metadata.get("name"),
            active=active,
        )


def node_name(config: KubernetesConfig, endpoint: PodEndpoint) -> str | None:
    """The node name of ``endpoint`` under ``config.mode`` (None when it cannot be named)."""
    base = config.kubernetes_node_basename
    domain = f"{config.kubernetes_cluster_name}.local"
    if config.mode == "ip":
        return f"{base}@{endpoint.ip}"
    if config.mode == "dns":
        dashed = endpoint.ip.replace(".", "-").replace(":", "-")
        return f"{base}@{dashed}.{endpoint.namespace}.pod.{domain}"
    if endpoint.hostname is None:
        return None
    service = config.kubernetes_service_name
    return f"{base}@{endpoint.hostname}.{service}.{endpoint.namespace}.svc.{domain}"


class KubernetesStrategy(Strategy[KubernetesConfig]):
    """libcluster's Kubernetes strategy on the current API (see the module docstring)."""

    def _namespace(self) -> str:
        if self.config.kubernetes_namespace is not None:
            return self.config.kubernetes_namespace
        return _read(self.config.namespace_path, "service-account namespace")

    def _tls(self) -> ssl.SSLContext:
        ca = self.config.resolved_ca_path
        if not ca.is_file():
            raise DiscoveryError(
                f"CA file {ca} not found: the API server is only reached with TLS verification; "
                "mount the service account or set ca_path"
            )
        try:
            return ssl.create_default_context(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise DiscoveryError(f"cannot load CA file {ca}: {exc}") from None

    def request_target(self, namespace: str) -> tuple[str, str]:
        """The API path and the label selector of one poll."""
        config = self.config
        selector = config.kubernetes_selector or f"{SERVICE_NAME_LABEL}={config.kubernetes_service_name}"
        if config.kubernetes_ip_lookup_mode == "pods":
            return f"/api/v1/namespaces/{namespace}/pods", selector
        return f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices", selector

    async def discover(self) -> Discovery:
        config = self.config
        namespace = self._namespace()
        token = _read(config.resolved_token_path, "service-account token")
        tls = self._tls()
        path, selector = self.request_target(namespace)
        url = f"https://{_master(config)}{path}"
        try:
            async with httpx.AsyncClient(verify=tls, timeout=config.request_timeout / 1000) as client:
                response = await client.get(
                    url,
                    params={"labelSelector": selector},
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise DiscoveryError(f"GET {url}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise DiscoveryError(f"GET {url}: {response.status_code} {_message(response)}")
        try:
            body = response.json()
        except ValueError:
            raise DiscoveryError(f"GET {url}: the answer is not JSON") from None
        parse = endpoints_from_pods if config.kubernetes_ip_lookup_mode == "pods" else endpoints_from_slices
        active: set[str] = set()
        draining: set[str] = set()
        try:
            for endpoint in parse(body, namespace):
                name = node_name(config, endpoint)
                if name is not None:
                    (active if endpoint.active else draining).add(name)
        except (AttributeError, TypeError, KeyError) as exc:
            raise DiscoveryError(f"GET {url}: malformed answer ({exc})") from None
        return Discovery(frozenset(active), frozenset(draining - active))


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return response.text[:200]
