"""The one rule of the layout: ``lb`` and ``worker`` never import each other, ``common`` imports
neither, and no module imports in a circle (function-level imports included)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("common", "lb", "worker")
FORBIDDEN = {"common": {"lb", "worker"}, "lb": {"worker"}, "worker": {"lb"}}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def _imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """Every project module ``name`` imports, resolved to the longest known module name."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: set(_imports(name, path, known)) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules along it, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):
                continue  # a package importing its own submodules is not a cycle
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_is_seen() -> None:
    # A walk that found nothing would pass every rule below: it must see real edges.
    graph = _graph()
    for package in ("lb", "worker"):
        assert any(
            target.startswith("common.")
            for name, targets in graph.items()
            if name.split(".")[0] == package
            for target in targets
        ), package


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_what_the_layout_allows(package: str) -> None:
    offenders = sorted(
        f"{name} imports {target}"
        for name, targets in _graph().items()
        if name.split(".")[0] == package
        for target in targets
        if target.split(".")[0] in FORBIDDEN[package]
    )
    assert offenders == []


def test_no_module_imports_in_a_circle() -> None:
    assert _cycle(_graph()) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


# The load balancer's layers, lowest first: a module may import its own layer and lower ones.
LB_LAYERS = {
    "lb.settings": 0,
    "lb.errors": 0,
    "lb.gc_policy": 0,  # the process's garbage collection, set by lb.__main__: no lb import
    "lb.http": 0,
    "lb.fleet": 1,
    "lb.admin_guard": 1,
    "lb.metrics": 2,
    "lb.routing": 3,
    "lb.proxy": 4,
    "lb.autoscaler": 4,
    "lb.components": 5,
    "lb.status": 6,  # the status page: reads the components, served by the admin app
    "lb.admin": 7,
    "lb.app": 8,
    "lb.ctl": 0,  # the admin API's command-line client: HTTP only, imports no lb module
    "lb.__main__": 9,
}


def _lb_layer(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_every_lb_module_is_in_a_layer() -> None:
    unplaced = [
        name for name in _graph() if name.startswith("lb.") and _lb_layer(name) not in LB_LAYERS
    ]
    assert unplaced == []


def test_lb_layers_import_only_downward() -> None:
    offenders = sorted(
        f"{name} imports {target}"
        for name, targets in _graph().items()
        if name.startswith("lb.")
        for target in targets
        if target.startswith("lb.")
        and _lb_layer(target) != _lb_layer(name)
        and LB_LAYERS[_lb_layer(target)] >= LB_LAYERS[_lb_layer(name)]
    )
    assert offenders == []
