"""Static checks of the deployment files: deploy/Dockerfile, deploy/compose.yaml, deploy/k8s/.

No Docker engine or Kubernetes cluster runs here, so these tests hold the files to the code
instead: every DLR_* variable is a field of `deploy.settings.Settings` and every value
parses as one; ports, probe paths and scrape targets are the ones the processes serve;
the worker keeps its RocksDB state on a per-pod volume at DLR_DATA_DIR; every workload
has resources and probes; the image runs `dlr` as a non-root user; every metric the
runbook (deploy/README.md) names exists.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.local.ports import free_port
from deploy.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
README = DEPLOY / "README.md"
SECRET_TEMPLATE = K8S / "secret.example.yaml"

#: Environment variable of every settings field: field `x` is `DLR_X`.
SETTINGS_ENV = {f"DLR_{name.upper()}" for name in Settings.model_fields}
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
DLR_SERVICES = ("ingress", "api", "worker", "sink", "dispatch", "alerts", "dashboard")


# -- loading ------------------------------------------------------------------------------


def load_all(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a file."""
    with path.open() as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def k8s_objects() -> list[dict[str, Any]]:
    return [doc for path in k8s_files() for doc in load_all(path)]


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


def workloads() -> list[dict[str, Any]]:
    return [o for o in k8s_objects() if o["kind"] in WORKLOAD_KINDS]


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def all_containers(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    return [*spec.get("initContainers", []), *spec["containers"]]


def workload_for(component: str) -> dict[str, Any]:
    """The Deployment/StatefulSet whose main container runs `dlr <component>`."""
    found = [w for w in workloads() if pod_spec(w)["containers"][0].get("args") == [component]]
    assert len(found) == 1, f"expected one workload running `dlr {component}`, found {found}"
    return found[0]


def settings_from(env: Mapping[str, str]) -> Settings:
    """Settings from environment-style variables, without reading the real environment."""
    unknown = sorted(k for k in env if k.startswith("DLR_") and k not in SETTINGS_ENV)
    assert not unknown, f"not settings fields: {unknown}"
    return Settings.from_vars(env)


# -- Dockerfile -----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.strip().partition(" ")
        out.append((keyword.upper(), rest.strip()))
        current = ""
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    return instructions[last_from:]


def dockerfile_env() -> dict[str, str]:
    """ENV of the runtime image (KEY=VALUE form)."""
    env: dict[str, str] = {}
    for keyword, rest in final_stage():
        if keyword == "ENV":
            for token in shlex.split(rest):
                key, sep, value = token.partition("=")
                assert sep, f"use ENV KEY=VALUE, not {token!r}"
                env[key] = value
    return env


def test_dockerfile_base_image_entrypoint_and_command() -> None:
    instructions = dockerfile_instructions()
    args = {}
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: args[str(m.group(1))], rest.split()[0])
        for keyword, rest in instructions
        if keyword == "FROM"
    ]
    assert bases, "no FROM"
    assert all(base == "python:3.11-slim" for base in bases), bases
    stage = final_stage()
    entrypoints = [json.loads(rest) for kw, rest in stage if kw == "ENTRYPOINT"]
    commands = [json.loads(rest) for kw, rest in stage if kw == "CMD"]
    assert entrypoints[-1] == ["dlr"], "exec-form ENTRYPOINT must be the dlr command"
    assert commands[-1] == ["ingress"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "dlr" in project["project"]["scripts"], "pyproject must install the dlr command"


def test_dockerfile_runs_as_non_root_user() -> None:
    users = [rest for kw, rest in final_stage() if kw == "USER"]
    assert users, "the runtime stage must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    # Kubernetes checks runAsNonRoot against a numeric uid, and fsGroup must match it.
    assert user.isdigit(), "use a numeric uid so runAsNonRoot can be verified"
    for workload in [*workloads(), *[o for o in k8s_objects() if o["kind"] == "Job"]]:
        context = pod_spec(workload).get("securityContext", {})
        assert context.get("runAsNonRoot") is True, workload["metadata"]["name"]
        assert str(context.get("runAsUser")) == user, workload["metadata"]["name"]


def test_dockerfile_installs_every_package_of_the_project() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {
        rest.split()[0].strip("./")
        for kw, rest in dockerfile_instructions()
        if kw == "COPY" and not rest.startswith("--from")
    }
    assert packages <= copied, f"packages not copied into the build: {packages - copied}"
    assert "pyproject.toml" in copied
    runs = " ".join(rest for kw, rest in dockerfile_instructions() if kw == "RUN")
    assert "pip install ." in runs


def test_dockerfile_env_is_valid_settings_and_data_dir_belongs_to_the_user() -> None:
    env = dockerfile_env()
    settings = settings_from(env)
    assert settings.ingress_host not in LOOPBACK, "the ingress must listen beyond loopback"
    runs = " ".join(rest for kw, rest in final_stage() if kw == "RUN")
    assert f"mkdir -p {settings.data_dir}" in runs
    assert re.search(rf"chown \S+ {re.escape(str(settings.data_dir))}", runs)


# -- DLR_* variables ------------------------------------------------------------------------


def deploy_texts() -> Iterator[tuple[Path, str]]:
    for path in [DOCKERFILE, COMPOSE, README, *sorted(K8S.glob("*.yaml"))]:
        if path.exists():
            yield path, path.read_text()


def test_every_dlr_variable_in_deploy_files_is_a_settings_field() -> None:
    seen: set[str] = set()
    for path, text in deploy_texts():
        for name in re.findall(r"\bDLR_[A-Z0-9_]*[A-Z0-9]\b", text):
            seen.add(name)
            assert name in SETTINGS_ENV, f"{path.relative_to(ROOT)}: {name} is not a setting"
    assert len(seen) > 20


def test_configmap_and_secret_keys_are_valid_settings() -> None:
    config = find("ConfigMap", "dlr-config")["data"]
    secrets = {
        key: value
        for doc in load_all(SECRET_TEMPLATE)
        for key, value in doc.get("stringData", {}).items()
    }
    assert not set(config) & set(secrets), "a setting is both in the ConfigMap and a Secret"
    settings = settings_from({**dockerfile_env(), **config, **secrets})
    # Values that only fail when a process uses them.
    for cidr in settings.trusted_proxies.split(","):
        ipaddress.ip_network(cidr.strip())
    assert settings.public_base_url and settings.public_base_url.startswith("https://")
    assert not settings.dev_secrets
    assert settings.https_required, "production refuses plain HTTP (behind the proxy: X-F-P)"
    assert settings.vonage_signature_method == "sha256", "new setups start from sha256"
    assert all(isinstance(v, str) for v in config.values()), "ConfigMap values must be strings"


def test_secret_template_holds_placeholders_only() -> None:
    for doc in load_all(SECRET_TEMPLATE):
        assert doc["kind"] == "Secret"
        for key, value in doc["stringData"].items():
            assert "REPLACE_ME" in value, f"{key}: the template must not carry a real value"
    kustomization = load_all(K8S / "kustomization.yaml")[0]
    assert SECRET_TEMPLATE.name not in kustomization["resources"]


# -- Kubernetes ---------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_all(K8S / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    expected = {p.name for p in k8s_files()} - {SECRET_TEMPLATE.name}
    assert listed == expected
    for obj in k8s_objects():
        assert obj.get("apiVersion") and obj.get("kind"), obj
        assert obj["metadata"].get("name"), obj
        assert "namespace" not in obj["metadata"], "namespace comes from kubectl -n / kustomize"


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """The DLR_* environment one container gets: image ENV, envFrom, then env."""
    objects = k8s_objects() + load_all(SECRET_TEMPLATE)
    sources = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    env = {k: v for k, v in dockerfile_env().items() if k.startswith("DLR_")}
    for ref in container.get("envFrom", []):
        if "configMapRef" in ref:
            env.update(sources[("ConfigMap", ref["configMapRef"]["name"])]["data"])
        else:
            env.update(sources[("Secret", ref["secretRef"]["name"])]["stringData"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            key_ref = item["valueFrom"]["secretKeyRef"]
            secret = sources[("Secret", key_ref["name"])]
            env[item["name"]] = secret["stringData"][key_ref["key"]]
    return env


def test_every_referenced_configmap_and_secret_exists() -> None:
    for obj in [*workloads(), *[o for o in k8s_objects() if o["kind"] == "Job"]]:
        for container in all_containers(obj):
            container_env(container)  # KeyError when a reference is dangling


def test_containers_run_known_dlr_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from deploy.cli import main

    commands = {
        c["args"][0]
        for obj in [*workloads(), *[o for o in k8s_objects() if o["kind"] == "Job"]]
        for c in all_containers(obj)
    }
    assert commands == {*DLR_SERVICES, "topics", "migrate"}
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0, command
    capsys.readouterr()


def test_every_workload_has_resources_probes_and_a_hardened_container() -> None:
    assert {w["kind"] for w in workloads()} == {"Deployment", "StatefulSet"}
    for workload in workloads():
        for container in all_containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), f"{where}: {part}"
            assert "readinessProbe" in container, f"{where}: readinessProbe"
            assert "livenessProbe" in container, f"{where}: livenessProbe"
            security = container.get("securityContext", {})
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("readOnlyRootFilesystem") is True, where
        assert pod_spec(workload).get("automountServiceAccountToken") is False


def test_job_containers_have_resources() -> None:
    jobs = [o for o in k8s_objects() if o["kind"] == "Job"]
    assert jobs
    for job in jobs:
        for container in all_containers(job):
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), container["name"]


def test_selectors_services_hpa_and_pdbs_match_workloads() -> None:
    pods = []
    for workload in workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), workload["metadata"]["name"]
        pods.append(labels)

    def matches(selector: Mapping[str, str]) -> bool:
        return any(selector.items() <= labels.items() for labels in pods)

    for obj in k8s_objects():
        if obj["kind"] == "Service":
            assert matches(obj["spec"]["selector"]), obj["metadata"]["name"]
        elif obj["kind"] == "PodDisruptionBudget":
            assert matches(obj["spec"]["selector"]["matchLabels"]), obj["metadata"]["name"]
        elif obj["kind"] == "HorizontalPodAutoscaler":
            target = obj["spec"]["scaleTargetRef"]
            find(target["kind"], target["name"])


