"""The modules of `hf_unmask.strategies` import each other without a cycle, function-local imports included (the
layer contract of pyproject.toml sees the package as one node)."""

from __future__ import annotations

import ast
from pathlib import Path

import hf_unmask.strategies

PACKAGE = "hf_unmask.strategies"
FOLDER = Path(hf_unmask.strategies.__file__).resolve().parent


def _module_name(path: Path) -> str:
    return PACKAGE if path.name == "__init__.py" else f"{PACKAGE}.{path.stem}"


def _imported(node: ast.AST, importer: str, modules: set[str]) -> set[str]:
    """The `hf_unmask.strategies` modules an import statement names: `from . import x` imports the submodule x when
    there is one, otherwise the package (its `__init__`)."""
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = importer if importer == PACKAGE else importer.rsplit(".", 1)[0]
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            module = f"{base}.{node.module}" if node.module else base
        else:
            module = node.module or ""
        submodules = {f"{module}.{alias.name}" for alias in node.names} & modules
        names = submodules or {module}
    else:
        return set()
    return {n for n in names if n in modules and n != importer}


def import_graph() -> dict[str, set[str]]:
    """importer -> imported, over every `import` statement of the package's modules (module level, in functions, in
    classes), restricted to modules that exist."""
    modules = {_module_name(p): p for p in FOLDER.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {t for node in ast.walk(tree) for t in _imported(node, name, set(modules))}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of `graph` as [a, b, ..., a], or [] when it is acyclic (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_find_cycle_finds_a_function_local_cycle():
    tree = ast.parse("import os\n\ndef f():\n    from .b import x\n    from . import c\n")
    modules = {f"{PACKAGE}.{m}" for m in "abc"}
    edges = {t for node in ast.walk(tree) for t in _imported(node, f"{PACKAGE}.a", modules)}
    assert edges == {f"{PACKAGE}.b", f"{PACKAGE}.c"}
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_the_strategies_modules_import_each_other_without_a_cycle():
    graph = import_graph()
    assert f"{PACKAGE}.base" in graph and f"{PACKAGE}.learned" in graph  # the graph is read from the real files
    # modules of the package never import the package itself (its __init__ imports them all)
    through_init = sorted(m for m, targets in graph.items() if PACKAGE in targets and m != PACKAGE)
    assert not through_init, f"these modules import {PACKAGE} itself: {through_init}"
    cycle = find_cycle(graph)
    assert not cycle, "import cycle inside hf_unmask.strategies: " + " -> ".join(cycle)


def test_the_base_class_knows_no_policy_and_no_checkpoint_format():
    graph = import_graph()
    assert not graph[f"{PACKAGE}.base"] & {
        f"{PACKAGE}.learned",
        f"{PACKAGE}.confidence_policy",
        f"{PACKAGE}.paper_checkpoint",
        f"{PACKAGE}.lookup",
    }
    assert f"{PACKAGE}.learned" not in graph[f"{PACKAGE}.card"]
