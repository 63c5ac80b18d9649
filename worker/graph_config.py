"""A ``langgraph.json`` read as the official LangGraph CLI reads it, for what a worker needs.

Honoured: ``graphs`` (``"./file.py:attr"`` relative to the file, or ``"module:attr"``; also
the ``{"path": ...}`` form), ``dependencies`` (local directories, relative to the file, put on
``sys.path`` so their packages import; nothing is installed at run time, and entries that are
not local paths, such as PyPI names, are for image builds and ignored here) and ``env`` (a
``.env`` file relative to the file, or a mapping). Other keys (``store``, ``checkpointer``,
``http``, ``auth``, ...) are not read here.

``env`` never overrides a variable already set: the operator's environment wins, as with
``docker compose``'s ``env_file`` (``langgraph dev`` instead overwrites).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values


class GraphLoadError(Exception):
    """A graph named in langgraph.json cannot be served; the message says which and why."""


@dataclass(frozen=True, slots=True)
class LangGraphConfig:
    """What a worker takes from one langgraph.json, validated and resolved."""

    path: Path
    graphs: dict[str, str]
    dependencies: tuple[Path, ...]
    env: dict[str, str]

    @property
    def base_dir(self) -> Path:
        return self.path.resolve().parent


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise GraphLoadError(f"{path}: file not found") from exc
    except (OSError, ValueError) as exc:
        raise GraphLoadError(f"{path}: cannot read JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise GraphLoadError(f'{path}: no "graphs" object naming at least one graph')
    return doc


def _graph_specs(path: Path, graphs: Any) -> dict[str, str]:
    if not isinstance(graphs, dict) or not graphs:
        raise GraphLoadError(f'{path}: no "graphs" object naming at least one graph')
    specs: dict[str, str] = {}
    for name, spec in graphs.items():
        if isinstance(spec, dict):  # {"path": "...", "description": "..."} form
            spec = spec.get("path")
        if not isinstance(spec, str) or ":" not in spec:
            raise GraphLoadError(
                f"graph {name!r}: spec {spec!r} is not 'path/to/file.py:attr' or 'module:attr'"
            )
        specs[name] = spec
    return specs


def _is_local_path(entry: str) -> bool:
    return entry.startswith((".", "/", "~"))


def _dependencies(path: Path, entries: Any) -> tuple[Path, ...]:
    if entries is None:
        return ()
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise GraphLoadError(f'{path}: "dependencies" must be a list of strings')
    base_dir = path.resolve().parent
    found: list[Path] = []
    for entry in entries:
        if not _is_local_path(entry):
            continue  # a package to install when building an image: nothing to do at run time
        directory = (base_dir / Path(entry).expanduser()).resolve()
        if not directory.is_dir():
            raise GraphLoadError(f'{path}: dependency "{entry}" is not a directory ({directory})')
        found.append(directory)
    return tuple(found)


def _env(path: Path, env: Any) -> dict[str, str]:
    if env is None:
        return {}
    if isinstance(env, Mapping):
        if not all(isinstance(k, str) and isinstance(v, str | int | float) for k, v in env.items()):
            raise GraphLoadError(f'{path}: "env" must map names to strings')
        return {k: str(v) for k, v in env.items()}
    if not isinstance(env, str):
        raise GraphLoadError(f'{path}: "env" must be a .env file path or a mapping')
    env_file = (path.resolve().parent / env).resolve()
    if not env_file.is_file():
        raise GraphLoadError(f'{path}: env file "{env}" not found ({env_file})')
    # A name without a value (``KEY`` alone) sets nothing, as python-dotenv's loader does.
    return {k: v for k, v in dotenv_values(env_file).items() if v is not None}


def read_config(path: Path) -> LangGraphConfig:
    """Read and validate ``path``; nothing is applied (see ``apply_config``)."""
    doc = _read_json(path)
    return LangGraphConfig(
        path=path,
        graphs=_graph_specs(path, doc.get("graphs")),
        dependencies=_dependencies(path, doc.get("dependencies")),
        env=_env(path, doc.get("env")),
    )


def apply_config(config: LangGraphConfig) -> None:
    """Put ``dependencies`` on ``sys.path`` and ``env`` in ``os.environ``, before any import.

    Idempotent: a directory already on the path is not added twice; a variable already set
    (by the operator, or by an earlier call) is kept.
    """
    for directory in config.dependencies:
        if str(directory) not in sys.path:
            sys.path.append(str(directory))
    for name, value in config.env.items():
        os.environ.setdefault(name, value)