def named_port(container: Mapping[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert numbers, f"no container port named {port}"
    return int(numbers[0])


def probe_target(container: Mapping[str, Any], probe: Mapping[str, Any]) -> tuple[int, str]:
    """(port, path) a probe reaches: httpGet, or an exec that fetches a loopback URL."""
    if "httpGet" in probe:
        return named_port(container, probe["httpGet"]["port"]), probe["httpGet"]["path"]
    command = " ".join(probe["exec"]["command"])
    found = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/.-]*)", command)
    assert found, f"exec probe does not fetch a loopback URL: {command}"
    return int(found.group(1)), found.group(2)


def scrape_target(workload: Mapping[str, Any]) -> tuple[int, str]:
    notes = workload["spec"]["template"]["metadata"].get("annotations", {})
    assert notes.get("prometheus.io/scrape") == "true", workload["metadata"]["name"]
    return int(notes["prometheus.io/port"]), notes["prometheus.io/path"]


def test_ingress_ports_probes_and_scrape_match_the_app() -> None:
    from ingress.app import create_app

    workload = workload_for("ingress")
    assert workload["kind"] == "Deployment"
    container = pod_spec(workload)["containers"][0]
    settings = settings_from(container_env(container))
    assert settings.ingress_host not in LOOPBACK
    port = settings.ingress_port
    assert named_port(container, "http") == port
    assert probe_target(container, container["readinessProbe"]) == (port, "/readyz")
    assert probe_target(container, container["livenessProbe"]) == (port, "/healthz")
    assert scrape_target(workload) == (port, "/metrics")
    routes = {getattr(r, "path", "") for r in create_app(settings).routes}
    assert {"/readyz", "/healthz", "/metrics"} <= routes
    service = find("Service", "dlr-ingress")
    target = service["spec"]["ports"][0]["targetPort"]
    assert named_port(container, target) == port
    hpa = [
        o
        for o in k8s_objects()
        if o["kind"] == "HorizontalPodAutoscaler"
        and o["spec"]["scaleTargetRef"]["name"] == workload["metadata"]["name"]
    ]
    assert len(hpa) == 1
    assert hpa[0]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert any(
        o["kind"] == "PodDisruptionBudget"
        and o["spec"]["selector"]["matchLabels"].items()
        <= workload["spec"]["template"]["metadata"]["labels"].items()
        for o in k8s_objects()
    )


