"""The deployment artefacts under ``deploy/``, checked as data: no Docker engine, no cluster.

For each service: a Deployment whose probes hit ``/readyz`` and ``/healthz`` on the port the root
README documents, the image and entry point it is built with, migrations before start, resources
and a shutdown window longer than the service's own. Also: the NATS StatefulSet is a 3-node
JetStream cluster, senders scale on the backlog of the consumers ``zapflow.contracts.streams``
declares, and every workload has a disruption budget. When ``kubectl`` or ``kustomize`` is on
PATH, the kustomizations are rendered too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from zapflow.contracts import streams, subjects
from zapflow.contracts.types import SERVICES

yaml = pytest.importorskip("yaml", reason="reading the manifests needs pyyaml (root dev group)")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
DOCKERFILE = DEPLOY / "Dockerfile"

Doc = dict[str, Any]


# -- loading ----------------------------------------------------------------------------------


def load_yaml(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


@cache
def kustomization() -> Doc:
    (doc,) = load_yaml(BASE / "kustomization.yaml")
    return doc


@cache
def base_docs() -> tuple[Doc, ...]:
    """Every object the base kustomization lists, as written (before kustomize)."""
    return tuple(doc for res in kustomization()["resources"] for doc in load_yaml(BASE / res))


def objects(kind: str) -> dict[str, Doc]:
    found = [doc for doc in base_docs() if doc["kind"] == kind]
    names = [doc["metadata"]["name"] for doc in found]
    assert len(names) == len(set(names)), f"duplicate {kind} names: {names}"
    return dict(zip(names, found, strict=True))


def parse_env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: not KEY=VALUE: {line!r}"
            pairs[key] = value
    return pairs


@cache
def configmaps() -> dict[str, dict[str, str]]:
    """ConfigMaps of the base by name: generated from env files, or written as objects."""
    maps: dict[str, dict[str, str]] = {
        name: doc.get("data", {}) for name, doc in objects("ConfigMap").items()
    }
    for gen in kustomization().get("configMapGenerator", []):
        data: dict[str, str] = {}
        for env in gen.get("envs", []):
            data.update(parse_env_file(BASE / env))
        for file in gen.get("files", []):
            data[Path(file).name] = (BASE / file).read_text(encoding="utf-8")
        maps[gen["name"]] = data
    return maps


@cache
def readme_ports() -> dict[str, int]:
    """``gateway 8080, ingest 8081, ...`` from the configuration table of the root README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in text.splitlines() if line.startswith("| `ZF_<SERVICE>_HTTP_PORT`")]
    return {name: int(port) for name, port in re.findall(r"\b([a-z]+) (\d{4,5})\b", row)}


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def main_container(name: str) -> Doc:
    containers = pod_spec(objects("Deployment")[name])["containers"]
    (container,) = [c for c in containers if c["name"] == name]
    return container


