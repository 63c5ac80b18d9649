"""LBSettings: defaults, ``LB_*`` environment overrides, validation and command-line flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from common.settings import load_settings
from lb.settings import LBSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``LB_*`` variable from the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("LB_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("host", "127.0.0.1"),
        ("port", 8080),
        ("admin_host", "127.0.0.1"),
        ("admin_port", 8081),
        ("admin_token", ""),
        ("instances", ""),
        ("strategy", "least_loaded"),
        ("health_path", "/health"),
        ("health_interval_s", 2.0),
        ("health_timeout_s", 1.0),
        ("health_rise", 2),
        ("health_fall", 3),
        ("eject_consecutive_errors", 5),
        ("eject_max_percent", 50),
        ("retries", 2),
        ("access_log", True),
        ("data_dir", Path("data/lb")),
        ("log_level", "info"),
        ("log_format", "json"),
    ],
)
def test_defaults(field: str, expected: Any) -> None:
    assert getattr(LBSettings(), field) == expected


@pytest.mark.parametrize(
    ("env", "value", "field", "expected"),
    [
        ("LB_HOST", "0.0.0.0", "host", "0.0.0.0"),
        ("LB_PORT", "9000", "port", 9000),
        ("LB_ADMIN_PORT", "0", "admin_port", 0),
        ("LB_STRATEGY", "round_robin", "strategy", "round_robin"),
        ("LB_STRATEGY", "power_of_two", "strategy", "power_of_two"),
        ("LB_HEALTH_INTERVAL_S", "0.25", "health_interval_s", 0.25),
        ("LB_HEALTH_RISE", "1", "health_rise", 1),
        ("LB_HEALTH_FALL", "10", "health_fall", 10),
        ("LB_QUEUE_TIMEOUT_S", "0", "queue_timeout_s", 0.0),
        ("LB_EJECT_MAX_PERCENT", "100", "eject_max_percent", 100),
        ("LB_ACCESS_LOG", "false", "access_log", False),
        ("LB_ACCESS_LOG", "0", "access_log", False),
        ("LB_LOG_LEVEL", "DEBUG", "log_level", "debug"),
        ("LB_LOG_FORMAT", "console", "log_format", "console"),
        ("LB_DATA_DIR", "/var/lib/lb", "data_dir", Path("/var/lib/lb")),
        ("lb_port", "9001", "port", 9001),
    ],
)
def test_environment_overrides_a_default(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, field: str, expected: Any
) -> None:
    monkeypatch.setenv(env, value)

    assert getattr(LBSettings(), field) == expected


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("LB_STRATEGY", "bogus"),
        ("LB_STRATEGY", "least-loaded"),
        ("LB_PORT", "-1"),
        ("LB_PORT", "65536"),
        ("LB_PORT", "http"),
        ("LB_ADMIN_PORT", "-8081"),
        ("LB_HEALTH_INTERVAL_S", "0"),
        ("LB_HEALTH_TIMEOUT_S", "-1"),
        ("LB_HEALTH_RISE", "0"),
        ("LB_HEALTH_FALL", "0"),
        ("LB_HEALTH_JITTER", "1.5"),
        ("LB_DEFAULT_MAX_CAPACITY", "0"),
        ("LB_EJECT_MAX_PERCENT", "101"),
        ("LB_EJECT_BASE_S", "0"),
        ("LB_QUEUE_SIZE", "-1"),
        ("LB_RETRIES", "-1"),
        ("LB_LOG_LEVEL", "verbose"),
        ("LB_LOG_FORMAT", "xml"),
        ("LB_ACCESS_LOG", "maybe"),
    ],
)
def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch, env: str, value: str) -> None:
    monkeypatch.setenv(env, value)
    field = env.removeprefix("LB_").lower()

    with pytest.raises(ValidationError) as raised:
        LBSettings()

    assert [error["loc"] for error in raised.value.errors()] == [(field,)]


@pytest.mark.parametrize(
    ("instances", "expected"),
    [
        ("", []),
        ("   ", []),
        ("http://127.0.0.1:8001", ["http://127.0.0.1:8001"]),
        (
            "http://127.0.0.1:8001,http://127.0.0.1:8002",
            ["http://127.0.0.1:8001", "http://127.0.0.1:8002"],
        ),
        (
            " http://a:1 , http://b:2 ,, ,http://c:3, ",
            ["http://a:1", "http://b:2", "http://c:3"],
        ),
        (",", []),
    ],
)
def test_instance_urls(
    monkeypatch: pytest.MonkeyPatch, instances: str, expected: list[str]
) -> None:
    monkeypatch.setenv("LB_INSTANCES", instances)

    assert LBSettings().instance_urls() == expected


def test_command_line_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LB_PORT", "9000")
    monkeypatch.setenv("LB_STRATEGY", "random")

    settings = load_settings(
        LBSettings, ["--port", "9100", "--health-fall", "5"], prog="lb", env_prefix="LB_"
    )

    assert settings.port == 9100
    assert settings.health_fall == 5
    assert settings.strategy == "random"  # no flag: the environment stands
    assert settings.admin_port == 8081  # neither: the default stands


def test_an_invalid_command_line_value_is_rejected() -> None:
    with pytest.raises(ValidationError):
        load_settings(LBSettings, ["--strategy", "bogus"], prog="lb", env_prefix="LB_")
