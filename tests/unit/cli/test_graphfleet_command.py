"""The ``graphfleet`` dispatcher's pure parts: the arguments of ``up`` and the settings they
become, and the usage errors (no process is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common import cli


@pytest.mark.parametrize(
    ("value", "bounds"), [("1:4", (1, 4)), ("0:1", (0, 1)), ("3", (3, 3)), ("2:2", (2, 2))]
)
def test_workers_bounds(value: str, bounds: tuple[int, int]) -> None:
    assert cli.up_parser().parse_args(["--workers", value]).workers == bounds


@pytest.mark.parametrize("value", ["4:1", "a:b", "-1:2", "0:0", ":", "1:2:3"])
def test_bad_workers_bounds_are_usage_errors(value: str) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.up_parser().parse_args(["--workers", value])
    assert exc.value.code == 2


def test_up_environment_puts_state_under_the_project(tmp_path: Path) -> None:
    args = cli.up_parser().parse_args(["--workers", "1:3", "--port", "9000"])
    env = cli.up_environment(args, tmp_path)
    assert env["LB_AUTOSCALE"] == "local"
    assert (env["LB_AUTOSCALE_MIN"], env["LB_AUTOSCALE_MAX"]) == ("1", "3")
    assert (env["LB_PORT"], env["LB_ADMIN_PORT"]) == ("9000", "8081")
    assert env["WORKER_GRAPHS"] == str(tmp_path.resolve() / "langgraph.json")
    assert (
        env["WORKER_STORE"] == f"sqlite:///{tmp_path.resolve() / '.graphfleet' / 'worker.sqlite'}"
    )
    assert env["LB_DATA_DIR"] == str(tmp_path.resolve() / ".graphfleet" / "lb")


def test_a_store_url_is_used_as_given(tmp_path: Path) -> None:
    args = cli.up_parser().parse_args(["--store", "postgresql://db/app", "--config", "a/lg.json"])
    env = cli.up_environment(args, tmp_path)
    assert env["WORKER_STORE"] == "postgresql://db/app"
    assert env["WORKER_GRAPHS"] == str(tmp_path.resolve() / "a" / "lg.json")


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert cli.main(["--help"]) == 0
    assert "graphfleet COMMAND" in capsys.readouterr().out
    assert cli.main(["launch"]) == 2
    assert "unknown command 'launch'" in capsys.readouterr().err
