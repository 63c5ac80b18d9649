"""The kubernetes backend against the Kubernetes API as the real client sends it (aioresponses).

Every test checks what went over the wire: method, path, query, JSON body, content type and the
bearer token from the kubeconfig, and what the LB's registry holds afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import certifi
import pytest
from kubernetes_asyncio.config import incluster_config

from lb.autoscaler.backends import kubernetes as k8s_module
from lb.autoscaler.backends.base import BackendError
from lb.autoscaler.backends.kubernetes import DELETION_COST, KubernetesBackend, KubernetesConfig
from lb.fleet.control import Membership
from lb.fleet.registry import Instance, Registry
from lb.settings import LBSettings
from tests.unit.autoscaler.http_api import HttpApi
from tests.unit.lb.helpers import FakeClock

API = "https://k8s.test:6443"
TOKEN = "s3cret-token"
SCALE_PATH = "/apis/apps/v1/namespaces/fleet/deployments/worker/scale"
PODS_PATH = "/api/v1/namespaces/fleet/pods"
SLICES_PATH = "/apis/discovery.k8s.io/v1/namespaces/fleet/endpointslices"
SELECTOR = "app=worker"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"

KUBECONFIG = f"""
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {{server: "{API}", insecure-skip-tls-verify: true}}
users:
- name: lb
  user: {{token: "{TOKEN}"}}
contexts:
- name: test
  context: {{cluster: test, user: lb, namespace: fleet}}
