"""The ``kubernetes`` scaling backend: the worker Deployment's ``scale`` subresource.

Kubernetes, not the LB, picks which pod a scale-down deletes; the backend steers it by marking
the victims with ``controller.kubernetes.io/pod-deletion-cost`` before they are drained (the
ReplicaSet controller deletes the cheapest pods first). Workers are known by their pod IP: a
worker registers with its pod IP as URL host, or — for workers that do not self-register — the
backend registers the ready endpoints of the worker Service's EndpointSlices.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import orjson
import structlog
from kubernetes_asyncio import client, config
from yarl import URL

from lb.autoscaler.backends.base import BackendError
from lb.fleet.control import Conflict, Membership
from lb.fleet.registry import Instance, Registry

log = structlog.get_logger("lb.autoscaler.kubernetes")

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True, slots=True)
class KubernetesConfig:
    namespace: str = ""  # empty: the kubeconfig context's, the service account's, or "default"
    deployment: str = "graphfleet-worker"
    kubeconfig: str = ""  # empty: in-cluster service account
    context: str = ""  # empty: the kubeconfig's current context
    service: str = "graphfleet-worker"  # whose EndpointSlices list the workers
    register_endpoints: bool = False  # register workers found there (self-registration off)
    worker_port: int = 8000  # the port of registered endpoint URLs
    victim_deletion_cost: int = -1000  # a victim's pod-deletion-cost; lower goes first
    request_timeout_s: float = 10.0


class _Pod(NamedTuple):
    name: str
    ip: str
    annotations: Mapping[str, str]


class KubernetesBackend:
    """Scales the worker Deployment through its ``scale`` subresource.

    Promises: :meth:`current` is the Deployment's ``spec.replicas`` (pods starting included);
    :meth:`owns` is true for instances whose URL host is the IP of one of the Deployment's pods
    (a cache refreshed by every method that talks to the API); every
    failure of the API (HTTP error, unreachable server, bad kubeconfig) is raised as
    :class:`BackendError`. Callers call :meth:`start` first (any method connects if it has not)
    and :meth:`close` last.
    """

    name = "kubernetes"

    def __init__(self, config: KubernetesConfig, membership: Membership, registry: Registry):
        self._config = config
        self._membership = membership
        self._registry = registry
        self._api: client.ApiClient | None = None
        self._namespace = config.namespace
        self._selector = ""  # the Deployment's label selector, from its scale subresource
        self._pods_by_ip: dict[str, _Pod] = {}
        # Pods scaled away but maybe still terminating: never re-register them from endpoints.
        self._retired_ips: set[str] = set()
        # Pods marked by prefer_victims and not yet scaled away (they may be draining).
        self._pending_victims: set[str] = set()
        self._draining_cost = str(config.victim_deletion_cost)
        self._stopping_cost = str(config.victim_deletion_cost - 1)

    # -- the ScalingBackend protocol -----------------------------------------------------------

    async def start(self) -> None:
        await self._refresh()

    async def current(self) -> int:
        return await self._refresh()

    def owns(self, instance: Instance) -> bool:
        return _host(instance.url) in self._pods_by_ip

    async def scale_up(self, count: int) -> None:
        replicas = await self._read_replicas()
        await self._patch_replicas(replicas + count)
        log.info(
            "kubernetes_scaled_up", deployment=self._config.deployment, replicas=replicas + count
        )

    async def prefer_victims(self, victims: list[Instance]) -> None:
        await self._refresh_pods()
        chosen: list[_Pod] = []
        for victim in victims:
            pod = self._pods_by_ip.get(_host(victim.url))
            if pod is None:
                # Without its pod the ReplicaSet would delete a pod we did not drain.
                raise BackendError(
                    f"kubernetes: instance {victim.id!r} ({victim.url}) is not a pod of "
                    f"deployment {self._config.deployment!r}"
                )
            chosen.append(pod)
        self._pending_victims.update(pod.name for pod in chosen)
        for pod in chosen:
            await self._annotate(pod.name, self._draining_cost)
        ours = {self._draining_cost, self._stopping_cost}
        for pod in self._pods_by_ip.values():
            if pod.name not in self._pending_victims and pod.annotations.get(DELETION_COST) in ours:
                # A mark left by an abandoned scale-down (or an earlier LB process) would make
                # the controller delete that pod instead of a drained victim.
                await self._annotate(pod.name, None)

    async def scale_down(self, victims: list[Instance]) -> None:
        await self._refresh_pods()
        found = [p for v in victims if (p := self._pods_by_ip.get(_host(v.url))) is not None]
        # Several victims may be draining at once, all marked; the one done now must go first.
        for pod in found:
            await self._annotate(pod.name, self._stopping_cost)
        if found:
            # A victim whose pod is gone already (evicted, crashed) is not counted: taking a
            # replica away for it would delete a pod nobody drained.
            replicas = await self._read_replicas()
            target = max(0, replicas - len(found))
            await self._patch_replicas(target)
            log.info("kubernetes_scaled_down", deployment=self._config.deployment, replicas=target)
        for victim in victims:
            host = _host(victim.url)
            gone = self._pods_by_ip.pop(host, None)
            if gone is not None:
                self._pending_victims.discard(gone.name)
            self._retired_ips.add(host)
            self._membership.forget(victim.id)

    async def close(self) -> None:
        if self._api is not None:
            api, self._api = self._api, None
            await api.close()

    # -- API calls -----------------------------------------------------------------------------

    async def _connect(self) -> client.ApiClient:
        if self._api is not None:
            return self._api
        configuration = client.Configuration()
        namespace: str | None = None
        source = self._config.kubeconfig or "in-cluster service account"
        try:
            if self._config.kubeconfig:
                loader = await config.load_kube_config(
                    config_file=self._config.kubeconfig,
                    context=self._config.context or None,
                    client_configuration=configuration,
                    persist_config=False,
                )
                namespace = (loader.current_context or {}).get("context", {}).get("namespace")
            else:
                namespace = _load_incluster(configuration)
        # A broken kubeconfig fails in many ways (YAML, missing keys, exec plugins, files);
        # all of them mean the same to the autoscaler: no cluster to talk to yet.
        except Exception as exc:
            raise BackendError(f"kubernetes: cannot load configuration ({source}): {exc}") from exc
        self._namespace = self._config.namespace or namespace or "default"
        self._api = client.ApiClient(configuration=configuration)
        return self._api

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except client.ApiException as exc:
            raise BackendError(
                f"kubernetes: {action} failed: HTTP {exc.status} {exc.reason}"
                f"{_status_message(exc.body)}"
            ) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise BackendError(
                f"kubernetes: {action} failed: API server unreachable: {exc!r}"
            ) from exc

    def _where(self) -> str:
        return f"deployment {self._namespace}/{self._config.deployment}"

    async def _read_scale(self) -> Any:
        apps = client.AppsV1Api(await self._connect())
        with self._errors(f"reading the scale of {self._where()}"):
            scale = await apps.read_namespaced_deployment_scale(
                self._config.deployment,
                self._namespace,
                _request_timeout=self._config.request_timeout_s,
            )
        if scale.status is not None and scale.status.selector:
            self._selector = scale.status.selector
        return scale

    async def _read_replicas(self) -> int:
        scale = await self._read_scale()
        return int(scale.spec.replicas or 0) if scale.spec is not None else 0

    async def _patch_replicas(self, replicas: int) -> None:
        apps = client.AppsV1Api(await self._connect())
        with self._errors(f"scaling {self._where()} to {replicas}"):
            await apps.patch_namespaced_deployment_scale(
                self._config.deployment,
                self._namespace,
                {"spec": {"replicas": replicas}},
                _request_timeout=self._config.request_timeout_s,
            )

    async def _refresh(self) -> int:
        """Read the replica count, refresh the pod-IP cache, register endpoints if asked."""
        replicas = await self._read_replicas()
        await self._refresh_pods()
        if self._config.register_endpoints:
            await self._register_endpoints()
        return replicas

    async def _refresh_pods(self) -> None:
        if not self._selector:
            await self._read_scale()
        if not self._selector:
            raise BackendError(f"kubernetes: {self._where()} reports no label selector")
        core = client.CoreV1Api(await self._connect())
        with self._errors(f"listing the pods of {self._where()}"):
            pods = await core.list_namespaced_pod(
                self._namespace,
                label_selector=self._selector,
                _request_timeout=self._config.request_timeout_s,
            )
        by_ip: dict[str, _Pod] = {}
        for pod in pods.items or ():
            ip = pod.status.pod_ip if pod.status is not None else None
            if ip:
                by_ip[ip] = _Pod(pod.metadata.name, ip, pod.metadata.annotations or {})
        self._pods_by_ip = by_ip
        # Forget a retired IP once its pod is gone, so a new pod given that IP is welcome.
        self._retired_ips &= by_ip.keys()
        self._pending_victims &= {pod.name for pod in by_ip.values()}

    async def _annotate(self, pod_name: str, cost: str | None) -> None:
        core = client.CoreV1Api(await self._connect())
        # null deletes the key: strategic-merge-patch (what the client sends) as merge-patch.
        body = {"metadata": {"annotations": {DELETION_COST: cost}}}
        with self._errors(f"setting {DELETION_COST}={cost} on pod {self._namespace}/{pod_name}"):
            await core.patch_namespaced_pod(
                pod_name, self._namespace, body, _request_timeout=self._config.request_timeout_s
            )

    async def _register_endpoints(self) -> None:
        discovery = client.DiscoveryV1Api(await self._connect())
        selector = f"{SERVICE_NAME_LABEL}={self._config.service}"
        with self._errors(f"listing the EndpointSlices of service {self._config.service!r}"):
            slices = await discovery.list_namespaced_endpoint_slice(
                self._namespace,
                label_selector=selector,
                _request_timeout=self._config.request_timeout_s,
            )
        known_urls = {i.url for i in self._registry.snapshot.instances}
        for endpoint_slice in slices.items or ():
            for endpoint in endpoint_slice.endpoints or ():
                conditions = endpoint.conditions
                # An unset "ready" means unknown, which Kubernetes says to treat as ready.
                if conditions is not None and (conditions.ready is False or conditions.terminating):
                    continue
                ref = endpoint.target_ref
                for ip in endpoint.addresses or ():
                    url = f"http://{_url_host(ip)}:{self._config.worker_port}"
                    if ip in self._retired_ips or url in known_urls:
                        continue
                    pod_name = ref.name if ref is not None and ref.kind == "Pod" else None
                    try:
                        self._membership.register(url, pod_name, None, None)
                    except Conflict as exc:
                        log.warning("kubernetes_endpoint_not_registered", url=url, reason=str(exc))


def _load_incluster(configuration: client.Configuration) -> str | None:
    """Fill ``configuration`` from the pod's service account; return its namespace.

    Reads small files under /var/run/secrets once per connection, so blocking is harmless.
    """
    config.load_incluster_config(client_configuration=configuration)
    with contextlib.suppress(OSError):
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    return None


def _host(url: str) -> str:
    return URL(url).host or ""


def _url_host(ip: str) -> str:
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(ip).version == 6:
            return f"[{ip}]"
    return ip


def _status_message(body: Any) -> str:
    """The ``message`` of a Kubernetes ``Status`` error body, when there is one."""
    if not body:
        return ""
    try:
        message = orjson.loads(body).get("message")
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return ""
    return f": {message}" if message else ""
