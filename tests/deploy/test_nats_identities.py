"""NATS identities and TLS in the manifests: each service connects as itself, the server
enforces the permissions generated from the contracts, and production talks TLS."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from zapflow.contracts.types import SERVICES
from zapflow.runtime.natsauth import IDENTITIES, authorization_config, public_key_env

yaml = pytest.importorskip("yaml", reason="reading the manifests needs pyyaml (root dev group)")

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
NATS = K8S / "base" / "nats"
PROD = K8S / "overlays" / "prod"

Doc = dict[str, Any]


def docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


@cache
def deployment(service: str) -> Doc:
    (found,) = [
        d for d in docs(K8S / "base/services" / f"{service}.yaml") if d["kind"] == "Deployment"
    ]
    return found


def main_env(service: str) -> dict[str, Any]:
    container = deployment(service)["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == service
    return {e["name"]: e.get("valueFrom", e.get("value")) for e in container.get("env", [])}


def test_the_checked_in_authorization_is_the_one_the_contracts_give() -> None:
    assert (NATS / "auth.conf").read_text() == authorization_config()


def test_the_server_includes_it_and_reads_the_public_keys_from_a_secret() -> None:
    conf = (NATS / "nats.conf").read_text()
    assert re.search(r"^include \./auth\.conf$", conf, re.M)
    (kust,) = docs(K8S / "base/kustomization.yaml")
    (nats_config,) = [g for g in kust["configMapGenerator"] if g["name"] == "nats-config"]
    assert {"nats/auth.conf", "nats/tls.conf", "nats/cluster-tls.conf"} <= set(nats_config["files"])
    (statefulset,) = docs(NATS / "statefulset.yaml")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "zapflow-nats-public-keys"}} in container["envFrom"]
    for identity in IDENTITIES:
        assert f"${public_key_env(identity)}" in (NATS / "auth.conf").read_text()


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_gets_its_own_seed_and_no_other(service: str) -> None:
    env = main_env(service)
    seeds = {name: ref for name, ref in env.items() if name.endswith("_NATS_NKEY_SEED")}
    assert seeds == {
        f"ZF_{service.upper()}_NATS_NKEY_SEED": {
            "secretKeyRef": {"name": "zapflow-nats-seeds", "key": service}
        }
    }


def test_operator_jobs_connect_as_admin() -> None:
    (job,) = docs(K8S / "jobs/dlq-replay.yaml")
    env = {
        e["name"]: e.get("valueFrom")
        for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["NATS_NKEY_SEED"] == {"secretKeyRef": {"name": "zapflow-nats-seeds", "key": "admin"}}


def test_prod_talks_tls_to_nats_and_verifies_it() -> None:
    common = (PROD / "config/common.env").read_text()
    assert re.search(r"^NATS_URL=tls://nats:4222$", common, re.M)
    assert re.search(r"^NATS_TLS_CA_FILE=/etc/zapflow/nats-ca/ca.crt$", common, re.M)
    assert "cert_file" in (PROD / "nats/tls.conf").read_text()
    assert re.search(r"verify:\s*true", (PROD / "nats/cluster-tls.conf").read_text())
    (kust,) = docs(PROD / "kustomization.yaml")
    (nats_config,) = [g for g in kust["configMapGenerator"] if g["name"] == "nats-config"]
    assert nats_config["behavior"] == "merge"
    assert set(nats_config["files"]) == {"nats/tls.conf", "nats/cluster-tls.conf"}
    (ca_patch,) = [p for p in kust["patches"] if p["path"] == "patches/services-nats-ca.yaml"]
    assert ca_patch["target"]["kind"] == "Deployment"
    ops = docs(PROD / "patches/services-nats-ca.yaml")[0]
    (volume,) = [op["value"] for op in ops if op["path"].endswith("/volumes/-")]
    assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]  # never the key


def kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def test_prod_renders_every_service_with_the_ca_and_its_seed() -> None:
    command = kustomize()
    if command is None:
        pytest.skip("neither kustomize nor kubectl on PATH")
    out = subprocess.run(
        [*command, str(PROD)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    deployments = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "Deployment"}
    assert set(deployments) == set(SERVICES)
    for name, doc in deployments.items():
        container = doc["spec"]["template"]["spec"]["containers"][0]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["nats-ca"] == "/etc/zapflow/nats-ca", name
    (config,) = [
        d for d in rendered if d["kind"] == "ConfigMap" and "nats.conf" in d.get("data", {})
    ]
    assert "cert_file" in config["data"]["tls.conf"]
    assert config["data"]["auth.conf"] == authorization_config()