current-context: test
"""


def scale(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "worker", "namespace": "fleet"},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "selector": SELECTOR},
    }


def pod(name: str, ip: str, **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "fleet", "annotations": annotations or None},
        "status": {"podIP": ip, "phase": "Running"},
    }


def endpoint(pod_name: str, ip: str, **conditions: bool) -> dict[str, Any]:
    return {
        "addresses": [ip],
        "conditions": conditions,
        "targetRef": {"kind": "Pod", "name": pod_name, "namespace": "fleet"},
    }


def worker(instance_id: str, ip: str) -> Instance:
    return Instance(id=instance_id, url=f"http://{ip}:8000", max_capacity=10)


@pytest.fixture
def api() -> Iterator[HttpApi]:
    with HttpApi() as mocked:
        yield mocked


@pytest.fixture
def registry() -> Registry:
    return Registry(FakeClock())


@pytest.fixture
def membership(registry: Registry) -> Membership:
    return Membership(registry, LBSettings())


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return path


def make_backend(
    kubeconfig: Path, membership: Membership, registry: Registry, **options: Any
) -> KubernetesBackend:
    config = KubernetesConfig(
        deployment="worker", kubeconfig=str(kubeconfig), service="worker-svc", **options
    )
    return KubernetesBackend(config, membership, registry)


@pytest.fixture
async def backend(
    kubeconfig: Path, membership: Membership, registry: Registry
) -> AsyncIterator[KubernetesBackend]:
    made = make_backend(kubeconfig, membership, registry)
    yield made
    await made.close()


def mock_fleet(api: HttpApi, replicas: int, pods: list[dict[str, Any]]) -> None:
    api.get(API + SCALE_PATH, payload=scale(replicas))
    api.get(f"{API}{PODS_PATH}?labelSelector={SELECTOR}", payload={"items": pods})


def assert_authorized(api: HttpApi) -> None:
    assert api.sent, "no request was sent"
    for sent in api.sent:
        assert sent.url.host == "k8s.test"
        assert sent.headers.get("Authorization") == f"Bearer {TOKEN}", sent


async def test_current_reads_the_scale_subresource_and_caches_pod_ips(
    api: HttpApi, backend: KubernetesBackend
) -> None:
    mock_fleet(api, 3, [pod("worker-a", "10.1.0.1"), pod("worker-b", "10.1.0.2")])

    assert await backend.current() == 3

    api.only("GET", SCALE_PATH)  # the namespace came from the kubeconfig's context
    assert api.only("GET", PODS_PATH).query == {"labelSelector": SELECTOR}
    assert_authorized(api)
    assert backend.owns(worker("any-id", "10.1.0.2"))
    assert not backend.owns(worker("worker-a", "10.9.9.9"))


async def test_scale_up_patches_the_scale_to_replicas_plus_count(
    api: HttpApi, backend: KubernetesBackend
) -> None:
    api.get(API + SCALE_PATH, payload=scale(3))
    api.patch(API + SCALE_PATH, payload=scale(5))

    await backend.scale_up(2)

    patch = api.only("PATCH", SCALE_PATH)
    assert patch.body == {"spec": {"replicas": 5}}
    assert patch.headers["Content-Type"] == STRATEGIC_MERGE
    assert_authorized(api)


async def test_prefer_victims_marks_victims_cheapest_and_clears_stale_marks(
    api: HttpApi, backend: KubernetesBackend
) -> None:
    pods = [
        pod("worker-a", "10.1.0.1"),
        pod("worker-b", "10.1.0.2", **{DELETION_COST: "-1000"}),  # left by an earlier LB
        pod("worker-c", "10.1.0.3", **{DELETION_COST: "500"}),  # an operator's: not ours
        pod("worker-d", "10.1.0.4"),
    ]
    mock_fleet(api, 4, pods)
    api.patch(f"{API}{PODS_PATH}/worker-a", payload=pods[0])
    api.patch(f"{API}{PODS_PATH}/worker-b", payload=pods[1])

    await backend.prefer_victims([worker("worker-a", "10.1.0.1")])

    marked = api.only("PATCH", f"{PODS_PATH}/worker-a")
    assert marked.body == {"metadata": {"annotations": {DELETION_COST: "-1000"}}}
    assert marked.headers["Content-Type"] == STRATEGIC_MERGE
    cleared = api.only("PATCH", f"{PODS_PATH}/worker-b")
    assert cleared.body == {"metadata": {"annotations": {DELETION_COST: None}}}
    assert [s.path for s in api.sent if s.method == "PATCH"] == [
        f"{PODS_PATH}/worker-a",
        f"{PODS_PATH}/worker-b",
    ]
    assert_authorized(api)


async def test_a_later_round_keeps_the_marks_of_victims_still_draining(
    api: HttpApi, backend: KubernetesBackend
) -> None:
    mock_fleet(api, 3, [pod("worker-a", "10.1.0.1"), pod("worker-b", "10.1.0.2")])
    api.patch(f"{API}{PODS_PATH}/worker-a", payload={})
    await backend.prefer_victims([worker("worker-a", "10.1.0.1")])
    # worker-a is still draining when the next round picks worker-b.
    api.get(
        f"{API}{PODS_PATH}?labelSelector={SELECTOR}",
        payload={
            "items": [
                pod("worker-a", "10.1.0.1", **{DELETION_COST: "-1000"}),
                pod("worker-b", "10.1.0.2"),
            ]
        },
    )
    api.patch(f"{API}{PODS_PATH}/worker-b", payload={})

    await backend.prefer_victims([worker("worker-b", "10.1.0.2")])

    assert len(api.requests_to("PATCH", f"{PODS_PATH}/worker-a")) == 1  # not cleared
    api.only("PATCH", f"{PODS_PATH}/worker-b")


async def test_prefer_victims_refuses_a_victim_that_is_not_a_pod(
    api: HttpApi, backend: KubernetesBackend
) -> None:
    mock_fleet(api, 1, [pod("worker-a", "10.1.0.1")])

    with pytest.raises(BackendError, match="not a pod of deployment 'worker'"):
        await backend.prefer_victims([worker("stray", "10.9.9.9")])

    assert not [s for s in api.sent if s.method == "PATCH"]


async def test_scale_down_sends_the_victim_first_then_patches_replicas_and_forgets_it(
    api: HttpApi, kubeconfig: Path, membership: Membership, registry: Registry
) -> None:
    backend = make_backend(kubeconfig, membership, registry, register_endpoints=True)
    membership.register("http://10.1.0.1:8000", "worker-a", None, None)
    membership.register("http://10.1.0.2:8000", "worker-b", None, None)
    fleet = [pod("worker-a", "10.1.0.1"), pod("worker-b", "10.1.0.2")]
    api.get(API + SCALE_PATH, payload=scale(2))  # for the label selector
    api.get(f"{API}{PODS_PATH}?labelSelector={SELECTOR}", payload={"items": fleet})
    api.get(API + SCALE_PATH, payload=scale(2))  # for the replica count
    api.patch(f"{API}{PODS_PATH}/worker-a", payload=fleet[0])
    api.patch(API + SCALE_PATH, payload=scale(1))
    # Afterwards the victim's pod is still terminating and its endpoint still listed ready.
    mock_fleet(api, 1, fleet)
    api.get(
        f"{API}{SLICES_PATH}?labelSelector=kubernetes.io/service-name=worker-svc",
        payload={
            "items": [{"addressType": "IPv4", "endpoints": [endpoint("worker-a", "10.1.0.1")]}]
        },
    )
    try:
        await backend.scale_down([worker("worker-a", "10.1.0.1")])

        patches = [(s.path, s.body) for s in api.sent if s.method == "PATCH"]
        assert patches == [
            # One cheaper than a draining victim: of several marked, this one goes now.
            (f"{PODS_PATH}/worker-a", {"metadata": {"annotations": {DELETION_COST: "-1001"}}}),
            (SCALE_PATH, {"spec": {"replicas": 1}}),
        ]
        assert [i.id for i in registry.snapshot.instances] == ["worker-b"]

        assert await backend.current() == 1
        assert registry.get("worker-a") is None  # not re-registered from its stale endpoint
    finally:
        await backend.close()


async def test_scale_down_of_a_vanished_pod_forgets_it_without_taking_a_replica(
    api: HttpApi, backend: KubernetesBackend, membership: Membership, registry: Registry
) -> None:
    membership.register("http://10.1.0.1:8000", "worker-a", None, None)
    mock_fleet(api, 2, [pod("worker-b", "10.1.0.2"), pod("worker-c", "10.1.0.3")])

    await backend.scale_down([worker("worker-a", "10.1.0.1")])

    assert not [s for s in api.sent if s.method == "PATCH"]
    assert registry.get("worker-a") is None


async def test_start_registers_the_ready_endpoints_of_the_worker_service(
    api: HttpApi, kubeconfig: Path, membership: Membership, registry: Registry
) -> None:
    backend = make_backend(kubeconfig, membership, registry, register_endpoints=True)
    # This one registered itself under its own id: the backend leaves it be.
    membership.register("http://10.1.0.5:8000", "self-registered", None, None)
    mock_fleet(api, 5, [pod(f"worker-{n}", f"10.1.0.{n}") for n in range(1, 6)])
    slices = [
        {
            "addressType": "IPv4",
            "endpoints": [
                endpoint("worker-1", "10.1.0.1", ready=True),
                endpoint("worker-2", "10.1.0.2", ready=False),
                endpoint("worker-3", "10.1.0.3", ready=True, terminating=True),
            ],
        },
        {
            "addressType": "IPv4",
            "endpoints": [endpoint("worker-4", "10.1.0.4"), endpoint("worker-5", "10.1.0.5")],
        },
    ]
    api.get(
        f"{API}{SLICES_PATH}?labelSelector=kubernetes.io/service-name=worker-svc",
        payload={"items": slices},
    )
    try:
        await backend.start()
    finally:
        await backend.close()

    assert api.only("GET", SLICES_PATH).query == {
        "labelSelector": "kubernetes.io/service-name=worker-svc"
    }
    assert_authorized(api)
    urls = {i.id: i.url for i in registry.snapshot.instances}
    assert urls == {
        "self-registered": "http://10.1.0.5:8000",
        "worker-1": "http://10.1.0.1:8000",
        "worker-4": "http://10.1.0.4:8000",  # readiness unknown counts as ready
    }
    assert all(backend.owns(i) for i in registry.snapshot.instances)


@pytest.mark.parametrize(
    ("status", "message"), [(404, 'deployments.apps "worker" not found'), (500, "etcd down")]
)
async def test_api_errors_are_backend_errors_with_the_status_message(
    api: HttpApi, backend: KubernetesBackend, status: int, message: str
) -> None:
    api.get(
        API + SCALE_PATH,
        status=status,
        payload={"kind": "Status", "status": "Failure", "message": message, "code": status},
    )

    with pytest.raises(BackendError, match=f"HTTP {status}") as raised:
        await backend.current()

    assert message in str(raised.value)
    assert "fleet/worker" in str(raised.value)


async def test_a_refused_scale_patch_is_a_backend_error(
    api: HttpApi, backend: KubernetesBackend
) -> None:
    api.get(API + SCALE_PATH, payload=scale(2))
    api.patch(API + SCALE_PATH, status=403, payload={"kind": "Status", "message": "forbidden"})

    with pytest.raises(
        BackendError, match=r"scaling deployment fleet/worker to 3 failed: HTTP 403"
    ):
        await backend.scale_up(1)


async def test_an_unreachable_api_server_is_a_backend_error(
    api: HttpApi, backend: KubernetesBackend
) -> None:
    # No route mocked: aioresponses refuses the connection.
    with pytest.raises(BackendError, match="API server unreachable"):
        await backend.current()
    assert len(api.sent) == 1


async def test_a_missing_kubeconfig_is_a_backend_error(
    tmp_path: Path, membership: Membership, registry: Registry
) -> None:
    backend = make_backend(tmp_path / "nope", membership, registry)
    with pytest.raises(BackendError, match="cannot load configuration"):
        await backend.start()


async def test_in_cluster_uses_the_service_account_token_and_namespace(
    api: HttpApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    membership: Membership,
    registry: Registry,
) -> None:
    token = tmp_path / "token"
    token.write_text("in-cluster-token")
    namespace = tmp_path / "namespace"
    namespace.write_text("fleet\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "k8s.test")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", certifi.where())
    monkeypatch.setattr(k8s_module, "SERVICE_ACCOUNT_NAMESPACE", namespace)
    backend = KubernetesBackend(KubernetesConfig(deployment="worker"), membership, registry)
    mock_fleet(api, 2, [])
    try:
        assert await backend.current() == 2
    finally:
        await backend.close()

    assert api.only("GET", SCALE_PATH).headers["Authorization"] == "Bearer in-cluster-token"