def test_api_ports_probes_and_scrape_match_the_app() -> None:
    from ingress.api.app import create_app

    workload = workload_for("api")
    assert workload["kind"] == "Deployment"
    container = pod_spec(workload)["containers"][0]
    settings = settings_from(container_env(container))
    assert settings.api_host not in LOOPBACK
    port = settings.api_port
    assert named_port(container, "https") == port
    assert probe_target(container, container["readinessProbe"]) == (port, "/readyz")
    assert probe_target(container, container["livenessProbe"]) == (port, "/healthz")
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS", probe
    assert scrape_target(workload) == (port, "/metrics")
    notes = workload["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/scheme"] == "https"
    # HTTPS from the mounted kubernetes.io/tls Secret (outside local mode plain HTTP is
    # refused, and nothing sits in front of this Service to terminate TLS)
    assert settings.https_required and settings.tls_cert and settings.tls_key
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    tls_volume = next(
        n for n, v in volumes.items() if v.get("secret", {}).get("secretName") == "dlr-api-tls"
    )
    assert settings.tls_cert == Path(mounts[tls_volume]) / "tls.crt"
    assert settings.tls_key == Path(mounts[tls_volume]) / "tls.key"
    templates = {d["metadata"]["name"]: d for d in load_all(SECRET_TEMPLATE)}
    assert templates["dlr-api-tls"]["type"] == "kubernetes.io/tls"
    assert "REPLACE_ME" in settings.api_keys  # from the template; a real one parses
    app = create_app(settings.model_copy(update={"api_keys": ""}))
    routes = {getattr(r, "path", "") for r in app.routes}
    assert {"/readyz", "/healthz", "/metrics", "/openapi.json", "/v1/messages"} <= routes
    service = find("Service", "dlr-api")
    assert named_port(container, service["spec"]["ports"][0]["targetPort"]) == port
    refs = {e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e}
    assert refs == {"dlr-api-keys", "dlr-storage-credentials"}


