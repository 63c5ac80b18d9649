"""The ``docker`` scaling backend: worker containers through the Docker Engine API (aiodocker).

Each worker is a container from one image on one network, labelled ``graphfleet.role=worker``
and ``graphfleet.fleet=<fleet>`` so a restarted LB finds (adopts) the fleet it left running.
The LB reaches a worker at ``http://<container name>:<port>``, which resolves on the container's
(user-defined) network: the LB must run on that network too, as in the compose deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiodocker
import aiohttp
import structlog

from lb.autoscaler.backends.base import BackendError
from lb.fleet.control import Conflict, Membership
from lb.fleet.registry import Instance, Registry

log = structlog.get_logger("lb.autoscaler.docker")

ROLE_LABEL = "graphfleet.role"
FLEET_LABEL = "graphfleet.fleet"

HealthProbe = Callable[[str], Awaitable[bool]]
"""Given a worker's health URL, whether it answers healthy now."""


@dataclass(frozen=True, slots=True)
class DockerConfig:
    url: str = "unix:///var/run/docker.sock"
    image: str = "graphfleet:latest"
    network: str = "graphfleet"
    fleet: str = "graphfleet"
    worker_port: int = 8000
    env: Mapping[str, str] = field(default_factory=dict)  # passed to every worker container
    api_version: str = "auto"  # "auto" asks the engine; or pin, e.g. "v1.43"
    start_timeout_s: float = 60.0  # for a new worker to answer GET /health
    stop_timeout_s: int = 30  # Docker's SIGTERM-to-SIGKILL grace on stop
    request_timeout_s: float = 30.0


