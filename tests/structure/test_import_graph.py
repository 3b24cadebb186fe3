"""mstore's layers import downwards only, and the import graph has no cycle.

The folders of mstore/ are its layers (each `__init__.py` says what it may import).
RANKS orders them: a module may import its own layer and layers of a lower rank,
never a higher one, nor another layer of the same rank (siblings stay independent).

Every import counts, wherever it is written (module level, inside a function, under
`TYPE_CHECKING`): a cycle hidden in a lazy import is still two modules that each need
the other. The test walks the package's source with `ast`, so it guards every module,
present and future.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mstore

PACKAGE = Path(mstore.__file__).resolve().parent


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (packages by their __init__)."""
    modules: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["mstore", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports, resolved to modules (not attributes)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a import b` imports module a.b if there is one, else a.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(f"{target}."):
                found.add(target)  # a module's own parent package is not an edge
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


# The layers, bottom up (docs/FORMAT.md, "Code"). Root modules are layers of their own.
RANKS = {
    "errors": 0,
    "core": 1,
    "checkpoints": 2,
    "chunks": 2,
    "views": 2,
    "workflow": 2,
    "reading": 2,
    "caches": 3,
    "remotes": 3,
    "trust": 3,
    "settings": 3,
    "transaction": 4,
    "repo": 5,
    "ops": 6,
    "transfer": 7,
    "api": 8,
    "ui": 9,
    "cli": 10,
    "": 9,  # the package itself (`import mstore` loads the API on first use)
}


def layer(module: str) -> str:
    """`mstore.core.refs` -> "core"; `mstore.repo` -> "repo"; `mstore` -> ""."""
    return module.split(".")[1] if "." in module else ""


def rank_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a higher layer, or of a sibling layer of the same rank."""
    found = []
    for module, imported in sorted(graph.items()):
        for target in sorted(imported):
            here, there = layer(module), layer(target)
            if here != there and RANKS[there] >= RANKS[here]:
                found.append(
                    f"{module} ({here}, {RANKS[here]}) imports {target} ({there}, {RANKS[there]})"
                )
    return found


def test_every_module_belongs_to_a_ranked_layer() -> None:
    unranked = {layer(module) for module in import_graph()} - set(RANKS)
    assert unranked == set(), "give these layers a rank: " + ", ".join(sorted(unranked))


def test_layers_import_only_downwards() -> None:
    assert rank_violations(import_graph()) == []


def test_an_upward_or_sideways_import_is_found() -> None:
    """The checker itself, on a graph with one import of each kind."""
    graph = {
        "mstore.core.refs": {"mstore.core.layout", "mstore.errors"},  # own layer, below: fine
        "mstore.core.config": {"mstore.views.build"},  # upwards
        "mstore.views.build": {"mstore.workflow.policy"},  # a sibling of the same rank
        "mstore.repo": {"mstore.transaction", "mstore.views.build"},  # downwards: fine
    }

    assert rank_violations(graph) == [
        "mstore.core.config (core, 1) imports mstore.views.build (views, 2)",
        "mstore.views.build (views, 2) imports mstore.workflow.policy (workflow, 2)",
    ]


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 30  # the walk found the package
    assert cycles(graph) == []


def test_a_cycle_is_found() -> None:
    """The detector itself: a cycle through a lazy import is reported."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
