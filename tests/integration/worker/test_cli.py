"""``python -m worker``: --help lists every setting; a bad langgraph.json fails clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from worker.settings import WorkerSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_help_lists_every_setting_with_env_var_and_default() -> None:
    result = _run("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for name in WorkerSettings.model_fields:
        assert f"--{name.replace('_', '-')}" in text
        assert f"env WORKER_{name.upper()}" in text
    assert "default: 8" in text  # WORKER_MAX_CONCURRENCY


def test_bad_graph_spec_fails_naming_the_graph(tmp_path: Path) -> None:
    (tmp_path / "graphs.py").write_text("graph = 42\n")
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"broken": "./graphs.py:graph"}}))
    result = _run("--graphs", str(config), "--store", f"sqlite:///{tmp_path}/w.sqlite")
    assert result.returncode == 2
    assert "graph 'broken': expected a compiled graph" in result.stderr
