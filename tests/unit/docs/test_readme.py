"""Every setting appears in the README, with the default the code has."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from lb.settings import LBSettings
from worker.settings import WorkerSettings

ROOT = Path(__file__).parents[3]
README = (ROOT / "README.md").read_text()


def _rows(model: type[BaseSettings], prefix: str) -> list[tuple[str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        shown = shown.replace(f"{ROOT}/", "")  # paths inside the project, as the README shows them
        rows.append((f"{prefix}{name.upper()}", shown if shown not in ("", "None") else "(none)"))
    return rows


@pytest.mark.parametrize(("variable", "default"), _rows(LBSettings, "LB_"))
def test_lb_setting_is_documented_with_its_default(variable: str, default: str) -> None:
    row = next((line for line in README.splitlines() if line.startswith(f"| `{variable}` |")), None)
    assert row is not None, f"{variable} is missing from the README's settings table"
    assert default in row, f"README shows another default for {variable}: {row}"


@pytest.mark.parametrize(("variable", "default"), _rows(WorkerSettings, "WORKER_"))
def test_worker_setting_is_documented_with_its_default(variable: str, default: str) -> None:
    test_lb_setting_is_documented_with_its_default(variable, default)