def all_containers(workload: Doc) -> Iterator[Doc]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def container_env(container: Doc) -> dict[str, Any]:
    """The environment a container gets: envFrom ConfigMaps, then ``env`` (value or valueFrom)."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps()[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        env[item["name"]] = item["value"] if "value" in item else item["valueFrom"]
    return env


def port_number(container: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container.get("ports", []) if p["name"] == port]
    return int(number)


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    match = selector.get("matchLabels", {})
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


# -- the README is the source of the ports ----------------------------------------------------


def test_readme_table_names_a_port_for_every_service() -> None:
    assert set(readme_ports()) == set(SERVICES)
    assert len(set(readme_ports().values())) == len(SERVICES)


# -- every manifest -----------------------------------------------------------------------------


def test_every_manifest_parses_into_kubernetes_objects() -> None:
    files = sorted(K8S.rglob("*.yaml"))
    assert files
    for path in files:
        docs = load_yaml(path)
        assert docs, f"{path} is empty"
        if isinstance(docs[0], list):  # a JSON patch (RFC 6902) an overlay applies
            assert all({"op", "path"} <= set(op) for op in docs[0]), path
            continue
        for doc in docs:
            assert isinstance(doc, dict), path
            assert doc.get("apiVersion"), f"{path}: no apiVersion"
            assert doc.get("kind"), f"{path}: no kind"
            if doc["kind"] != "Kustomization":
                meta = doc.get("metadata", {})
                assert meta.get("name") or meta.get("generateName"), f"{path}: unnamed object"


def test_base_kustomization_lists_every_manifest_and_file() -> None:
    listed = {BASE / res for res in kustomization()["resources"]}
    on_disk = {p for p in BASE.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == on_disk, "manifest files missing from, or unknown to, kustomization.yaml"
    for gen in kustomization().get("configMapGenerator", []):
        for file in [*gen.get("envs", []), *gen.get("files", [])]:
            assert (BASE / file).is_file(), file


def test_base_holds_no_secret() -> None:
    assert "Secret" not in {doc["kind"] for doc in base_docs()}
    assert "secretGenerator" not in kustomization()


# -- one Deployment per service -----------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_probes_hit_readyz_and_healthz_on_the_readme_port(service: str) -> None:
    port = readme_ports()[service]
    container = main_container(service)
    assert port in [p["containerPort"] for p in container["ports"]]

    ready = container["readinessProbe"]["httpGet"]
    assert ready["path"] == "/readyz"
    assert port_number(container, ready["port"]) == port

    live = container["livenessProbe"]["httpGet"]
    assert live["path"] == "/healthz"
    assert port_number(container, live["port"]) == port

    if "startupProbe" in container:
        start = container["startupProbe"]["httpGet"]
        assert start["path"] == "/healthz"
        assert port_number(container, start["port"]) == port


@pytest.mark.parametrize("service", SERVICES)
def test_service_listens_where_the_probes_look(service: str) -> None:
    prefix = f"ZF_{service.upper()}_"
    env = container_env(main_container(service))
    assert env[f"{prefix}HTTP_HOST"] == "0.0.0.0", "the default 127.0.0.1 is unreachable by probes"
    assert int(env.get(f"{prefix}HTTP_PORT", readme_ports()[service])) == readme_ports()[service]
    secret = env["DATABASE_URL"]["secretKeyRef"]
    assert (secret["name"], secret["key"]) == ("zapflow-database", "DATABASE_URL")


@pytest.mark.parametrize("service", SERVICES)
def test_prometheus_scrapes_metrics_on_the_service_port(service: str) -> None:
    meta = objects("Deployment")[service]["spec"]["template"]["metadata"]
    annotations = meta["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(readme_ports()[service])
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("service", SERVICES)
def test_image_and_entry_point_are_the_services(service: str) -> None:
    image = f"zapflow-{service}"
    deployment = objects("Deployment")[service]
    for container in all_containers(deployment):
        assert container["image"] == image
        assert "command" not in container, "the image's ENTRYPOINT runs zapflow-<service>"
    (entry,) = [i for i in kustomization()["images"] if i["name"] == image]
    assert entry["newName"].rsplit("/", 1)[-1] == image
    assert str(entry["newTag"]) not in ("", "latest")

    pyproject = tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == image
    assert image in pyproject["project"]["scripts"], "no console script for the ENTRYPOINT"


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_run_once_before_the_service_starts(service: str) -> None:
    spec = pod_spec(objects("Deployment")[service])
    (init,) = [c for c in spec.get("initContainers", []) if c.get("args") == ["migrate"]]
    assert init["image"] == main_container(service)["image"]
    assert "DATABASE_URL" in container_env(init)
    env = container_env(main_container(service))
    assert env[f"ZF_{service.upper()}_MIGRATE_ON_START"] == "false"


@pytest.mark.parametrize("service", SERVICES)
def test_termination_grace_covers_the_services_shutdown(service: str) -> None:
    spec = pod_spec(objects("Deployment")[service])
    container = main_container(service)
    grace = float(container_env(container).get(f"ZF_{service.upper()}_SHUTDOWN_GRACE_S", 10))
    pre_stop = 0.0
    if "lifecycle" in container:
        command = container["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep"
        pre_stop = float(command[1])
    # messages in hand (grace), then the HTTP server (grace again), then drain and close
    assert spec["terminationGracePeriodSeconds"] > grace
    assert spec["terminationGracePeriodSeconds"] >= pre_stop + 2 * grace + 10


@pytest.mark.parametrize(
    ("kind", "name"),
    [*(("Deployment", s) for s in SERVICES), ("StatefulSet", "nats")],
)
def test_every_container_declares_resources(kind: str, name: str) -> None:
    workload = objects(kind)[name]
    assert "terminationGracePeriodSeconds" in pod_spec(workload)
    for container in all_containers(workload):
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
        assert "memory" in resources["limits"], container["name"]


def pod_templates() -> Iterator[tuple[str, Doc]]:
    for doc in base_docs():
        if doc["kind"] in ("Deployment", "StatefulSet"):
            yield doc["metadata"]["name"], doc
    for doc in load_yaml(K8S / "jobs" / "dlq-replay.yaml"):
        yield doc["metadata"]["generateName"].rstrip("-"), doc


@pytest.mark.parametrize("workload", [pytest.param(w, id=name) for name, w in pod_templates()])
def test_pods_meet_the_restricted_pod_security_standard(workload: Doc) -> None:
    spec = pod_spec(workload)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in all_containers(workload):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]
    if workload["metadata"].get("name") != "nats":  # the Zapflow images: the Dockerfile's user
        assert spec["securityContext"]["runAsUser"] == dockerfile_uid()


# -- autoscaling and disruption -----------------------------------------------------------------


def test_sender_scales_on_the_backlog_of_its_partition_consumers() -> None:
    (scaled,) = objects("ScaledObject").values()
    target = scaled["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target["name"] == "sender"
    assert "sender" in objects("Deployment")

    partitions = {
        (c.stream, c.durable)
        for c in streams.consumers_owned_by("sender")
        if c.partition is not None
    }
    assert len(partitions) == subjects.SEND_PARTITIONS
    triggers = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"nats-jetstream"}
    watched = {(t["metadata"]["stream"], t["metadata"]["consumer"]) for t in triggers}
    assert watched == partitions, "the triggers must watch the consumers the contracts declare"

    # the replica count follows the sum of all partitions' backlogs
    modifiers = scaled["spec"]["advanced"]["scalingModifiers"]
    assert re.fullmatch(r"\s*\w+(\s*\+\s*\w+)*\s*", modifiers["formula"])
    terms = re.findall(r"\w+", modifiers["formula"])
    assert sorted(terms) == sorted(t["name"] for t in triggers)
    assert int(modifiers["target"]) > 0

    assert 2 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["maxReplicaCount"] <= subjects.SEND_PARTITIONS


def test_sender_scaler_reads_the_nats_monitoring_port() -> None:
    (scaled,) = objects("ScaledObject").values()
    headless = nats_headless_service()
    monitor = {p["name"]: p["port"] for p in headless["spec"]["ports"]}["monitor"]
    for trigger in scaled["spec"]["triggers"]:
        host, _, port = trigger["metadata"]["natsServerMonitoringEndpoint"].partition(":")
        service, namespace, *_ = host.split(".")
        assert (service, namespace) == (headless["metadata"]["name"], kustomization()["namespace"])
        assert int(port) == monitor


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "sender"])
def test_other_services_scale_on_cpu(service: str) -> None:
    hpas = [
        h
        for h in objects("HorizontalPodAutoscaler").values()
        if h["spec"]["scaleTargetRef"]
        == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
    ]
    (hpa,) = hpas
    assert hpa["spec"]["minReplicas"] >= 2
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"


@pytest.mark.parametrize("service", SERVICES)
def test_autoscaled_deployments_leave_the_replica_count_alone(service: str) -> None:
    assert "replicas" not in objects("Deployment")[service]["spec"]
    targets = [
        h["spec"]["scaleTargetRef"]["name"] for h in objects("HorizontalPodAutoscaler").values()
    ]
    targets += [s["spec"]["scaleTargetRef"]["name"] for s in objects("ScaledObject").values()]
    assert targets.count(service) == 1, "exactly one autoscaler per Deployment"


@pytest.mark.parametrize(
    ("kind", "name"),
    [*(("Deployment", s) for s in SERVICES), ("StatefulSet", "nats")],
)
def test_every_workload_has_a_disruption_budget(kind: str, name: str) -> None:
    labels = objects(kind)[name]["spec"]["template"]["metadata"]["labels"]
    budgets = [
        p for p in objects("PodDisruptionBudget").values() if selects(p["spec"]["selector"], labels)
    ]
    assert len(budgets) == 1
    assert budgets[0]["spec"].get("maxUnavailable") == 1


def test_gateway_ingress_reaches_the_gateway_port() -> None:
    (ingress,) = objects("Ingress").values()
    backends = [
        path["backend"]["service"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert backends
    service = objects("Service")["gateway"]
    pod_labels = objects("Deployment")["gateway"]["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    for backend in backends:
        assert backend["name"] == "gateway"
        (port,) = [
            p
            for p in service["spec"]["ports"]
            if p["name"] == backend["port"].get("name")
            or p["port"] == backend["port"].get("number")
        ]
        assert (
            port_number(main_container("gateway"), port["targetPort"]) == readme_ports()["gateway"]
        )


def test_gateway_ingress_publishes_the_api_and_webhooks_but_not_health_or_metrics() -> None:
    (ingress,) = objects("Ingress").values()
    paths = {path["path"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
    assert {"/v1", "/webhooks"} <= paths
    internal = ("/metrics", "/healthz", "/readyz")
    for path in paths:
        assert path != "/", "a catch-all prefix would publish /metrics"
        assert not any(inner.startswith(path) for inner in internal), path


def test_gateway_seals_channel_credentials_with_a_key_from_a_secret() -> None:
    env = container_env(main_container("gateway"))
    ref = env["ZF_GATEWAY_SECRETS_KEY"]["secretKeyRef"]
    assert ref["name"] == "zapflow-gateway"
    assert ref["key"] == "SECRETS_KEY"


# -- NATS ---------------------------------------------------------------------------------------


def nats_headless_service() -> Doc:
    sts = objects("StatefulSet")["nats"]
    service = objects("Service")[sts["spec"]["serviceName"]]
    assert service["spec"]["clusterIP"] == "None"
    return service


def nats_conf() -> str:
    sts = objects("StatefulSet")["nats"]
    (volume,) = [v for v in pod_spec(sts)["volumes"] if "configMap" in v]
    text = configmaps()[volume["configMap"]["name"]]["nats.conf"]
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def test_nats_is_a_three_node_jetstream_cluster() -> None:
    sts = objects("StatefulSet")["nats"]
    assert sts["spec"]["replicas"] == 3
    (container,) = pod_spec(sts)["containers"]
    assert container["image"].startswith("nats:2.15")

    conf = nats_conf()
    jetstream = re.search(r"^jetstream\s*\{([^}]*)\}", conf, re.MULTILINE)
    assert jetstream, "JetStream is not enabled"
    store = re.search(r"store_dir:\s*(\S+)", jetstream.group(1))
    assert store
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] in claims]
    assert store.group(1) == mount["mountPath"], "the JetStream store must be on the PVC"

    routes = re.findall(r"nats://([\w-]+)-(\d+)\.([\w-]+):6222", conf)
    assert {(name, service) for name, _, service in routes} == {("nats", "nats-headless")}
    assert sorted(int(i) for _, i, _ in routes) == [0, 1, 2]
    assert sts["spec"]["serviceName"] == "nats-headless"
    assert nats_headless_service()["spec"]["publishNotReadyAddresses"] is True

    # server names are the pod names (KEDA's scaler finds consumer leaders by them)
    assert re.search(r"^server_name:\s*\$POD_NAME\s*$", conf, re.MULTILINE)
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_services_reach_nats_through_its_client_service() -> None:
    match = re.fullmatch(r"nats://([\w-]+):(\d+)", configmaps()["zapflow-common"]["NATS_URL"])
    assert match, "NATS_URL should name the client Service and port"
    host, port = match.groups()
    service = objects("Service")[host]
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    sts = objects("StatefulSet")["nats"]
    assert selects(
        {"matchLabels": service["spec"]["selector"]}, sts["spec"]["template"]["metadata"]["labels"]
    )
    for service_name in SERVICES:
        assert "zapflow-common" in [
            s["configMapRef"]["name"] for s in main_container(service_name)["envFrom"]
        ]


# -- the Dockerfile -----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if raw.lstrip().startswith("#"):  # comments, also between continuation lines
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line:
            lines.append(line)
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for instruction, args in dockerfile_instructions():
        if instruction == "FROM":
            current = args.split()[-1] if " AS " in args.upper() else args
            stages[current] = []
        stages[current].append((instruction, args))
    return stages


def args_of(stage: list[tuple[str, str]]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for instruction, args in stage:
        if instruction == "ARG":
            name, sep, default = args.partition("=")
            found[name] = default.strip('"') if sep else None
    return found


def dockerfile_uid() -> int:
    users = [args for instruction, args in dockerfile_stages()["runtime"] if instruction == "USER"]
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "USER must be numeric for runAsNonRoot"
    return int(uid)


def test_dockerfile_builds_one_service_with_uv_from_the_lock() -> None:
    stages = dockerfile_stages()
    assert args_of(stages[""])["PYTHON_IMAGE"] == "python:3.11-slim"
    froms = [args for stage in stages.values() for i, args in stage if i == "FROM"]
    assert len(froms) == 2
    assert all(f.startswith("${PYTHON_IMAGE}") for f in froms)

    build = stages["build"]
    build_args = args_of(build)
    assert "SERVICE" in build_args
    assert build_args["PACKAGE"] == "zapflow-${SERVICE}"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (uv_version,) = re.findall(r"^UV_VERSION\s*:=\s*(\S+)", makefile, re.MULTILINE)
    assert build_args["UV_VERSION"] == uv_version == "0.13.9"
    runs = [args for i, args in build if i == "RUN"]
    assert any("pip install" in r and '"uv==${UV_VERSION}"' in r for r in runs)
    envs = " ".join(args for i, args in build if i == "ENV")
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in envs

    syncs = [r for r in runs if "uv sync" in r]
    assert syncs
    for sync in syncs:
        for flag in ("--frozen", "--no-dev", '--package "${PACKAGE}"'):
            assert flag in sync, (flag, sync)
    assert "--no-install-workspace" not in syncs[-1], "the last sync installs the service"


def test_image_runs_the_service_entry_point_as_non_root() -> None:
    runtime = dockerfile_stages()["runtime"]
    assert args_of(runtime)["COMMAND"] == "zapflow-${SERVICE}"
    copies = [args for i, args in runtime if i == "COPY"]
    assert any(
        "--from=build" in c and c.split()[-2:] == ["/app/.venv", "/app/.venv"] for c in copies
    )
    assert dockerfile_uid() > 0
    envs = " ".join(args for i, args in runtime if i == "ENV")
    assert "ZF_COMMAND=${COMMAND}" in envs

    (entrypoint,) = [json.loads(args) for i, args in runtime if i == "ENTRYPOINT"]
    assert entrypoint[:2] == ["/bin/sh", "-c"]
    assert entrypoint[2].startswith("exec ")
    for service in SERVICES:
        # what the shell runs once the build args are in: the service's console script
        command = entrypoint[2].replace("${ZF_COMMAND}", f"zapflow-{service}")
        assert f'exec "/app/.venv/bin/zapflow-{service}" "$@"' == command


def test_build_context_filter_keeps_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allow-list: everything else stays out (.venv, .git, .zapflow)"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for instruction, args in dockerfile_instructions():
        if instruction == "COPY" and "--from=" not in args:
            for source in args.split()[:-1]:
                if not source.startswith("--"):
                    assert source.rstrip("/") in allowed, source


# -- rendering, where a kustomize is installed ------------------------------------------------


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.mark.parametrize("target", ["base", "overlays/local", "overlays/prod"])
def test_kustomizations_render(target: str) -> None:
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl on PATH")
    out = subprocess.run(
        [*command, str(K8S / target)], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert all(d["metadata"].get("namespace", "zapflow") == "zapflow" for d in docs)
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            spec = pod_spec(doc)
            for container in all_containers(doc):
                assert ":" in container["image"], f"untagged image {container['image']}"
                for source in container.get("envFrom", []):
                    if "secretRef" in source:  # created per deployment, never in git
                        continue
                    assert ("ConfigMap", source["configMapRef"]["name"]) in names
            for volume in spec.get("volumes", []):
                if "configMap" in volume:
                    assert ("ConfigMap", volume["configMap"]["name"]) in names
    if target == "overlays/local":
        assert ("Secret", "zapflow-database") in names
        assert "ScaledObject" not in {kind for kind, _ in names}


# -- what production needs: replicas, provider requests, media, stream sizes --------------------
# The overlays are read as kustomize would apply them, without kustomize: ConfigMap generators
# merged into the base's (behavior: merge), strategic-merge patches adding container env.

OVERLAYS = K8S / "overlays"
TARGETS = ("base", "overlays/local", "overlays/prod")
PROVIDER_CALLERS = {"sender", "ingest"}  # send messages; download inbound media


@cache
def overlay_kustomization(target: str) -> Doc:
    (doc,) = load_yaml(K8S / target / "kustomization.yaml")
    return doc


def overlay_configmaps(target: str) -> dict[str, dict[str, str]]:
    maps = {name: dict(data) for name, data in configmaps().items()}
    if target == "base":
        return maps
    kust = overlay_kustomization(target)
    assert "../../base" in kust["resources"]
    for gen in kust.get("configMapGenerator", []):
        assert gen.get("behavior") == "merge", "overlays extend the base's ConfigMaps"
        for env in gen.get("envs", []):
            maps[gen["name"]].update(parse_env_file(K8S / target / env))
    return maps


def overlay_patches(target: str) -> list[Doc]:
    if target == "base":
        return []
    docs = []
    for patch in overlay_kustomization(target).get("patches", []):
        # JSON patches (inline, or with a target) touch no env; the NATS CA mount is checked
        # in test_nats_identities.py
        if "path" in patch and "target" not in patch:
            docs.extend(load_yaml(K8S / target / patch["path"]))
    return docs


def rendered_env(service: str, target: str) -> dict[str, Any]:
    """The main container's environment in ``target``: base envFrom and env, then patches."""
    maps = overlay_configmaps(target)
    container = main_container(service)
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        env[item["name"]] = item["value"] if "value" in item else item["valueFrom"]
    for doc in overlay_patches(target):
        if (doc["kind"], doc["metadata"]["name"]) == ("Deployment", service):
            for patched in pod_spec(doc)["containers"]:
                if patched["name"] == service:
                    for item in patched.get("env", []):
                        env[item["name"]] = item["value"] if "value" in item else item["valueFrom"]
    return env


