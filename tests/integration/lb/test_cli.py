"""``python -m lb --help``, run as a process, documents every setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from common.settings import shown_default
from lb.settings import LBSettings


@pytest.fixture(scope="module")
def help_text() -> str:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LB_")}
    env["COLUMNS"] = "200"  # keep argparse from wrapping inside a default
    done = subprocess.run(
        [sys.executable, "-m", "lb", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return " ".join(done.stdout.split())


@pytest.mark.parametrize("name", list(LBSettings.model_fields))
def test_help_lists_each_setting_with_its_env_var_and_default(help_text: str, name: str) -> None:
    field = LBSettings.model_fields[name]
    env = f"LB_{name.upper()}"

    assert f"--{name.replace('_', '-')} {env} " in help_text
    assert f"[env {env}; default: {shown_default(field)}]" in help_text
    assert "PydanticUndefined" not in help_text


@pytest.mark.parametrize(
    "documented",
    [
        "[env LB_PORT; default: 8080]",
        "[env LB_ADMIN_PORT; default: 8081]",
        "[env LB_STRATEGY; default: least_loaded]",
        "[env LB_HEALTH_INTERVAL_S; default: 2.0]",
        "[env LB_HEALTH_TIMEOUT_S; default: 1.0]",
        "[env LB_HEALTH_RISE; default: 2]",
        "[env LB_HEALTH_FALL; default: 3]",
    ],
)
def test_help_shows_the_documented_defaults(help_text: str, documented: str) -> None:
    assert documented in help_text
