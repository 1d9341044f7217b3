"""A fake Kubernetes API server speaking real HTTPS + JSON on 127.0.0.1, with a test CA.

The certificate chain is generated with ``cryptography`` (CA -> server cert for IP 127.0.0.1).
``FakeKubernetes.respond`` sets what the next requests get: a status, a JSON body and a delay.
Every request is recorded (path, query, Authorization header) for assertions.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """Write ``ca.crt``, ``server.crt`` and ``server.key``; returns their paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("beamlink test CA"))
        .issuer_name(_name("beamlink test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kubernetes"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.crt", directory / "server.crt", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class Request:
    path: str
    query: dict[str, list[str]]
    authorization: str | None


@dataclass
class FakeKubernetes:
    """The server; use as a context manager (it runs in a thread)."""

    directory: Path
    status: int = 200
    body: Any = field(default_factory=lambda: {"kind": "List", "items": []})
    delay: float = 0.0
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ca, cert, key = make_certificates(self.directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                fake.requests.append(
                    Request(url.path, parse_qs(url.query), self.headers.get("Authorization"))
                )
                time.sleep(fake.delay)
                payload = json.dumps(fake.body).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def master(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def respond(self, status: int, body: Any, delay: float = 0.0) -> None:
        self.status, self.body, self.delay = status, body, delay

    def __enter__(self) -> FakeKubernetes:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.delay = 0.0
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def endpoint(ip: str, *, ready: bool | None = True, terminating: bool = False, hostname: str | None = None, pod: str = "p", namespace: str = "prod") -> dict[str, Any]:
    """One EndpointSlice endpoint, shaped as the API returns it."""
    conditions: dict[str, Any] = {"serving": ready is not False, "terminating": terminating}
    if ready is not None:
        conditions["ready"] = ready
    entry: dict[str, Any] = {
        "addresses": [ip],
        "conditions": conditions,
        "nodeName": "worker-1",
        "targetRef": {"kind": "Pod", "name": pod, "namespace": namespace, "uid": "0f0e"},
        "zone": "z1",
    }
    if hostname is not None:
        entry["hostname"] = hostname
    return entry


def slice_list(*endpoints: dict[str, Any], namespace: str = "prod", address_type: str = "IPv4") -> dict[str, Any]:
    """An ``EndpointSliceList`` with one slice holding ``endpoints``."""
    return {
        "kind": "EndpointSliceList",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"resourceVersion": "1234"},
        "items": [
            {
                "metadata": {
                    "name": "myapp-abc12",
                    "namespace": namespace,
                    "labels": {"app": "myapp", "kubernetes.io/service-name": "myapp"},
                },
                "addressType": address_type,
                "endpoints": list(endpoints),
                "ports": [{"name": "epmd", "port": 4369, "protocol": "TCP"}],
            }
        ],
    }


def pod(name: str, ip: str, *, ready: bool = True, phase: str = "Running", deleting: bool = False, namespace: str = "prod") -> dict[str, Any]:
    """One Pod, shaped as the API returns it."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"app": "myapp"}}
    if deleting:
        metadata["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "spec": {"hostname": name, "containers": [{"name": "app", "image": "myapp:1"}]},
        "status": {
            "phase": phase,
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }
