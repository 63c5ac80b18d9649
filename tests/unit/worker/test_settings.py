from __future__ import annotations

import pytest
from pydantic import ValidationError

from worker.settings import EXAMPLES_GRAPHS, WorkerSettings, build_parser, load_settings


def test_defaults_point_at_the_shipped_examples() -> None:
    settings = WorkerSettings()
    assert settings.graphs == EXAMPLES_GRAPHS
    assert EXAMPLES_GRAPHS.is_file()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.url == "http://127.0.0.1:8000"
    assert settings.worker_id == "worker-127-0-0-1-8000"


def test_every_field_has_a_description() -> None:
    assert all(f.description for f in WorkerSettings.model_fields.values())


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_PORT", "9001")
    monkeypatch.setenv("WORKER_MAX_CONCURRENCY", "3")
    settings = load_settings(["--max-concurrency", "5"])
    assert settings.port == 9001
    assert settings.max_concurrency == 5


def test_advertise_url_and_instance_id() -> None:
    settings = WorkerSettings(advertise_url="http://worker-a:8000")
    assert settings.url == "http://worker-a:8000"
    assert settings.worker_id == "worker-worker-a-8000"
    assert WorkerSettings(instance_id="w1").worker_id == "w1"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("http://a, http://b", ["http://a", "http://b"]), ('["http://c"]', ["http://c"]), ("", [])],
)
def test_webhook_urls_from_env(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]
) -> None:
    monkeypatch.setenv("WORKER_WEBHOOK_URLS", raw)
    assert WorkerSettings().webhook_urls == expected


def test_store_urls() -> None:
    assert WorkerSettings(store="postgresql://db/x").store == "postgresql://db/x"
    with pytest.raises(ValidationError, match="expected sqlite"):
        WorkerSettings(store="mysql://x")


def test_help_mentions_env_and_default() -> None:
    text = " ".join(build_parser().format_help().split())
    assert "WORKER_SHUTDOWN_TIMEOUT_S" in text
    assert "default: 30.0" in text
