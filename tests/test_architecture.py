"""The package's import graph keeps the shape docs/architecture.md describes: no cycle
(function-level imports included), and nothing below the registration layer imports
``extension.py``."""

from __future__ import annotations

import ast
from pathlib import Path

import flask_maildelivery

PACKAGE_DIR = Path(flask_maildelivery.__file__).parent
PACKAGE = "flask_maildelivery"


def _module_name(path: Path) -> str:
    parts = (PACKAGE, *path.relative_to(PACKAGE_DIR).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every module of the package -> the package modules it imports, anywhere in its
    body (a function-level import counts as much as a top-level one)."""
    files = {_module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join([*parts, base] if base else parts)
                submodules = [f"{base}.{alias.name}" for alias in node.names]
                # "from . import signals" imports the submodule, not the package's __init__
                targets = submodules if all(t in files for t in submodules) else [base, *submodules]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that ends where it starts, or ``None``."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        path.append(module)
        for target in sorted(graph[module]):
            if target in path:
                return [*path[path.index(target) :], target]
            if target not in done:
                found = visit(target)
                if found:
                    return found
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if module not in done:
            found = visit(module)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.context" in graph[f"{PACKAGE}.ingest"], "the graph misses imports"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_only_the_package_root_imports_the_extension() -> None:
    importers = sorted(
        name for name, targets in import_graph().items() if f"{PACKAGE}.extension" in targets
    )
    assert importers == [PACKAGE]


def test_core_modules_import_only_core() -> None:
    core = {
        f"{PACKAGE}.{name}"
        for name in ("models", "state", "copies", "events", "signals", "vocabulary", "batches")
    }
    graph = import_graph()
    for module in core & graph.keys():
        assert graph[module] <= core, f"{module} imports {sorted(graph[module] - core)}"


def test_the_api_reads_through_the_shared_module_not_through_the_pages() -> None:
    api = import_graph()[f"{PACKAGE}.views.api"]
    assert f"{PACKAGE}.views.pages" not in api
    assert f"{PACKAGE}.views.reading" in api