def byte_size(text: str) -> int:
    """``18Gi`` / ``18G`` / ``512MiB`` as bytes (binary units, as nats-server reads them)."""
    match = re.fullmatch(r"(\d+)\s*([KMGT]?)(?:i?B?)", text.strip(), re.IGNORECASE)
    assert match, text
    return int(match.group(1)) * 1024 ** "_KMGT".index(match.group(2).upper() or "_")


def service_settings(env: dict[str, Any]) -> Any:
    """The shared settings a service builds from ``env`` (validated as at start-up)."""
    from zapflow.runtime.settings import BaseServiceSettings

    plain = {k: v for k, v in env.items() if isinstance(v, str)}
    with pytest.MonkeyPatch.context() as mp:
        for name in ("ZF_STREAM_REPLICAS", "ZF_STREAM_MAX_BYTES", "ZF_STREAM_MAX_AGE"):
            mp.delenv(name, raising=False)
        for name, value in plain.items():
            mp.setenv(name, value)
        return BaseServiceSettings()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("service", SERVICES)
def test_every_stream_and_kv_bucket_has_a_replica_on_each_nats_node(
    target: str, service: str
) -> None:
    env = rendered_env(service, target)
    nodes = objects("StatefulSet")["nats"]["spec"]["replicas"]
    assert env["ZF_STREAM_REPLICAS"] == str(nodes) == "3"
    assert service_settings(env).stream_limits().replicas == 3
    # replicas are shared: a per-service value would make services fight over a stream
    assert not [
        name for name in env if name.endswith("_STREAM_REPLICAS") and name != "ZF_STREAM_REPLICAS"
    ]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("service", SERVICES)
