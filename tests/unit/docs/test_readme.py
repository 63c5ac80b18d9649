"""Every setting appears in the README, with the default the code has."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from common.settings import shown_default
from lb.settings import LBSettings
from worker.settings import WorkerSettings

ROOT = Path(__file__).parents[3]
README = (ROOT / "README.md").read_text()


def _rows(model: type[BaseSettings], prefix: str) -> list[tuple[str, str]]:
    # Paths inside the project are shown relative to it, as the README shows them.
    return [
        (f"{prefix}{name.upper()}", shown_default(field).replace(f"{ROOT}/", ""))
        for name, field in model.model_fields.items()
    ]


@pytest.mark.parametrize(("variable", "default"), _rows(LBSettings, "LB_"))
def test_lb_setting_is_documented_with_its_default(variable: str, default: str) -> None:
    row = next((line for line in README.splitlines() if line.startswith(f"| `{variable}` |")), None)
    assert row is not None, f"{variable} is missing from the README's settings table"
    assert default in row, f"README shows another default for {variable}: {row}"


@pytest.mark.parametrize(("variable", "default"), _rows(WorkerSettings, "WORKER_"))
def test_worker_setting_is_documented_with_its_default(variable: str, default: str) -> None:
    test_lb_setting_is_documented_with_its_default(variable, default)
