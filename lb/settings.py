"""The load balancer's settings: environment first (``LB_*``), overridable on the command line."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
StrategyName = Literal["least_loaded", "round_robin", "random", "power_of_two"]
AutoscaleBackend = Literal["off", "local", "kubernetes", "docker"]


class LBSettings(BaseSettings):
    """Every knob of ``python -m lb``. Built once in ``main()`` and passed down."""

    model_config = SettingsConfigDict(env_prefix="LB_", extra="ignore")

    # Addresses
    host: str = Field("127.0.0.1", description="Address the proxy listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port the proxy listens on.")
    admin_host: str = Field("127.0.0.1", description="Address of the admin API and /metrics.")
    admin_port: int = Field(8081, ge=0, le=65535, description="Port of the admin API.")
    admin_token: str = Field(
        "", description="Bearer token for /admin/*; required when the admin host is not loopback."
    )
    admin_allowed_hosts: str = Field(
        "",
        description="Host names /admin/* may be called by (Host and Origin), comma-separated, "
        "besides the admin address; * allows any.",
    )
    instance_allow_networks: str = Field(
        "",
        description="CIDRs instance URLs may point into although link-local or cloud metadata "
        "(refused otherwise), comma-separated.",
    )
    trusted_proxies: str = Field(
        "",
        description="CIDRs of proxies in front of the LB whose X-Forwarded-*, Forwarded and "
        "X-Real-IP are believed, comma-separated (empty: nobody's).",
    )

    # Membership and routing
    instances: str = Field(
        "", description="Static worker URLs, comma-separated (http://host:port,...)."
    )
    strategy: StrategyName = Field("least_loaded", description="Balancing strategy.")
    default_max_capacity: int = Field(
        100, gt=0, description="Concurrent requests an instance takes until it reports its own."
    )
    affinity_table_size: int = Field(
        100_000, gt=0, description="Threads and runs remembered for affinity routing."
    )
    affinity_ttl_s: float = Field(
        3600.0, gt=0, description="How long a thread stays pinned to the worker that ran it."
    )

    # Queueing when every instance is at capacity
    queue_size: int = Field(1024, ge=0, description="Requests that may wait for capacity.")
    queue_timeout_s: float = Field(
        10.0, ge=0, description="How long a request waits for capacity before a 503."
    )
    retry_after_s: int = Field(1, ge=0, description="Retry-After sent with LB-made 503s.")

    # Active health checks (HAProxy's defaults)
    health_path: str = Field("/health", description="Path of each worker's health check.")
    health_interval_s: float = Field(2.0, gt=0, description="Time between health checks.")
    health_timeout_s: float = Field(1.0, gt=0, description="Timeout of one health check.")
    health_jitter: float = Field(
        0.1, ge=0, le=1, description="Random share of the interval added or removed per check."
    )
    health_rise: int = Field(2, ge=1, description="Passing checks that make an instance healthy.")
    health_fall: int = Field(3, ge=1, description="Failing checks that make it unhealthy.")

    # Passive ejection (Envoy's outlier detection)
    eject_consecutive_errors: int = Field(
        5, ge=0, description="Consecutive connect errors or 5xx that eject an instance (0: off)."
    )
    eject_base_s: float = Field(
        30.0, gt=0, description="First ejection time; it grows with each repeated ejection."
    )
    eject_max_s: float = Field(300.0, gt=0, description="Longest ejection time.")
    eject_max_percent: int = Field(
        50, ge=0, le=100, description="Largest share of the fleet ejected at once."
    )

    # Proxying
    retries: int = Field(2, ge=0, description="Extra attempts on other instances.")
    connect_timeout_s: float = Field(5.0, gt=0, description="Timeout to connect to a worker.")
    first_byte_timeout_s: float = Field(
        300.0, gt=0, description="Timeout for a worker's response headers (runs.wait may be long)."
    )
    max_body_bytes: int = Field(
        1 << 30, ge=0, description="Largest request body; larger gets 413 (0: unlimited)."
    )
    max_header_bytes: int = Field(
        16384, gt=0, description="Largest total size of request headers; larger gets 431."
    )
    max_headers: int = Field(
        100, gt=0, description="Most header fields in a request; more gets 431 (HAProxy: 101)."
    )
    replay_buffer_bytes: int = Field(
        65536,
        ge=0,
        description="Request bodies up to this size are kept so a refused POST can be retried.",
    )
    client_body_timeout_s: float = Field(
        60.0, gt=0, description="Longest silence while a client sends a request body."
    )
    client_header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Longest time a client may take to send a whole request head; then 408.",
    )
    max_connections: int = Field(
        10_000,
        ge=0,
        description="Most client connections on the proxy port; more are closed at once "
        "(0: unlimited).",
    )
    shutdown_timeout_s: float = Field(
        30.0, ge=0, description="How long in-flight requests may finish after SIGTERM."
    )
    access_log: bool = Field(True, description="Log one line per proxied request.")

    # Control plane
    data_dir: Path = Field(Path("data/lb"), description="Where the registry's state file lives.")
    redis_url: str = Field("", description="Redis URL to share the registry between LBs.")
    redis_key_prefix: str = Field(
        "graphfleet:lb", description="Prefix of the Redis keys of this fleet's shared registry."
    )
    instance_ttl_s: float = Field(
        60.0, ge=0, description="Registered instances silent and failing this long are removed."
    )
    drain_timeout_s: float = Field(
        300.0, ge=0, description="Longest wait for a draining instance's work to finish."
    )

    # Autoscaler
    autoscale: AutoscaleBackend = Field(
        "off", description="Scaling backend: off, local, kubernetes or docker."
    )
    autoscale_mode: Literal["threshold", "target"] = Field(
        "threshold", description="threshold (up above/down below) or target (HPA-style)."
    )
    autoscale_min: int = Field(2, ge=0, description="Fewest workers the autoscaler keeps.")
    autoscale_max: int = Field(10, ge=1, description="Most workers the autoscaler starts.")
    autoscale_interval_s: float = Field(5.0, gt=0, description="Time between decisions.")
    autoscale_up_at: float = Field(
        0.8, gt=0, description="threshold mode: scale up above this utilization."
    )
    autoscale_down_at: float = Field(
        0.2, ge=0, description="threshold mode: scale down below this utilization."
    )
    autoscale_target: float = Field(
        0.6, gt=0, description="target mode: the utilization to aim for."
    )
    autoscale_tolerance: float = Field(
        0.1, ge=0, description="target mode: relative deviation that changes nothing."
    )
    autoscale_up_window_s: float = Field(15.0, ge=0, description="Scale-up stabilization window.")
    autoscale_down_window_s: float = Field(
        300.0, ge=0, description="Scale-down stabilization window."
    )
    autoscale_max_step_up: int = Field(4, ge=1, description="Most workers added per decision.")
    autoscale_max_step_down: int = Field(1, ge=1, description="Most workers removed per decision.")
    autoscale_local_command: str = Field(
        "",
        description="local: the command that starts a worker (default: this Python -m worker).",
    )
    autoscale_start_timeout_s: float = Field(
        60.0,
        gt=0,
        description="local and docker: how long a new worker may take to become healthy.",
    )

    # Kubernetes backend
    k8s_namespace: str = Field(
        "", description="kubernetes: namespace of the worker Deployment (empty: from the config)."
    )
    k8s_deployment: str = Field(
        "graphfleet-worker", description="kubernetes: the worker Deployment to scale."
    )
    k8s_kubeconfig: str = Field(
        "", description="kubernetes: kubeconfig path (empty: the in-cluster service account)."
    )
    k8s_context: str = Field("", description="kubernetes: kubeconfig context (empty: current).")
    k8s_service: str = Field(
        "graphfleet-worker",
        description="kubernetes: worker Service whose EndpointSlices list pods.",
    )
    k8s_register_endpoints: bool = Field(
        False, description="kubernetes: register ready endpoints for workers that do not."
    )
    k8s_worker_port: int = Field(8000, gt=0, description="kubernetes: port of endpoint URLs.")
    k8s_victim_deletion_cost: int = Field(
        -1000, description="kubernetes: pod-deletion-cost put on pods chosen for scale-down."
    )
    k8s_request_timeout_s: float = Field(
        10.0, gt=0, description="kubernetes: timeout of one API call."
    )

    # Docker backend
    docker_url: str = Field(
        "unix:///var/run/docker.sock", description="docker: Engine API (unix:// or http://)."
    )
    docker_image: str = Field("graphfleet:latest", description="docker: worker image.")
    docker_network: str = Field(
        "graphfleet", description="docker: network of the workers; the LB must be on it."
    )
    docker_fleet: str = Field(
        "graphfleet", description="docker: fleet label value and container name prefix."
    )
    docker_worker_port: int = Field(8000, gt=0, description="docker: the worker's port.")
    docker_env: dict[str, str] = Field(
        default_factory=dict, description="docker: extra worker environment, as JSON."
    )
    docker_api_version: str = Field(
        "auto", description="docker: Engine API version (auto asks the engine)."
    )
    docker_stop_timeout_s: int = Field(
        30, ge=0, description="docker: grace between SIGTERM and SIGKILL on stop."
    )
    docker_request_timeout_s: float = Field(
        30.0, gt=0, description="docker: timeout of one Engine API call."
    )

    # Status page (admin port, GET /)
    status_interval_s: float = Field(
        2.0, gt=0, description="Time between the status page's samples of the fleet."
    )
    status_history_s: float = Field(
        600.0, gt=0, description="How far back the status page's charts go."
    )
    status_session_ttl_s: float = Field(
        28800.0, gt=0, description="How long a status page sign-in lasts."
    )

    # Logging
    log_level: str = Field("info", description="debug, info, warning or error.")
    log_format: Literal["json", "console"] = Field("json", description="Log output format.")

    @field_validator("instance_allow_networks", "trusted_proxies")
    @classmethod
    def _cidr_list(cls, value: str) -> str:
        parse_networks(value)  # ValueError names the bad entry
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error", "critical"}:
            raise ValueError("must be debug, info, warning, error or critical")
        return value.lower()

    def instance_urls(self) -> list[str]:
        return [url.strip() for url in self.instances.split(",") if url.strip()]


def parse_networks(cidrs: str) -> tuple[IPNetwork, ...]:
    """A comma-separated CIDR list (a bare address is a /32 or /128); ValueError if bad."""
    parts = [part.strip() for part in cidrs.split(",")]
    return tuple(ipaddress.ip_network(part, strict=False) for part in parts if part)