async def http_probe(url: str) -> bool:
    """``GET url`` answers 200 within two seconds."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as session,
            session.get(url) as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


class DockerBackend:
    """Runs worker containers and keeps the LB's registry in step with them.

    Promises: a worker started by :meth:`scale_up` is registered (id = container name) only
    once it answers ``GET /health``, and a container that never does is removed, not left
    behind; :meth:`current` counts the fleet's running containers plus those starting;
    :meth:`owns` is true for the containers it started or adopted; every Docker Engine failure
    is raised as :class:`BackendError`. Callers call :meth:`start` first and :meth:`close` last.
    """

    name = "docker"

    def __init__(
        self,
        config: DockerConfig,
        membership: Membership,
        registry: Registry,
        *,
        probe: HealthProbe = http_probe,
        probe_interval_s: float = 0.5,
    ) -> None:
        self._config = config
        self._membership = membership
        self._registry = registry
        self._probe = probe
        self._probe_interval_s = probe_interval_s
        self._docker: aiodocker.Docker | None = None
        self._names: set[str] = set()  # containers of this fleet we started or adopted
        self._starting: set[str] = set()  # created, not yet healthy and registered

    # -- the ScalingBackend protocol -----------------------------------------------------------

    async def start(self) -> None:
        for name in await self._running():
            self._names.add(name)
            self._register(name)

    async def current(self) -> int:
        running = await self._running()
        # A running container labelled with our fleet is ours, whoever started it.
        self._names |= running
        return len(running | self._starting)

    def owns(self, instance: Instance) -> bool:
        return instance.id in self._names

    async def scale_up(self, count: int) -> None:
        results = await asyncio.gather(
            *(self._start_one() for _ in range(count)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if not isinstance(failure, BackendError):
                raise failure  # a bug, not an engine failure: let it show
        if failures:
            raise BackendError(
                f"docker: {len(failures)} of {count} workers did not start: {failures[0]}"
            )

    async def prefer_victims(self, victims: list[Instance]) -> None:
        """Nothing to steer: :meth:`scale_down` stops exactly the victims."""

    async def scale_down(self, victims: list[Instance]) -> None:
        mine = [v for v in victims if v.id in self._names]
        for other in victims:
            if other.id not in self._names:
                log.warning("docker_not_owned", instance_id=other.id)
        results = await asyncio.gather(*(self._remove(v.id) for v in mine), return_exceptions=True)
        failures: list[BaseException] = []
        for victim, result in zip(mine, results, strict=True):
            if isinstance(result, BaseException):
                failures.append(result)
                continue
            self._names.discard(victim.id)
            self._membership.forget(victim.id)
        for failure in failures:
            if not isinstance(failure, BackendError):
                raise failure
        if failures:
            raise BackendError(f"docker: {len(failures)} workers not removed: {failures[0]}")

    async def close(self) -> None:
        if self._docker is not None:
            docker, self._docker = self._docker, None
            await docker.close()

    # -- containers ----------------------------------------------------------------------------

    def _client(self) -> aiodocker.Docker:
        if self._docker is None:
            try:
                self._docker = aiodocker.Docker(
                    url=self._config.url,
                    api_version=self._config.api_version,
                    timeout=aiohttp.ClientTimeout(total=self._config.request_timeout_s),
                )
            except ValueError as exc:
                raise BackendError(f"docker: bad engine URL {self._config.url!r}: {exc}") from exc
        return self._docker

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except aiodocker.DockerError as exc:
            # aiodocker reports an unreachable engine as status 900.
            raise BackendError(f"docker: {action} failed: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise BackendError(
                f"docker: {action} failed: engine at {self._config.url} unreachable: {exc!r}"
            ) from exc
        except ValueError as exc:  # an error answer whose body is not the engine's JSON
            raise BackendError(f"docker: {action} failed: unreadable answer: {exc}") from exc

    def _labels(self) -> dict[str, str]:
        return {ROLE_LABEL: "worker", FLEET_LABEL: self._config.fleet}

    async def _running(self) -> set[str]:
        labels = [f"{k}={v}" for k, v in self._labels().items()]
        with self._errors("listing the worker containers"):
            containers = await self._client().containers.list(
                filters={"label": labels, "status": ["running"]}
            )
        # The Engine API lists names with a leading slash: ["/graphfleet-worker-1a2b"].
        return {c["Names"][0].lstrip("/") for c in containers if c["Names"]}

    def _url(self, name: str) -> str:
        return f"http://{name}:{self._config.worker_port}"

    def _container_config(self, name: str) -> dict[str, Any]:
        env = {
            **self._config.env,
            "WORKER_HOST": "0.0.0.0",
            "WORKER_PORT": str(self._config.worker_port),
            "WORKER_ADVERTISE_URL": self._url(name),
            # The same id the backend registers, so a self-registering worker agrees with it.
            "WORKER_INSTANCE_ID": name,
        }
        return {
            "Image": self._config.image,
            "Labels": self._labels(),
            "Env": [f"{k}={v}" for k, v in env.items()],
            "ExposedPorts": {f"{self._config.worker_port}/tcp": {}},
            # A crashed worker comes back under the same name; a stopped one stays stopped.
            "HostConfig": {
                "NetworkMode": self._config.network,
                "RestartPolicy": {"Name": "unless-stopped"},
            },
        }

    async def _start_one(self) -> None:
        docker = self._client()
        name = f"{self._config.fleet}-worker-{secrets.token_hex(4)}"
        self._starting.add(name)
        try:
            with self._errors(f"creating container {name} from {self._config.image}"):
                container = await docker.containers.create(self._container_config(name), name=name)
            try:
                with self._errors(f"starting container {name}"):
                    await container.start()
                    details = await container.show()
                await self._wait_healthy(name, self._health_url(name, details))
            except BaseException:
                # Also on cancellation (LB shutdown): no container outlives the attempt.
                with contextlib.suppress(BackendError):
                    await self._remove(name)
                raise
            self._names.add(name)
            self._register(name)
        finally:
            self._starting.discard(name)

    def _health_url(self, name: str, details: Mapping[str, Any]) -> str:
        # Probe the container's address on its network: that works from the host as well.
        networks = (details.get("NetworkSettings") or {}).get("Networks") or {}
        address = (networks.get(self._config.network) or {}).get("IPAddress") or name
        return f"http://{address}:{self._config.worker_port}/health"

    async def _wait_healthy(self, name: str, health_url: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.start_timeout_s
        while not await self._probe(health_url):
            if loop.time() >= deadline:
                raise BackendError(
                    f"docker: worker {name} did not answer {health_url} "
                    f"within {self._config.start_timeout_s:g}s"
                )
            await asyncio.sleep(self._probe_interval_s)

    def _register(self, name: str) -> None:
        url = self._url(name)
        try:
            # Idempotent by id: a worker that registered itself first just gets a heartbeat.
            self._membership.register(url, name, None, None)
        except Conflict as exc:
            log.warning("docker_worker_not_registered", instance_id=name, reason=str(exc))

    async def _remove(self, name: str) -> None:
        """Stop (SIGTERM, then SIGKILL after the grace) and delete; a missing one is fine."""
        container = self._client().containers.container(name)
        grace_s = self._config.stop_timeout_s
        http_timeout = aiohttp.ClientTimeout(total=grace_s + self._config.request_timeout_s)
        with self._errors(f"stopping container {name}"), _missing_is_fine():
            await container.stop(t=grace_s, timeout=http_timeout)
        with self._errors(f"removing container {name}"), _missing_is_fine():
            await container.delete(force=True)
        log.info("docker_worker_removed", instance_id=name)


@contextlib.contextmanager
def _missing_is_fine() -> Iterator[None]:
    try:
        yield
    except aiodocker.DockerError as exc:
        if exc.status != 404:
            raise
