"""The deployment files (Dockerfile, deploy/) agree with the code and with each other.

Nothing here builds an image or talks to a cluster. Each check is a function that returns the
problems it finds in already-loaded files; the tests assert that the real files have none, and
``test_check_catches`` feeds each check a broken copy to show that it can fail.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import SplitResult, urlsplit

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic_settings import BaseSettings

from lb.fleet.registry import Snapshot
from lb.metrics import STATUS_CLASSES, LBMetrics
from lb.settings import LBSettings
from worker.metrics import WorkerMetrics
from worker.settings import WorkerSettings

ROOT = Path(__file__).parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SETTINGS: dict[str, type[BaseSettings]] = {"LB_": LBSettings, "WORKER_": WorkerSettings}
PROCESS_PREFIX = {"lb": "LB_", "worker": "WORKER_"}
ENV_NAME = re.compile(r"\b((?:LB|WORKER)_[A-Z0-9_]+)\b")
LB_ADMIN_PORT = LBSettings.model_fields["admin_port"].default
WORKER_PORT = WorkerSettings.model_fields["port"].default
# Secrets: compose may only interpolate them as ${NAME:?message} (no default committed).
SECRET_VARS = ("LB_ADMIN_TOKEN", "POSTGRES_PASSWORD")


# --- loading --------------------------------------------------------------------------------


def _yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@dataclass
class Files:
    compose: dict[str, Any]
    k8s: dict[str, list[dict[str, Any]]]  # file name -> its documents
    secret_template: dict[str, Any]
    kustomization: dict[str, Any]
    prometheus: dict[str, Any]
    prometheus_k8s: dict[str, Any]
    alerts: dict[str, Any]
    datasources: dict[str, Any]
    dashboard_provider: dict[str, Any]
    dashboard: dict[str, Any]
    dockerfile: str
    dockerignore: str

    def k8s_objects(self) -> Iterator[dict[str, Any]]:
        for docs in self.k8s.values():
            yield from docs

    def k8s_object(self, kind: str, name: str) -> dict[str, Any] | None:
        return next(
            (o for o in self.k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name),
            None,
        )


def load() -> Files:
    manifests = {
        p.name: _yaml_docs(p)
        for p in sorted(K8S.glob("*.yaml"))
        if p.name not in {"kustomization.yaml", "secret.template.yaml"}
    }
    return Files(
        compose=_yaml_docs(DEPLOY / "compose.yaml")[0],
        k8s=manifests,
        secret_template=_yaml_docs(K8S / "secret.template.yaml")[0],
        kustomization=_yaml_docs(K8S / "kustomization.yaml")[0],
        prometheus=_yaml_docs(DEPLOY / "prometheus" / "prometheus.yml")[0],
        prometheus_k8s=_yaml_docs(DEPLOY / "prometheus" / "kubernetes.yml")[0],
        alerts=_yaml_docs(DEPLOY / "prometheus" / "alerts.yml")[0],
        datasources=_yaml_docs(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")[0],
        dashboard_provider=_yaml_docs(DEPLOY / "grafana/provisioning/dashboards/graphfleet.yml")[0],
        dashboard=json.loads((DEPLOY / "grafana/dashboards/graphfleet.json").read_text()),
        dockerfile=(ROOT / "Dockerfile").read_text(),
        dockerignore=(ROOT / ".dockerignore").read_text(),
    )


@pytest.fixture
def files() -> Files:
    return load()


# --- settings named in the deployment -------------------------------------------------------


@dataclass(frozen=True)
class EnvUse:
    where: str
    process: str | None  # "lb", "worker", or None when the image sets it for both
    name: str
    value: str | None  # None: from a Secret or the downward API


def _field_adapter(model: type[BaseSettings], field: str) -> TypeAdapter[Any]:
    info = model.model_fields[field]
    assert info.annotation is not None
    if not info.metadata:
        return TypeAdapter(info.annotation)
    return TypeAdapter(Annotated[(info.annotation, *info.metadata)])  # type: ignore[arg-type]


def _compose_process(service: dict[str, Any]) -> str | None:
    """lb or worker for a service running the graphfleet image, else None."""
    if "build" not in service and not str(service.get("image", "")).startswith("graphfleet"):
        return None
    command = service.get("command", [])
    text = " ".join(command) if isinstance(command, list) else str(command)
    if "entrypoint" in service:  # a shell that ends in `python -m NAME`
        match = re.search(r"python -m (\w+)", text)
        return match.group(1) if match else None
    return text.split()[0] if text else "lb"  # the image's CMD is lb


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def env_uses(f: Files) -> list[EnvUse]:
    uses = []
    for name, service in f.compose["services"].items():
        process = _compose_process(service)
        if process is None:
            continue
        where = f"compose service {name}"
        uses += [EnvUse(where, process, k, v) for k, v in _compose_env(service).items()]
        command = service.get("command", [])
        for part in command if isinstance(command, list) else [command]:
            for match in re.finditer(r"\b([A-Z][A-Z0-9_]*)=\"?([^\";\s]*)", str(part)):
                uses.append(EnvUse(f"{where} command", process, match[1], match[2]))
            for env_name in ENV_NAME.findall(str(part)):
                uses.append(EnvUse(f"{where} command", process, env_name, None))
    configmaps = {o["metadata"]["name"]: o for o in f.k8s_objects() if o["kind"] == "ConfigMap"}
    for deployment in (o for o in f.k8s_objects() if o["kind"] == "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            process = container.get("args", ["lb"])[0]
            where = f"Deployment {deployment['metadata']['name']}"
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef", {}).get("name")
                data = configmaps.get(ref, {}).get("data", {})
                uses += [EnvUse(f"ConfigMap {ref}", process, k, str(v)) for k, v in data.items()]
            for var in container.get("env", []):
                uses.append(EnvUse(where, process, var["name"], var.get("value")))
    env_lines = [ln for stage in _stages(f.dockerfile) for ln in stage if ln.startswith("ENV ")]
    for line in env_lines:
        for name, value in re.findall(r"\b((?:LB|WORKER)_[A-Z0-9_]+)=(\S+)", line):
            uses.append(EnvUse("Dockerfile", None, name, value))
    return uses


def env_problems(f: Files) -> list[str]:
    problems = []
    uses = env_uses(f)
    if not uses:
        problems.append("no LB_*/WORKER_* variable found at all")
    for use in uses:
        prefix = next((p for p in SETTINGS if use.name.startswith(p)), None)
        if prefix is None:
            continue  # POD_IP and the like: helpers, not settings
        model = SETTINGS[prefix]
        field = use.name[len(prefix) :].lower()
        if field not in model.model_fields:
            problems.append(f"{use.where}: {use.name} is not a setting of {model.__name__}")
            continue
        if use.process is not None and PROCESS_PREFIX.get(use.process) != prefix:
            problems.append(f"{use.where}: {use.name} given to `{use.process}`, which ignores it")
        if use.value is None or "${" in use.value or "$(" in use.value:
            continue  # interpolated at run time
        try:
            _field_adapter(model, field).validate_python(use.value)
        except ValidationError as exc:
            problems.append(f"{use.where}: {use.name}={use.value!r} is invalid: {exc}")
    return problems


# --- metric names ---------------------------------------------------------------------------

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}
_PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left", "group_right"}
_TARGET_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def exposed_series() -> set[str]:
    """Series names the LB (incl. its scrape-time collector) and the worker expose."""
    lb = LBMetrics()
    lb.watch(lambda: Snapshot.of(0, []), lambda: 0, lambda: 0)
    names = set()
    for registry in (lb.registry, WorkerMetrics().registry):
        for family in registry.collect():
            names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
    return names


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not functions, labels, keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if match[0] in _PROMQL_WORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(match[0])
    return names


def alert_exprs(f: Files) -> list[tuple[str, str]]:
    return [
        (f"alert {rule.get('alert')}", str(rule["expr"]))
        for group in f.alerts["groups"]
        for rule in group["rules"]
    ]


def dashboard_exprs(f: Files) -> list[tuple[str, str]]:
    return [
        (f"panel {panel['title']!r}", target["expr"])
        for panel in f.dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def metric_problems(f: Files) -> list[str]:
    known = exposed_series() | _TARGET_SERIES
    problems = []
    exprs = alert_exprs(f) + dashboard_exprs(f)
    if not exprs:
        problems.append("no expressions found")
    for where, expr in exprs:
        names = promql_metric_names(expr)
        if not names:
            problems.append(f"{where}: selects no metric: {expr}")
        problems += [f"{where}: no metric {name}" for name in sorted(names - known)]
        for match in re.finditer(r'status_class=~?"([^"]*)"', expr):
            unknown = set(match[1].split("|")) - set(STATUS_CLASSES)
            problems += [f"{where}: the LB never counts status_class {u!r}" for u in unknown]
    return problems


# --- Dockerfile -----------------------------------------------------------------------------


def _stages(dockerfile: str) -> list[list[str]]:
    """Instructions (continuation lines joined, comments dropped), split at each FROM."""
    text = re.sub(r"\\\n", " ", dockerfile)
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    stages: list[list[str]] = [[]]
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def _dockerignored(path: str, dockerignore: str) -> bool:
    ignored = False
    for raw in dockerignore.splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatchcase(path, pattern):
            ignored = not negate
    return ignored


def dockerfile_problems(f: Files) -> list[str]:
    problems = []
    preamble, *stages = _stages(f.dockerfile)
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", "\n".join(preamble), re.M))
    if len(stages) < 2:
        problems.append("not multi-stage")
        return problems
    *builds, final = stages
    build = "\n".join("\n".join(stage) for stage in builds)
    base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), final[0].split()[1])
    if not base.startswith("python:3.11-slim"):
        problems.append(f"final stage is based on {base}, not python:3.11-slim")
    if not re.search(r"^COPY\b[^\n]*\buv\.lock\b", build, re.M):
        problems.append("uv.lock is not copied into the build stage")
    runs = re.findall(r"^RUN\b.*$", build, re.M)
    # Every install in the build stage comes from the lock, except that of uv itself.
    installs = [
        cmd
        for cmd in runs
        if re.search(r"uv sync|uv pip|pip install", cmd)
        and not re.search(r"pip install.*\buv==", cmd)
    ]
    for cmd in installs:
        from_lock = re.search(r"uv sync\b.*--(frozen|locked)", cmd) or re.search(
            r"uv export\b.*--(frozen|locked).*pip install", cmd
        )
        if not from_lock:
            problems.append(f"installs without the lock: {cmd}")
        elif "--no-dev" not in cmd:
            problems.append(f"installs the dev dependencies: {cmd}")
        if re.search(r"\s--(extra|all-extras)\b", cmd):
            problems.append(f"installs an optional extra (the dev tools): {cmd}")
    if not any("--no-install-project" not in cmd for cmd in installs):
        problems.append("the project itself is never installed from the lock")
    final_text = "\n".join(final)
    if re.search(r"\buv\b|build-essential|\bgcc\b", "\n".join(final[1:])):
        problems.append("the final stage installs uv or build tools")
    users = re.findall(r"^USER (\S+)", final_text, re.M)
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append("the final stage does not switch to a non-root user")
    entry = re.findall(r"^ENTRYPOINT (.+)$", final_text, re.M)
    if not entry or json.loads(entry[-1]) != ["python", "-m"]:
        problems.append('ENTRYPOINT is not ["python", "-m"]')
    for var in ("LB_HOST=0.0.0.0", "LB_ADMIN_HOST=0.0.0.0", "WORKER_HOST=0.0.0.0"):
        if not re.search(rf"^ENV\b.*\b{re.escape(var)}\b", final_text, re.M):
            problems.append(f"the final stage does not set {var}")
    checks = re.findall(r"^HEALTHCHECK\b.*\bCMD\s+(.+)$", final_text, re.M)
    if not checks:
        problems.append("the final stage has no HEALTHCHECK")
    elif (
        json.loads(checks[-1])[:3] != ["python", "-m", "common.healthcheck"]
        or not (ROOT / "common" / "healthcheck.py").is_file()
    ):
        problems.append("HEALTHCHECK does not run python -m common.healthcheck (stdlib, no curl)")
    for line in re.findall(r"^COPY (?!--from).*$", build, re.M):
        for source in line.split()[1:-1]:
            if _dockerignored(source.rstrip("/"), f.dockerignore):
                problems.append(f"{source} is copied but excluded by .dockerignore")
    return problems


# --- compose --------------------------------------------------------------------------------


def _seconds(value: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def _shutdown_timeout(model: type[BaseSettings], env: dict[str, str]) -> float:
    prefix = "LB_" if model is LBSettings else "WORKER_"
    default = model.model_fields["shutdown_timeout_s"].default
    return float(env.get(prefix + "SHUTDOWN_TIMEOUT_S", default))


def _url(value: str) -> SplitResult:
    """A URL whose ${VAR:?message} parts are blanked (their `?` would start a query)."""
    return urlsplit(re.sub(r"\$\{[^}]*\}", "x", value))


def compose_problems(f: Files) -> list[str]:
    problems = []
    services = f.compose["services"]
    for required in ("postgres", "redis", "lb", "worker", "prometheus", "grafana"):
        if required not in services:
            problems.append(f"no service {required}")
    if problems:
        return problems
    if not str(services["postgres"]["image"]).startswith("postgres:16"):
        problems.append("postgres is not version 16")
    if not str(services["redis"]["image"]).startswith("redis:7"):
        problems.append("redis is not version 7")
    volumes = set(f.compose.get("volumes") or {})
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            if not (context / build.get("dockerfile", "Dockerfile")).is_file():
                problems.append(f"{name}: no Dockerfile in build context {context}")
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                if not (DEPLOY / source).exists():
                    problems.append(f"{name}: bind mount source {source} does not exist")
            elif source not in volumes:
                problems.append(f"{name}: volume {source} is not declared")
        depends = service.get("depends_on", [])
        for other in depends if isinstance(depends, list) else depends.keys():
            if other not in services:
                problems.append(f"{name}: depends on unknown service {other}")
    # Secrets are never given a default.
    text = yaml.safe_dump(f.compose)
    for var in SECRET_VARS:
        for match in re.finditer(r"\$\{" + var + r"([^}]*)\}", text):
            if not match[1].startswith(":?"):
                problems.append(f"${{{var}{match[1]}}}: a secret must be ${{{var}:?...}}")
    lb, worker = services["lb"], services["worker"]
    lb_env, worker_env = _compose_env(lb), _compose_env(worker)
    if not lb_env.get("LB_ADMIN_TOKEN", "").startswith("${LB_ADMIN_TOKEN:?"):
        problems.append("the LB's LB_ADMIN_TOKEN is not ${LB_ADMIN_TOKEN:?...}")
    if worker_env.get("WORKER_LB_ADMIN_TOKEN") != lb_env.get("LB_ADMIN_TOKEN"):
        problems.append("the workers' WORKER_LB_ADMIN_TOKEN is not the LB's token")
    admin = _url(worker_env.get("WORKER_LB_ADMIN_URL", ""))
    if (admin.hostname, admin.port) != ("lb", LB_ADMIN_PORT):
        problems.append(
            f"WORKER_LB_ADMIN_URL {admin.geturl()!r} is not the lb service's admin port"
        )
    for key, scheme in (
        ("WORKER_STORE", "postgresql"),
        ("WORKER_REDIS_URL", "redis"),
        ("LB_REDIS_URL", "redis"),
    ):
        url = _url({**lb_env, **worker_env}.get(key, ""))
        host = "postgres" if scheme == "postgresql" else "redis"
        if url.scheme != scheme or url.hostname != host:
            problems.append(f"{key} does not point at the {host} service")
    command = " ".join(worker.get("command", []))
    if "WORKER_ADVERTISE_URL" not in command and "WORKER_ADVERTISE_URL" not in worker_env:
        problems.append("the workers do not set WORKER_ADVERTISE_URL")
    if "lb" not in lb.get("command", ["lb"]):
        problems.append("the lb service does not run lb")
    for name, service, check in (
        ("lb", lb, f"http://127.0.0.1:{LB_ADMIN_PORT}/ready"),
        ("worker", worker, f"http://127.0.0.1:{WORKER_PORT}/health"),
    ):
        if check not in " ".join(service.get("healthcheck", {}).get("test", [])):
            problems.append(f"{name}: the healthcheck does not GET {check}")
    for name, model, env in (("lb", LBSettings, lb_env), ("worker", WorkerSettings, worker_env)):
        grace = _seconds(str(services[name].get("stop_grace_period", "10s")))
        if grace <= _shutdown_timeout(model, env):
            problems.append(f"{name}: stop_grace_period {grace}s is not above its shutdown timeout")
    ports = {str(p).rsplit(":", 1)[-1] for p in lb.get("ports", [])}
    if not {"8080", "8081"} <= ports:
        problems.append(f"the LB publishes {sorted(ports)}, not 8080 and 8081")
    return problems


# --- Kubernetes -----------------------------------------------------------------------------


def _pod_spec(f: Files, name: str) -> dict[str, Any]:
    deployment = f.k8s_object("Deployment", name)
    assert deployment is not None, f"no Deployment {name}"
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def _probe_path(container: dict[str, Any], probe: str) -> str | None:
    return container.get(probe, {}).get("httpGet", {}).get("path")


def _disruption_budget_problems(f: Files) -> list[str]:
    """Each Deployment has a PodDisruptionBudget that selects its pods and lets one go at a
    time (a budget that allows no eviction would block every node drain)."""
    problems = []
    budgets = [o for o in f.k8s_objects() if o["kind"] == "PodDisruptionBudget"]
    for deployment in (o for o in f.k8s_objects() if o["kind"] == "Deployment"):
        dname = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        replicas = deployment["spec"].get("replicas", 1)
        matching = [
            b
            for b in budgets
            if all(labels.get(k) == v for k, v in b["spec"]["selector"]["matchLabels"].items())
        ]
        if len(matching) != 1:
            problems.append(f"{dname}: {len(matching)} PodDisruptionBudgets select its pods")
            continue
        spec = matching[0]["spec"]
        if ("minAvailable" in spec) == ("maxUnavailable" in spec):
            problems.append(f"{dname}: its budget needs one of minAvailable, maxUnavailable")
        elif spec.get("maxUnavailable", 1) < 1 or spec.get("minAvailable", 0) >= replicas:
            problems.append(f"{dname}: its budget allows no eviction; node drains would hang")
    return problems


def kubernetes_problems(f: Files) -> list[str]:
    problems = []
    listed = f.kustomization.get("resources", [])
    for name in listed:
        if not (K8S / name).is_file():
            problems.append(f"kustomization lists {name}, which does not exist")
    for name in f.k8s:
        if name not in listed:
            problems.append(f"{name} is not listed in kustomization.yaml")
    for kind, name in (
        ("Namespace", "graphfleet"),
        ("Deployment", "graphfleet-worker"),
        ("Deployment", "graphfleet-lb"),
        ("Service", "graphfleet-worker"),
        ("Service", "graphfleet-lb"),
        ("ServiceAccount", "graphfleet-autoscaler"),
        ("Role", "graphfleet-autoscaler"),
        ("RoleBinding", "graphfleet-autoscaler"),
        ("PodDisruptionBudget", "graphfleet-worker"),
        ("PodDisruptionBudget", "graphfleet-lb"),
    ):
        if f.k8s_object(kind, name) is None:
            problems.append(f"no {kind} {name}")
    if problems:
        return problems
    problems += _disruption_budget_problems(f)

    secret = f.secret_template
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    configmaps = {o["metadata"]["name"]: o for o in f.k8s_objects() if o["kind"] == "ConfigMap"}
    deployments = [o for o in f.k8s_objects() if o["kind"] == "Deployment"]
    for deployment in deployments:
        dname = deployment["metadata"]["name"]
        spec = deployment["spec"]["template"]["spec"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        if any(labels.get(k) != v for k, v in selector.items()):
            problems.append(f"{dname}: selector does not match the pod labels")
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        for container in spec["containers"]:
            ports = {p["containerPort"] for p in container.get("ports", [])}
            if int(annotations.get("prometheus.io/port", 0)) not in ports:
                problems.append(f"{dname}: prometheus.io/port is not a container port")
            env = {}
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef", {}).get("name")
                if ref not in configmaps:
                    problems.append(f"{dname}: envFrom names unknown ConfigMap {ref}")
                else:
                    env.update(configmaps[ref].get("data", {}))
            defined: set[str] = set()
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref and (
                    ref["name"] != secret["metadata"]["name"] or ref["key"] not in secret_keys
                ):
                    problems.append(f"{dname}: {var['name']} reads a key the Secret lacks: {ref}")
                for used in re.findall(r"\$\((\w+)\)", str(var.get("value", ""))):
                    if used not in defined:  # Kubernetes expands only variables defined earlier
                        problems.append(f"{dname}: {var['name']} uses $({used}) before it is set")
                defined.add(var["name"])
                if "value" in var:
                    env[var["name"]] = var["value"]
            process = container.get("args", [""])[0]
            model = LBSettings if process == "lb" else WorkerSettings
            grace = spec.get("terminationGracePeriodSeconds", 30)
            if grace <= _shutdown_timeout(model, env):
                problems.append(
                    f"{dname}: terminationGracePeriodSeconds is not above its shutdown timeout"
                )
            if "resources" not in container:
                problems.append(f"{dname}: no resources")
            if spec.get("securityContext", {}).get("runAsNonRoot") is not True:
                problems.append(f"{dname}: runAsNonRoot is not set")
            if process == "worker":
                if (
                    _probe_path(container, "readinessProbe"),
                    _probe_path(container, "livenessProbe"),
                ) != ("/health", "/ok"):
                    problems.append(f"{dname}: probes are not readiness /health, liveness /ok")
                pod_ip: dict[str, Any] = next(
                    (v for v in container.get("env", []) if v["name"] == "POD_IP"), {}
                )
                if (
                    pod_ip.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
                    != "status.podIP"
                ):
                    problems.append(f"{dname}: POD_IP does not come from status.podIP")
                advertise = env.get("WORKER_ADVERTISE_URL", "")
                if advertise != f"http://$(POD_IP):{WORKER_PORT}":
                    problems.append(f"{dname}: WORKER_ADVERTISE_URL is {advertise!r}")
                problems += _admin_service_problems(f, env.get("WORKER_LB_ADMIN_URL", ""))
            elif process == "lb":
                if _probe_path(container, "readinessProbe") != "/ready":
                    problems.append(f"{dname}: readiness probe is not /ready")
                if "LB_ADMIN_TOKEN" not in {v["name"] for v in container.get("env", [])}:
                    problems.append(f"{dname}: no LB_ADMIN_TOKEN")
                if spec.get("serviceAccountName") != "graphfleet-autoscaler":
                    problems.append(f"{dname}: does not run as the autoscaler's ServiceAccount")
            else:
                problems.append(f"{dname}: runs {process!r}, neither lb nor worker")
    for service in (o for o in f.k8s_objects() if o["kind"] == "Service"):
        sname, selector = service["metadata"]["name"], service["spec"]["selector"]
        matches = [
            d
            for d in deployments
            if all(
                d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items()
            )
        ]
        if len(matches) != 1:
            problems.append(f"Service {sname} selects {len(matches)} Deployments")
            continue
        port_names = {
            p.get("name")
            for c in matches[0]["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            if isinstance(port.get("targetPort"), str) and port["targetPort"] not in port_names:
                problems.append(
                    f"Service {sname}: targetPort {port['targetPort']} is not a named port"
                )
    lb_ports = {p["port"] for p in f.k8s_object("Service", "graphfleet-lb")["spec"]["ports"]}  # type: ignore[index]
    if not {8080, 8081} <= lb_ports:
        problems.append("Service graphfleet-lb does not expose 8080 and 8081")
    problems += _rbac_problems(f)
    return problems


def _admin_service_problems(f: Files, admin_url: str) -> list[str]:
    url = urlsplit(admin_url)
    service = f.k8s_object("Service", url.hostname or "")
    if service is None:
        return [f"WORKER_LB_ADMIN_URL {admin_url!r} names no Service"]
    problems = []
    if url.port not in {p["port"] for p in service["spec"]["ports"]}:
        problems.append(f"WORKER_LB_ADMIN_URL {admin_url!r}: the Service has no such port")
    if service["spec"].get("selector", {}).get("app.kubernetes.io/component") != "lb":
        problems.append(f"WORKER_LB_ADMIN_URL {admin_url!r} does not select the LB")
    # An LB is ready only once a worker registered: the registration path must not wait for it.
    if service["spec"].get("publishNotReadyAddresses") is not True:
        problems.append(f"Service {url.hostname} hides LB pods that are not ready yet")
    return problems


def _rbac_problems(f: Files) -> list[str]:
    problems = []
    role = f.k8s_object("Role", "graphfleet-autoscaler")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]  # type: ignore[index]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for need in (
        ("apps", "deployments/scale", "get"),
        ("apps", "deployments/scale", "patch"),
        ("", "pods", "list"),  # the kubernetes backend maps pod IPs to instances
        ("", "pods", "patch"),
        ("discovery.k8s.io", "endpointslices", "list"),
    ):
        if need not in granted:
            problems.append(f"Role graphfleet-autoscaler lacks {need}")
    binding = f.k8s_object("RoleBinding", "graphfleet-autoscaler")
    if binding["roleRef"] != {  # type: ignore[index]
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "graphfleet-autoscaler",
    }:
        problems.append("RoleBinding does not refer to the Role")
    subjects = [(s["kind"], s["name"]) for s in binding["subjects"]]  # type: ignore[index]
    if ("ServiceAccount", "graphfleet-autoscaler") not in subjects:
        problems.append("RoleBinding does not bind the ServiceAccount")
    return problems


# --- Prometheus and Grafana -----------------------------------------------------------------


def prometheus_problems(f: Files) -> list[str]:
    problems = []
    services = f.compose["services"]
    if f.prometheus["global"].get("scrape_interval") != "15s":
        problems.append("scrape_interval is not 15s")
    jobs = {job["job_name"]: job for job in f.prometheus["scrape_configs"]}
    lb_job = jobs.get("graphfleet-lb", {})
    targets = [t for sc in lb_job.get("static_configs", []) for t in sc["targets"]]
    if targets != [f"lb:{LB_ADMIN_PORT}"]:
        problems.append(f"graphfleet-lb scrapes {targets}, not the lb service's admin port")
    for job in (lb_job, *f.prometheus_k8s["scrape_configs"]):
        # The LB's `instance` label (the worker's id) must not become exported_instance.
        if job.get("honor_labels") is not True:
            problems.append(f"job {job.get('job_name')} scrapes the LB without honor_labels")
    worker_job = jobs.get("graphfleet-worker", {})
    for sd in worker_job.get("dns_sd_configs", []):
        if any(n not in services for n in sd["names"]) or sd.get("port") != WORKER_PORT:
            problems.append(f"graphfleet-worker discovers {sd}, not the worker service")
    if not worker_job.get("dns_sd_configs") and not worker_job.get("static_configs"):
        problems.append("no job scrapes the workers")
    mount = next(
        (v for v in services["prometheus"]["volumes"] if v.startswith("./prometheus:")), ""
    )
    inside = mount.split(":")[1] if mount else ""
    for rule_file in f.prometheus.get("rule_files", []):
        if (
            not rule_file.startswith(inside + "/")
            or not (DEPLOY / "prometheus" / Path(rule_file).name).is_file()
        ):
            problems.append(f"rule file {rule_file} is not deploy/prometheus mounted at {inside}")
    for where, expr in alert_exprs(f):
        for job in re.findall(r'job="([^"]+)"', expr):
            if job not in jobs:
                problems.append(f"{where}: job {job} is not scraped")
    for group in f.alerts["groups"]:
        for rule in group["rules"]:
            if (
                not rule.get("alert")
                or "severity" not in rule.get("labels", {})
                or "summary" not in rule.get("annotations", {})
            ):
                problems.append(f"rule {rule.get('alert')} lacks a name, severity or summary")
    return problems


def grafana_problems(f: Files) -> list[str]:
    problems = []
    services = f.compose["services"]
    sources = f.datasources["datasources"]
    uids = {s["uid"] for s in sources}
    prometheus = next((s for s in sources if s["type"] == "prometheus"), None)
    if prometheus is None:
        return ["no Prometheus datasource"]
    url = urlsplit(prometheus["url"])
    if url.hostname not in services or url.port != 9090:
        problems.append(f"the datasource {prometheus['url']} is not the prometheus service")
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"] if v.startswith("."))
    if mounts.get("./grafana/provisioning") != "/etc/grafana/provisioning":
        problems.append("provisioning is not mounted at /etc/grafana/provisioning")
    for provider in f.dashboard_provider["providers"]:
        if provider["options"]["path"] != mounts.get("./grafana/dashboards"):
            problems.append(
                f"dashboard provider reads {provider['options']['path']}, not the mounted folder"
            )
    dash = f.dashboard
    if (dash.get("uid"), dash.get("title")) != ("graphfleet", "graphfleet"):
        problems.append("the dashboard is not uid/title graphfleet")
    ids = [p["id"] for p in dash["panels"]]
    if len(ids) != len(set(ids)):
        problems.append("panel ids repeat")
    for panel in dash["panels"]:
        for item in (panel, *panel.get("targets", [])):
            ds = item.get("datasource")
            if ds is not None and ds.get("uid") not in uids:
                problems.append(f"panel {panel['title']!r} uses datasource {ds}")
    return problems


# --- tests ----------------------------------------------------------------------------------

CHECKS: dict[str, Callable[[Files], list[str]]] = {
    "settings": env_problems,
    "metrics": metric_problems,
    "dockerfile": dockerfile_problems,
    "compose": compose_problems,
    "kubernetes": kubernetes_problems,
    "prometheus": prometheus_problems,
    "grafana": grafana_problems,
}


def _data_files() -> list[Path]:
    return sorted(
        p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml", ".json"} and p.is_file()
    )


def test_deploy_has_the_expected_files() -> None:
    names = {str(p.relative_to(DEPLOY)) for p in _data_files()}
    assert {
        "compose.yaml",
        "kubernetes/kustomization.yaml",
        "prometheus/prometheus.yml",
        "prometheus/alerts.yml",
        "grafana/dashboards/graphfleet.json",
    } <= names
    assert (DEPLOY / "README.md").is_file()


@pytest.mark.parametrize("path", _data_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_file_parses(path: Path) -> None:
    if path.suffix == ".json":
        assert isinstance(json.loads(path.read_text()), dict)
    else:
        docs = _yaml_docs(path)
        assert docs, f"{path} is empty"
        assert all(isinstance(doc, dict) for doc in docs)


@pytest.mark.parametrize("check", CHECKS)
def test_check_passes(files: Files, check: str) -> None:
    assert CHECKS[check](files) == []


def test_every_metric_of_the_lb_is_on_the_dashboard(files: Files) -> None:
    used = set().union(*(promql_metric_names(e) for _, e in dashboard_exprs(files)))
    # Admin API calls are left out: they are the operators' own traffic.
    lb = {n for n in exposed_series() if not n.startswith("graphfleet_lb_admin_")}
    bases = {re.sub(r"_(total|created|bucket|sum|count)$", "", n) for n in lb}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used}
    assert bases - shown == set()


def test_promql_metric_names() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, instance) "
        '(rate(a_bucket{x="y{z}"}[$__rate_interval])))'
        " / on (instance) group_left b + min_over_time(c[5m]) and up == 0"
    )
    assert promql_metric_names(expr) == {"a_bucket", "b", "c", "up"}


def _set(path: str, value: Any) -> Callable[[Files], None]:
    """A mutation that sets ``a.b.0.c`` inside the loaded files."""

    def mutate(f: Files) -> None:
        *parents, last = path.split(".")
        node: Any = f
        for key in parents:
            node = (
                getattr(node, key)
                if isinstance(node, Files)
                else node[int(key) if isinstance(node, list) else key]
            )
        if isinstance(node, list):
            node[int(last)] = value
        elif value is None:
            del node[last]
        else:
            node[last] = value

    return mutate


def _text(attr: str, old: str, new: str) -> Callable[[Files], None]:
    def mutate(f: Files) -> None:
        text = getattr(f, attr)
        assert old in text, old
        setattr(f, attr, text.replace(old, new))

    return mutate


def _k8s(file: str, index: int, path: str, value: Any) -> Callable[[Files], None]:
    def mutate(f: Files) -> None:
        node: Any = f.k8s[file][index]
        *parents, last = path.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value

    return mutate


def _append_env(file: str, index: int, name: str, value: str) -> Callable[[Files], None]:
    def mutate(f: Files) -> None:
        container = f.k8s[file][index]["spec"]["template"]["spec"]["containers"][0]
        container["env"].append({"name": name, "value": value})

    return mutate


def _first_dashboard_expr(new: str) -> Callable[[Files], None]:
    def mutate(f: Files) -> None:
        panel = next(p for p in f.dashboard["panels"] if p.get("targets"))
        panel["targets"][0]["expr"] = new

    return mutate


MUTATIONS: list[tuple[str, str, Callable[[Files], None]]] = [
    (
        "dockerfile",
        "no health check",
        _text("dockerfile", 'CMD ["python", "-m", "common.healthcheck"]', 'CMD ["true"]'),
    ),
    ("kubernetes", "a budget that blocks drains", _k8s("pdb.yaml", 0, "spec.maxUnavailable", 0)),
    (
        "kubernetes",
        "a budget that selects nothing",
        _k8s("pdb.yaml", 1, "spec.selector.matchLabels", {"app.kubernetes.io/component": "x"}),
    ),
    (
        "metrics",
        "a status class the LB never counts",
        _set(
            "alerts.groups.0.rules.1.expr",
            'graphfleet_lb_requests_total{status_class="cut"} > 0',
        ),
    ),
    ("settings", "unknown setting", _set("compose.services.worker.environment.WORKER_NOPE", "1")),
    (
        "settings",
        "setting of the other process",
        _k8s("configmap.yaml", 0, "data.WORKER_MAX_CONCURRENCY", "8"),
    ),
    (
        "settings",
        "invalid value",
        _set("compose.services.lb.environment.LB_SHUTDOWN_TIMEOUT_S", "soon"),
    ),
    (
        "settings",
        "unknown in Dockerfile",
        _text("dockerfile", "WORKER_HOST=0.0.0.0", "WORKER_HOSTNAME=0.0.0.0"),
    ),
    (
        "metrics",
        "alert on a missing metric",
        _set("alerts.groups.0.rules.1.expr", "graphfleet_lb_routable_instance == 0"),
    ),
    (
        "metrics",
        "counter without _total",
        _first_dashboard_expr("rate(graphfleet_lb_requests[5m])"),
    ),
    ("metrics", "expression without a metric", _first_dashboard_expr("vector(1)")),
    (
        "dockerfile",
        "lock not copied",
        _text("dockerfile", "COPY pyproject.toml uv.lock ./", "COPY pyproject.toml ./"),
    ),
    (
        "dockerfile",
        "not installed from the lock",
        _text("dockerfile", "uv sync --locked --no-dev --no-editable", "uv pip install ."),
    ),
    ("dockerfile", "root user", _text("dockerfile", "USER 10001:10001", "USER root")),
    ("dockerfile", "single stage", _text("dockerfile", "FROM ${PYTHON_IMAGE} AS runtime", "")),
    (
        "dockerfile",
        "uv in the final image",
        _text(
            "dockerfile",
            "COPY --from=build /opt/venv /opt/venv",
            "COPY --from=build /opt/venv /opt/venv\nRUN pip install uv",
        ),
    ),
    ("dockerfile", "dockerignore drops a source", _text("dockerignore", "!README.md\n", "")),
    (
        "dockerfile",
        "no 0.0.0.0",
        _text("dockerfile", "LB_ADMIN_HOST=0.0.0.0", "LB_ADMIN_HOST=127.0.0.1"),
    ),
    (
        "compose",
        "default secret",
        _set("compose.services.lb.environment.LB_ADMIN_TOKEN", "${LB_ADMIN_TOKEN:-changeme}"),
    ),
    (
        "compose",
        "missing bind mount",
        _set("compose.services.grafana.volumes.0", "./grafana/nope:/etc/grafana/provisioning:ro"),
    ),
    (
        "compose",
        "wrong admin URL",
        _set("compose.services.worker.environment.WORKER_LB_ADMIN_URL", "http://lb:8080"),
    ),
    (
        "compose",
        "store not on postgres",
        _set("compose.services.worker.environment.WORKER_STORE", "sqlite:///x"),
    ),
    ("compose", "short grace period", _set("compose.services.worker.stop_grace_period", "10s")),
    ("compose", "healthcheck path", _set("compose.services.lb.healthcheck.test", ["CMD", "true"])),
    ("kubernetes", "unlisted manifest", _set("kustomization.resources", ["namespace.yaml"])),
    (
        "kubernetes",
        "short grace period",
        _k8s("worker.yaml", 0, "spec.template.spec.terminationGracePeriodSeconds", 30),
    ),
    (
        "kubernetes",
        "secret key typo",
        _k8s(
            "lb.yaml",
            0,
            "spec.template.spec.containers.0.env.0.valueFrom.secretKeyRef.key",
            "admin_token",
        ),
    ),
    (
        "kubernetes",
        "advertise URL",
        _k8s(
            "worker.yaml", 0, "spec.template.spec.containers.0.env.2.value", "http://localhost:8000"
        ),
    ),
    (
        "kubernetes",
        "registration waits for readiness",
        _k8s("lb.yaml", 2, "spec.publishNotReadyAddresses", False),
    ),
    (
        "kubernetes",
        "selector matches nothing",
        _k8s("worker.yaml", 1, "spec.selector", {"app": "nope"}),
    ),
    (
        "kubernetes",
        "liveness path",
        _k8s(
            "worker.yaml",
            0,
            "spec.template.spec.containers.0.livenessProbe.httpGet.path",
            "/health",
        ),
    ),
    ("kubernetes", "RBAC verb missing", _k8s("rbac.yaml", 1, "rules.0.verbs", ["get"])),
    ("kubernetes", "variable used before set", _append_env("worker.yaml", 0, "X", "$(LATER)")),
    ("prometheus", "no honor_labels", _set("prometheus.scrape_configs.0.honor_labels", None)),
    (
        "prometheus",
        "wrong LB target",
        _set("prometheus.scrape_configs.0.static_configs.0.targets", ["lb:8080"]),
    ),
    (
        "prometheus",
        "alert on an unscraped job",
        _set("alerts.groups.0.rules.0.expr", 'up{job="nope"} == 0'),
    ),
    ("grafana", "datasource uid", _set("datasources.datasources.0.uid", "other")),
    ("grafana", "provider path", _set("dashboard_provider.providers.0.options.path", "/nowhere")),
]


@pytest.mark.parametrize(
    ("check", "why", "mutate"), MUTATIONS, ids=[f"{c}-{w}" for c, w, _ in MUTATIONS]
)
def test_check_catches(check: str, why: str, mutate: Callable[[Files], None]) -> None:
    broken = copy.deepcopy(load())
    mutate(broken)
    assert CHECKS[check](broken), f"the {check} check misses: {why}"
