"""``beamlink tls init``: a CA, node certificates and a ready ssl_dist_optfile (``cryptography``).

For tests and for trying TLS distribution out; production clusters usually have their own CA
(docs/tls.md shows the same steps with openssl). What it writes into DIR:

- ``ca.pem`` / ``ca-key.pem``: a self-signed CA (the key stays here; do not ship it);
- ``cluster.pem`` / ``cluster-key.pem``: one certificate whose subjectAltName holds the host of
  every node given (``DNS:host``; for an IP host also ``IP:addr`` and ``DNS:addr``, because OTP's
  client checks the host as a DNS name even when it is an address), so one optfile serves them all;
- ``nodes/NAME@HOST/cert.pem`` + ``key.pem``: a certificate per node, for deployments that place
  each node's own files at the same path;
- ``ssl_dist_optfile.conf``: ``[{server, [...]}, {client, [...]}].`` with mutual verification,
  TLS 1.3 and 1.2, pointing at the cluster certificate with absolute paths.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TlsFiles", "make_ca", "make_cert", "tls_init"]

DEFAULT_DAYS = 825
OPTFILE_NAME = "ssl_dist_optfile.conf"


@dataclass(frozen=True)
class TlsFiles:
    """Where `tls_init` wrote things."""

    ca: Path
    cert: Path
    key: Path
    optfile: Path
    nodes: dict[str, tuple[Path, Path]]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(
    common_name: str = "beamlink test CA", *, days: int = DEFAULT_DAYS
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate and its key."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _alt_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            names.append(x509.DNSName(host))
        else:
            names.append(x509.IPAddress(address))
            names.append(x509.DNSName(host))
    return names


def make_cert(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    common_name: str,
    hosts: list[str],
    *,
    days: int = DEFAULT_DAYS,
    not_before: datetime.datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate signed by ``ca`` for ``hosts``, usable as TLS server and client."""
    ca_cert, ca_key = ca
    key = _key()
    start = not_before or (datetime.datetime.now(datetime.timezone.utc)
                           - datetime.timedelta(minutes=5))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                   ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(hosts)),
                                        critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def write_pair(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, cert_path: Path,
               key_path: Path) -> None:
    """Write a certificate and its key (the key readable by the owner only)."""
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600, exist_ok=True)
    key_path.write_bytes(_pem_key(key))


def optfile_text(ca: Path | str, cert: Path | str, key: Path | str) -> str:
    """An ssl_dist_optfile with mutual verification, TLS 1.3 and 1.2."""
    def q(path: Path | str) -> str:
        return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'

    common = (f"{{certfile, {q(cert)}}},\n    {{keyfile, {q(key)}}},\n"
              f"    {{cacertfile, {q(ca)}}},\n    {{verify, verify_peer}},\n"
              "    {versions, ['tlsv1.3', 'tlsv1.2']}")
    return (
        "%% TLS distribution options for every node of the cluster (erl -proto_dist inet_tls\n"
        "%% -ssl_dist_optfile FILE, beamlink start --ssl-dist-optfile FILE).\n"
        f"[{{server, [\n    {common},\n    {{fail_if_no_peer_cert, true}}]}},\n"
        f" {{client, [\n    {common}]}}].\n"
    )


def tls_init(directory: Path, nodes: list[str], *, days: int = DEFAULT_DAYS) -> TlsFiles:
    """Write a CA, certificates for ``nodes`` (``name@host``) and an optfile into ``directory``."""
    directory = directory.absolute()
    directory.mkdir(parents=True, exist_ok=True)
    hosts = [n.partition("@")[2] or n for n in nodes]
    ca = make_ca(days=days)
    write_pair(ca[0], ca[1], directory / "ca.pem", directory / "ca-key.pem")
    cluster = make_cert(ca, "beamlink cluster", hosts, days=days)
    cert, key = directory / "cluster.pem", directory / "cluster-key.pem"
    write_pair(cluster[0], cluster[1], cert, key)
    per_node = {}
    for node, host in zip(nodes, hosts, strict=True):
        folder = directory / "nodes" / node
        pair = make_cert(ca, node, [host], days=days)
        write_pair(pair[0], pair[1], folder / "cert.pem", folder / "key.pem")
        per_node[node] = (folder / "cert.pem", folder / "key.pem")
    optfile = directory / OPTFILE_NAME
    optfile.write_text(optfile_text(directory / "ca.pem", cert, key))
    return TlsFiles(ca=directory / "ca.pem", cert=cert, key=key, optfile=optfile, nodes=per_node)