def test_provider_requests_are_allowed_only_where_providers_are_called(
    target: str, service: str
) -> None:
    allowed = rendered_env(service, target).get("ZF_ALLOW_PROVIDER_REQUESTS", "")
    assert (allowed.lower() in {"1", "true", "yes", "on"}) is (service in PROVIDER_CALLERS)


@pytest.mark.parametrize("target", TARGETS)
def test_media_is_stored_on_a_volume_or_in_s3_never_on_the_read_only_root(target: str) -> None:
    env = rendered_env("ingest", target)
    container = main_container("ingest")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    store = env.get("ZF_INGEST_MEDIA_STORE", "filesystem")
    if store == "filesystem":
        media_dir = Path(env["ZF_INGEST_MEDIA_DIR"])
        assert media_dir.is_absolute(), "a relative media dir lands on the read-only root"
        volumes = {v["name"]: v for v in pod_spec(objects("Deployment")["ingest"])["volumes"]}
        mounts = [m for m in container["volumeMounts"] if media_dir.is_relative_to(m["mountPath"])]
        assert mounts, f"{media_dir} is on no volume"
        assert not mounts[0].get("readOnly")
        assert mounts[0]["name"] in volumes
    else:
        assert store == "s3"
        assert env["ZF_INGEST_S3_ENDPOINT"].startswith("https://")
        assert env["ZF_INGEST_S3_BUCKET"]
        for key in ("ZF_INGEST_S3_ACCESS_KEY_ID", "ZF_INGEST_S3_SECRET_ACCESS_KEY"):
            assert env[key]["secretKeyRef"]["name"] == "zapflow-media-s3", key


