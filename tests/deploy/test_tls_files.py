"""The TLS deploy files: the Swarm override mounts every secret the shared optfile names, the
optfile is one beamlink reads (with real certificates at those paths), and the Kubernetes patch
points BEAMLINK_SSL_DIST_OPTFILE at the mounted Secret."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import yaml

from beamlink.cli.tls import tls_init
from beamlink.connection import load_optfile

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OPTFILE = DEPLOY / "swarm" / "tls" / "ssl_dist_optfile.conf"


def test_swarm_override_mounts_every_file_the_optfile_names() -> None:
    stack = yaml.safe_load((DEPLOY / "swarm" / "stack-tls.yml").read_text())
    service = stack["services"]["cluster_demo"]
    targets = {s["target"] for s in service["secrets"]}
    named = set(re.findall(r'"/run/secrets/([^"]+)"', OPTFILE.read_text()))
    assert named <= targets
    optfile = service["environment"]["BEAMLINK_SSL_DIST_OPTFILE"]
    assert optfile.removeprefix("/run/secrets/") in targets


def test_swarm_optfile_loads_with_real_certificates(tmp_path: Path) -> None:
    files = tls_init(tmp_path, ["cluster_demo@10.0.0.2"])
    text = (OPTFILE.read_text()
            .replace("/run/secrets/beamlink_tls_ca", str(files.ca))
            .replace("/run/secrets/beamlink_tls_cert", str(files.cert))
            .replace("/run/secrets/beamlink_tls_key", str(files.key)))
    path = tmp_path / "swarm.conf"
    path.write_text(text)
    config = load_optfile(path)
    assert not config.client.check_hostname  # task IPs are not in the certificate
    assert config.client.verify_mode == ssl.CERT_REQUIRED  # the cluster CA still is checked


def test_kubernetes_patch_points_at_the_mounted_secret() -> None:
    patch = yaml.safe_load((DEPLOY / "kubernetes" / "tls" / "deployment-patch.yaml").read_text())
    spec = patch["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    mount = container["volumeMounts"][0]
    assert env["BEAMLINK_SSL_DIST_OPTFILE"].startswith(mount["mountPath"] + "/")
    assert spec["volumes"][0]["secret"]["secretName"] == "cluster-demo-tls"
