"""Worker configuration: environment first (``WORKER_*``), command-line flags override.

``WorkerSettings`` is built once in ``main()`` and passed down; nothing reads the environment
at import time. ``build_parser()`` derives one ``--flag`` per field from the model, so
``python -m worker --help`` always lists every setting with its variable and default.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from common.settings import load_settings as shared_load_settings
from common.settings import settings_parser

ENV_PREFIX = "WORKER_"
EXAMPLES_GRAPHS = Path(__file__).parent / "examples" / "langgraph.json"


class WorkerSettings(BaseSettings):
    """Every knob of one worker process; each has a default and a description."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in containers).")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on (0: any free).")
    instance_id: str = Field(
        "",
        description="Id this worker registers under at the LB; empty: derived from the URL.",
    )
    advertise_url: str = Field(
        "", description="URL the LB reaches this worker at; empty: http://HOST:PORT."
    )
    graphs: Path = Field(
        EXAMPLES_GRAPHS, description="Path to the langgraph.json that names the graphs to serve."
    )
    store: str = Field(
        "sqlite:///./data/worker.sqlite",
        description="Where threads, runs and checkpoints live: sqlite:///PATH (the worker "
        "processes of one machine) or postgresql://... (a fleet).",
    )
    sqlite_synchronous: Literal["normal", "full"] = Field(
        "normal",
        description="SQLite store durability: normal (WAL's usual: a commit survives a process "
        "crash; the last ones may be lost on power loss or OS crash) or full (fsync per commit: "
        "survives those too, slower).",
    )
    postgres_synchronous_commit: Literal[
        "server", "on", "off", "local", "remote_write", "remote_apply"
    ] = Field(
        "server",
        description="Postgres store durability, set on this worker's connections: server "
        "(the server's own setting, on by default: a commit survives a server crash, OS crash "
        "and power loss) or one of Postgres' synchronous_commit values; off answers before "
        "the commit is flushed, so the last commits (up to three wal_writer_delay) may be lost "
        "on a server or OS crash, never on a worker crash; the database stays consistent.",
    )
    store_pool_size: int = Field(
        10, ge=1, description="Most connections to a Postgres store (psycopg pool)."
    )
    store_prepared_statements: bool = Field(
        True,
        description="Postgres store: prepare each statement a connection sends often on the "
        "server, once, instead of having it parsed and planned on every run. Set false behind "
        "PgBouncer in transaction mode older than 1.21 (or without max_prepared_statements).",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL (optional): live stream events across workers, cancel commands "
        "to the worker executing a run, cached execution records.",
    )
    redis_prefix: str = Field("graphfleet:", description="Prefix of every Redis key and channel.")
    result_ttl_s: float = Field(
        86400.0, gt=0, description="How long Redis keeps an execution record after it changes."
    )
    run_lease_s: float = Field(
        30.0,
        gt=0,
        description="Lease of a running run, renewed every third of it; a worker that dies "
        "loses its runs to another worker this long after its last renewal.",
    )
    sweep_interval_s: float = Field(
        2.0,
        gt=0,
        description="How often this worker looks for runs whose lease expired or whose holder "
        "is gone.",
    )
    run_max_attempts: int = Field(
        3,
        ge=1,
        description="Executions a run gets (the first plus resumptions after its worker "
        "stopped); then it fails.",
    )
    remote_poll_s: float = Field(
        0.5,
        gt=0,
        description="How often a join of a run another worker executes re-reads the store.",
    )
    max_concurrency: int = Field(
        8, ge=1, description="Runs this worker executes or queues at once; more get 503."
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest request body accepted (larger: 413)."
    )
    keepalive_interval_s: float = Field(
        5.0,
        gt=0,
        description="Interval of ': heartbeat' comments on SSE, blanks on waits and WebSocket "
        "pings.",
    )
    stream_retention_s: float = Field(
        120.0,
        ge=0,
        description="How long a finished run's events stay replayable by join_stream.",
    )
    stream_buffer_events: int = Field(
        10_000, ge=1, description="Events kept per run for join_stream and Last-Event-ID."
    )
    lb_admin_url: str | None = Field(
        None, description="LB admin API to register with, e.g. http://127.0.0.1:8081."
    )
    lb_admin_token: str | None = Field(None, description="Bearer token for the LB admin API.")
    registration_interval_s: float = Field(
        10.0, gt=0, description="Interval between registration heartbeats to the LB."
    )
    lb_timeout_s: float = Field(5.0, gt=0, description="Timeout of one call to the LB admin API.")
    shutdown_timeout_s: float = Field(
        30.0,
        ge=0,
        description="On SIGTERM, how long running runs may finish before they are released "
        "to another worker.",
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, description="Timeout of one webhook attempt (connect, send, answer)."
    )
    webhook_attempts: int = Field(
        10, ge=1, description="Attempts per webhook delivery; then it is marked failed."
    )
    webhook_backoff_s: float = Field(
        1.0, ge=0, description="Delay before a webhook's first retry; doubles each try, jittered."
    )
    webhook_backoff_max_s: float = Field(
        300.0, ge=0, description="Longest delay between webhook attempts (Retry-After included)."
    )
    webhook_secret: str | None = Field(
        None,
        description="Key signing deliveries to WORKER_WEBHOOK_URLS and runs' own webhooks "
        "(Standard Webhooks; whsec_<base64>, or any string used as is).",
    )
    webhook_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hooks fixed by configuration: told of every graph.* event "
        "(comma-separated or a JSON list).",
    )
    webhook_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDRs webhook URLs may resolve into although not public (e.g. "
        "10.0.0.0/8); 'loopback' allows 127.0.0.0/8 and ::1.",
    )
    webhook_lease_s: float = Field(
        60.0,
        gt=0,
        description="Lease of a webhook delivery being sent; another worker retries it this "
        "long after its sender died. Must exceed WORKER_WEBHOOK_TIMEOUT_S.",
    )
    webhook_poll_s: float = Field(
        1.0, gt=0, description="How often this worker looks for webhook deliveries due."
    )
    webhook_concurrency: int = Field(
        32, ge=1, description="Webhook deliveries this worker sends at once."
    )
    webhook_concurrency_per_hook: int = Field(
        4, ge=1, description="Deliveries this worker sends at once to one receiver."
    )
    webhook_disable_after_s: float = Field(
        86400.0,
        ge=0,
        description="A registered hook whose attempts all failed for this long is disabled "
        "(0: never).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    log_format: Literal["json", "console"] = Field("json", description="Log format.")
    cron_interval_s: float = Field(
        5.0,
        gt=0,
        description="How often this worker looks for due crons; each firing happens on one "
        "worker of the fleet.",
    )
    cron_claim_s: float = Field(
        30.0,
        gt=0,
        description="How long a worker holds a due cron while creating its run; a worker that "
        "dies meanwhile delays that firing this long (another worker then fires it once).",
    )

    thread_ttl_sweep_s: float | None = Field(
        None,
        gt=0,
        description="How often this worker looks for threads whose TTL ran out (each is "
        "deleted or pruned once in the fleet); unset: langgraph.json "
        "checkpointer.ttl.sweep_interval_minutes, else 300.",
    )

    @field_validator("webhook_urls", "webhook_allow_networks", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [u.strip() for u in value.split(",") if u.strip()]
        return value

    @model_validator(mode="after")
    def _check_store(self) -> WorkerSettings:
        if not self.store.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError(f"store {self.store!r}: expected sqlite:///PATH or postgresql://...")
        if self.webhook_lease_s <= self.webhook_timeout_s:
            raise ValueError("webhook_lease_s must exceed webhook_timeout_s")
        for entry in self.webhook_allow_networks:
            if entry != "loopback":
                ipaddress.ip_network(entry, strict=False)  # ValueError names the bad entry
        return self

    @property
    def url(self) -> str:
        """The URL the LB should use to reach this worker."""
        return self.advertise_url or f"http://{self.host}:{self.port}"

    @property
    def worker_id(self) -> str:
        """A stable id for registration and for marking the runs this worker holds."""
        if self.instance_id:
            return self.instance_id
        return "worker-" + re.sub(r"[^A-Za-z0-9]+", "-", self.url.split("://", 1)[-1]).strip("-")


_DESCRIPTION = (
    "graphfleet worker: runs LangGraph graphs behind the load balancer. "
    "Every flag can also be set by its environment variable; flags win."
)


def build_parser() -> argparse.ArgumentParser:
    """One ``--flag`` per setting, with its environment variable and default."""
    return settings_parser(WorkerSettings, "python -m worker", ENV_PREFIX, _DESCRIPTION)


def load_settings(argv: Sequence[str] | None = None) -> WorkerSettings:
    """Settings from the environment, overridden by command-line flags in ``argv``."""
    return shared_load_settings(WorkerSettings, argv, "python -m worker", ENV_PREFIX, _DESCRIPTION)