def test_prod_uses_s3_for_media() -> None:
    assert rendered_env("ingest", "overlays/prod")["ZF_INGEST_MEDIA_STORE"] == "s3"


def test_prod_sizes_every_stream_and_they_fit_the_nats_store() -> None:
    from zapflow.runtime.partitions import BUCKET_MAX_BYTES

    limits = service_settings(rendered_env("sender", "overlays/prod")).stream_limits()
    buckets = {b.stream: b for b in streams.ALL_OBJECT_STORES}
    assert set(limits.max_bytes) == {s.name for s in streams.ALL_STREAMS} | set(buckets)
    for stream in streams.ALL_STREAMS:
        assert limits.max_bytes[stream.name] >= stream.max_bytes, stream.name
    for bucket in buckets.values():
        assert limits.bucket_bytes(bucket) >= bucket.max_bytes, bucket.stream
    # every node holds a replica of every R3 stream, and reserves each one's max_bytes up front
    store = re.search(r"max_file_store:\s*(\S+)", nats_conf())
    assert store
    reserved = sum(limits.max_bytes.values()) + BUCKET_MAX_BYTES
    assert reserved <= 0.8 * byte_size(store.group(1)), "leave room for raft logs and state"
    claim = objects("StatefulSet")["nats"]["spec"]["volumeClaimTemplates"][0]
    assert byte_size(store.group(1)) < byte_size(claim["spec"]["resources"]["requests"]["storage"])


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_gets_the_same_stream_settings_in_prod(service: str) -> None:
    mine = service_settings(rendered_env(service, "overlays/prod")).stream_limits()
    assert mine == service_settings(rendered_env("gateway", "overlays/prod")).stream_limits()