def test_worker_is_a_statefulset_with_its_state_on_a_per_pod_volume() -> None:
    workload = workload_for("worker")
    assert workload["kind"] == "StatefulSet"
    container = pod_spec(workload)["containers"][0]
    env = container_env(container)
    settings = settings_from(env)
    claims = {t["metadata"]["name"] for t in workload["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts.get(str(settings.data_dir)) in claims, "DLR_DATA_DIR must be a PVC mount"
    assert pod_spec(workload)["securityContext"].get("fsGroup"), "the PVC must be writable"
    # One consumer group: the worker id comes from the shared ConfigMap, never per pod.
    assert not [e for e in container.get("env", []) if e["name"] == "DLR_WORKER_ID"]
    assert "DLR_WORKER_ID" in find("ConfigMap", "dlr-config")["data"]
    assert 1 <= workload["spec"]["replicas"] <= settings.topic_partitions
    assert find("Service", workload["spec"]["serviceName"])["spec"]["clusterIP"] == "None"


def test_worker_ports_probes_and_scrape_match_faust() -> None:
    from streams.app import create_app

    workload = workload_for("worker")
    container = pod_spec(workload)["containers"][0]
    settings = settings_from(container_env(container))
    app = create_app(settings)
    port = settings.worker_web_port
    assert named_port(container, "metrics") == port
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        if kind in container:
            assert probe_target(container, container[kind]) == (port, "/healthz"), kind
            if "httpGet" in container[kind]:
                # kubelet probes the pod IP: faust must bind beyond loopback.
                assert app.conf.web_bind not in LOOPBACK
    assert scrape_target(workload) == (port, "/metrics")


def test_worker_and_sink_are_at_most_one_per_partition() -> None:
    partitions = int(find("ConfigMap", "dlr-config")["data"]["DLR_TOPIC_PARTITIONS"])
    for component in ("worker", "sink", "dispatch"):
        assert workload_for(component)["spec"]["replicas"] <= partitions, component


def test_sink_ports_probes_and_scrape_match_the_service() -> None:
    import inspect

    from sinks import service

    workload = workload_for("sink")
    container = pod_spec(workload)["containers"][0]
    settings = settings_from(container_env(container))
    assert settings.sink_metrics_host not in LOOPBACK, "probes and scrapes come from outside"
    port = settings.sink_metrics_port
    for kind in ("readinessProbe", "livenessProbe"):
        assert probe_target(container, container[kind]) == (port, "/healthz"), kind
        if "httpGet" in container[kind]:
            assert '"127.0.0.1"' not in inspect.getsource(service.main_async)
    assert scrape_target(workload) == (port, "/metrics")
    assert settings.clickhouse_url, "the sink must use an external ClickHouse"


async def test_sink_http_server_answers_healthz_and_metrics() -> None:
    import httpx

    from sinks.service import Sink, serve_http

    port = free_port()
    runner = await serve_http(Sink(Settings.model_validate({})), "127.0.0.1", port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            assert "dlr_sink_lag" in metrics.text
    finally:
        await runner.cleanup()


def test_dispatch_ports_probes_scrape_and_secrets_match_the_service() -> None:
    workload = workload_for("dispatch")
    assert workload["kind"] == "Deployment"
    container = pod_spec(workload)["containers"][0]
    settings = settings_from(container_env(container))
    port = settings.dispatch_metrics_port
    assert named_port(container, "metrics") == port
    for kind in ("readinessProbe", "livenessProbe"):
        assert probe_target(container, container[kind]) == (port, "/healthz"), kind
    assert scrape_target(workload) == (port, "/metrics")
    assert settings.dispatch_metrics_host not in LOOPBACK, "Prometheus scrapes the pod IP"
    # Endpoints and signing secrets come from a Secret, and they make a valid route table.
    config = find("ConfigMap", "dlr-config")["data"]
    assert "DLR_ACTION_ENDPOINTS" not in config and "DLR_ACTION_SIGNING_SECRETS" not in config
    assert settings.action_routes and settings.signing_secrets


async def test_dispatch_http_server_answers_healthz_and_metrics() -> None:
    import httpx

    from sinks._http import serve_metrics
    from sinks.dispatch.service import Dispatcher

    port = free_port()
    dispatcher = Dispatcher(Settings.model_validate({}))
    runner = await serve_metrics(dispatcher.metrics.registry, "127.0.0.1", port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200 and "dlr_dispatch_lag" in metrics.text
    finally:
        await runner.cleanup()


# -- compose --------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR:?error} with nothing set in the environment."""

    def fill(match: re.Match[str]) -> str:
        operator, default = match.group(2), match.group(3)
        if operator and operator.endswith("-"):
            return default or ""
        return f"set-{match.group(1).lower()}"  # ${VAR:?...}: the user must provide it

    return _INTERPOLATION.sub(fill, value)


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_all(COMPOSE)[0]
    return data


def compose_env(service: str) -> dict[str, str]:
    environment = compose()["services"][service].get("environment", {})
    assert isinstance(environment, dict), "use the mapping form of environment"
    values = {k: interpolate(str(v)) for k, v in environment.items()}
    return {**{k: v for k, v in dockerfile_env().items() if k.startswith("DLR_")}, **values}


def healthcheck_target(service: str) -> tuple[int, str]:
    test = " ".join(compose()["services"][service]["healthcheck"]["test"])
    found = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/.-]*)", test)
    assert found, f"{service}: healthcheck does not fetch a loopback URL"
    return int(found.group(1)), found.group(2)


def test_compose_services_build_the_image_and_run_dlr() -> None:
    services = compose()["services"]
    expected = {"kafka", "clickhouse", "topics", "migrate", "prometheus", "grafana", *DLR_SERVICES}
    assert set(services) == expected
    for name in ("topics", "migrate", *DLR_SERVICES):
        service = services[name]
        assert service["command"] == [name]
        build = service["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        settings = settings_from(compose_env(name))
        assert settings.kafka_bootstrap and settings.clickhouse_url
        host, _, port = settings.kafka_bootstrap.partition(":")
        assert host in services and port == "9092", settings.kafka_bootstrap
        assert "@clickhouse:8123" in settings.clickhouse_url
    for name in ("kafka", "clickhouse", *DLR_SERVICES):
        assert "healthcheck" in services[name], name
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")


def test_compose_ports_and_healthchecks_match_the_code() -> None:
    services = compose()["services"]
    ingress = settings_from(compose_env("ingress"))
    assert ingress.ingress_host not in LOOPBACK
    assert healthcheck_target("ingress") == (ingress.ingress_port, "/readyz")
    assert f"{ingress.ingress_port}:{ingress.ingress_port}" in services["ingress"]["ports"]
    api = settings_from(compose_env("api"))
    assert api.api_host not in LOOPBACK
    assert healthcheck_target("api") == (api.api_port, "/readyz")
    assert f"{api.api_port}:{api.api_port}" in services["api"]["ports"]
    worker = settings_from(compose_env("worker"))
    assert healthcheck_target("worker") == (worker.worker_web_port, "/healthz")
    dispatch = settings_from(compose_env("dispatch"))
    assert healthcheck_target("dispatch") == (dispatch.dispatch_metrics_port, "/healthz")
    sink = settings_from(compose_env("sink"))
    assert healthcheck_target("sink") == (sink.sink_metrics_port, "/healthz")
    alerts = settings_from(compose_env("alerts"))
    assert alerts.alert_metrics_host not in LOOPBACK
    assert healthcheck_target("alerts") == (alerts.alert_metrics_port, "/healthz")
    dashboard = settings_from(compose_env("dashboard"))
    assert dashboard.dashboard_host not in LOOPBACK
    assert healthcheck_target("dashboard") == (dashboard.dashboard_port, "/healthz")
    assert (
        f"{dashboard.dashboard_port}:{dashboard.dashboard_port}" in services["dashboard"]["ports"]
    )
    partitions = {settings_from(compose_env(n)).topic_partitions for n in DLR_SERVICES}
    assert len(partitions) == 1, "every process must agree on DLR_TOPIC_PARTITIONS"


def test_compose_keeps_state_in_named_volumes() -> None:
    data = compose()
    declared = set(data["volumes"])

    def mounts(service: str) -> dict[str, str]:
        pairs = (v.split(":")[:2] for v in data["services"][service].get("volumes", []))
        return {target: source for source, target in pairs}

    worker = settings_from(compose_env("worker"))
    assert mounts("worker").get(str(worker.data_dir)) in declared, "worker state volume"
    assert mounts("kafka").get("/var/lib/kafka/data") in declared
    assert mounts("clickhouse").get("/var/lib/clickhouse") in declared
    kafka_env = data["services"]["kafka"]["environment"]
    assert kafka_env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"


def metrics_port(settings: Settings, service: str) -> int:
    """The port a dlr service serves /healthz and /metrics on."""
    return {
        "ingress": settings.ingress_port,
        "api": settings.api_port,
        "worker": settings.worker_web_port,
        "sink": settings.sink_metrics_port,
        "dispatch": settings.dispatch_metrics_port,
        "alerts": settings.alert_metrics_port,
        "dashboard": settings.dashboard_port,
    }[service]


def _service_ports() -> dict[str, int]:
    """Port of each dlr service's /metrics in compose."""
    return {name: metrics_port(settings_from(compose_env(name)), name) for name in DLR_SERVICES}


def test_compose_prometheus_and_metrics_targets_reach_every_service() -> None:
    services = compose()["services"]
    ports = _service_ports()
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: target
        for job in scrape["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert targets == {f"dlr-{name}": f"{name}:{port}" for name, port in ports.items()}
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    assert scrape["rule_files"] == ["/etc/prometheus/rules.yml"]
    assert (DEPLOY / mounts["/etc/prometheus/rules.yml"]).resolve() == (
        DEPLOY / "prometheus" / "rules.yml"
    )
    grafana = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert (DEPLOY / grafana["/etc/grafana/provisioning"]).resolve() == (
        DEPLOY / "grafana" / "provisioning"
    )
    for watcher in ("alerts", "dashboard"):
        watched = settings_from(compose_env(watcher)).targets
        assert watched, watcher
        for job, url in watched.items():
            assert url == f"http://{job}:{ports[job]}/metrics", (watcher, job)


def test_compose_start_order_waits_for_health_and_setup() -> None:
    services = compose()["services"]
    for name in DLR_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy", name
        assert depends["topics"]["condition"] == "service_completed_successfully", name
    assert services["sink"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )


# -- runbook --------------------------------------------------------------------------------


def exported_metric_names() -> set[str]:
    """Every metric name the processes can expose, with the exposition suffixes."""
    from faust.sensors.prometheus import FaustMetrics
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics import MetricWrapperBase

    import streams.metrics
    import streams.worker
    from ingress import tls
    from ingress.api.metrics import ApiMetrics
    from ingress.dashboard.app import DashboardMetrics
    from ingress.metrics import IngressMetrics
    from sinks.alerts.service import AlertMetrics
    from sinks.dispatch.service import DispatchMetrics
    from sinks.service import SEND_RECORDS, SinkMetrics

    registries = [
        CollectorRegistry(),
        IngressMetrics().registry,
        ApiMetrics().registry,
        SinkMetrics().registry,
        SinkMetrics(prefix=SEND_RECORDS.prefix).registry,
        DispatchMetrics().registry,
        AlertMetrics().registry,
        DashboardMetrics().registry,
    ]
    FaustMetrics.create(registries[0], streams.worker.FAUST_METRICS_PREFIX)
    families = [family for registry in registries for family in registry.collect()]
    families += list(tls.Collector().describe())  # samples only while serving HTTPS
    families += [
        m
        for value in vars(streams.metrics).values()
        if isinstance(value, MetricWrapperBase)
        for m in value.describe()
    ]
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": (),
    }
    names = set()
    for family in families:
        names.add(family.name)
        names.update(family.name + s for s in suffixes.get(family.type, ()))
    return names


def test_every_metric_named_in_the_runbook_exists() -> None:
    text = README.read_text()
    cited = set(re.findall(r"\bdlr_[a-z0-9_]*[a-z0-9]\b", text))
    known = exported_metric_names()
    prefixes = {
        "dlr_ingress",
        "dlr_streams",
        "dlr_faust",
        "dlr_sink",
        "dlr_dispatch",
        "dlr_webhook",
        "dlr_api",
    }
    unknown = sorted(cited - known - prefixes)
    assert not unknown, f"deploy/README.md cites metrics no process exports: {unknown}"
    assert len(cited & known) >= 15, "the runbook should cover the metrics"


def test_dlr_up_starts_every_long_running_service_and_waits_for_its_healthz() -> None:
    from deploy.cli import SERVICES

    settings = Settings.model_validate({})
    assert tuple(s.name for s in SERVICES) == DLR_SERVICES
    ports = {name: metrics_port(settings, name) for name in DLR_SERVICES}
    for service in SERVICES:
        url = service.ready_url(settings)
        assert f":{ports[service.name]}/" in url and url.endswith(("/healthz", "/readyz"))
        assert service.summary(settings)