def test_prod_overlay_holds_no_secret_and_names_the_ones_it_needs() -> None:
    kust = overlay_kustomization("overlays/prod")
    assert "secretGenerator" not in kust
    for doc in overlay_patches("overlays/prod"):
        assert doc["kind"] != "Secret"


@cache
def retention_table() -> dict[str, list[str]]:
    """Rows of the "Retention" table in deploy/README.md, by stream name."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Retention", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `ZF_"):
            rows[cells[0].strip("`")] = cells
    return rows


@pytest.mark.parametrize("stream", streams.ALL_STREAMS, ids=lambda s: s.name)
def test_the_retention_table_documents_every_stream_as_declared(
    stream: streams.StreamSpec,
) -> None:
    # | stream | kind | keeps | max age | size (default / prod) | when full |
    row = retention_table()[stream.name]
    age = "forever" if stream.max_age_s is None else f"{stream.max_age_s / 86_400:g} d"
    assert row[3] == age, row
    prod = service_settings(rendered_env("sender", "overlays/prod")).stream_limits()
    default_size, prod_size = (byte_size(part) for part in row[4].split("/"))
    assert (default_size, prod_size) == (stream.max_bytes, prod.max_bytes[stream.name]), row
    assert row[5].startswith("refuses new" if stream.discard == "new" else "drops oldest"), row


def _size(text: str) -> int:
    """A size as nginx or nats-server write it (``16m``, ``8MB``, ``1048576``) in bytes."""
    match = re.fullmatch(r"(\d+)\s*([kKmMgG]?)[bB]?", text.strip())
    assert match, f"not a size: {text!r}"
    return int(match.group(1)) * 1024 ** " KMG".index((match.group(2) or " ").upper())


def test_webhook_body_limits_agree_with_the_ingress_and_nats() -> None:
    """The gateway refuses bodies over its limit (413), the ingress must let them through to it,
    and what does not fit one NATS message (the server's max_payload, 1 MiB unless nats.conf
    sets it) goes to the zf_inbound_bodies object store in chunks under it."""
    from zapflow.gateway.settings import Settings as GatewaySettings
    from zapflow.runtime.bodies import CHUNK_BYTES, inline_limit

    (ingress,) = objects("Ingress").values()
    ingress_limit = _size(
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    )
    env = parse_env_file(BASE / "config" / "gateway.env")
    default = GatewaySettings.model_fields["webhook_max_body_bytes"].default
    gateway_limit = int(env.get("ZF_GATEWAY_WEBHOOK_MAX_BODY_BYTES", default))
    assert ingress_limit >= gateway_limit >= 5 * 1024 * 1024
    setting = re.search(r"^\s*max_payload\s*:\s*(\S+)", nats_conf(), re.MULTILINE)
    max_payload = _size(setting.group(1)) if setting else 1024 * 1024
    assert max_payload > CHUNK_BYTES
    assert inline_limit(max_payload) >= 256 * 1024  # typical webhooks still travel inline
    assert "ZF_GATEWAY_WEBHOOK_INLINE_MAX_BYTES" not in env  # derived from max_payload
