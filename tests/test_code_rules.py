"""Rules for the repository's code: no module edits `sys.path` (imports resolve the way Python resolves them), the
code, docstrings and documentation state facts instead of pointing at files or issue trackers outside the
repository, and functions stay short. Each checker is also run on a planted violation, so it can fail."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Where modules live: the package, the benchmarks, the scripts (`trainers/` is the scripts' former name).
CODE_DIRS = ("hf_unmask", "benchmarks", "scripts", "trainers")
_PATH_METHODS = {"insert", "append", "extend", "remove", "pop", "clear", "__setitem__", "__delitem__", "__iadd__"}


def _python_files(dirs) -> list[Path]:
    return sorted(p for d in dirs if (REPO / d).is_dir() for p in (REPO / d).rglob("*.py") if ".venv" not in p.parts)


def _is_sys_path(node: ast.AST) -> bool:
    """`sys.path` as an attribute of the `sys` module."""
    if isinstance(node, ast.Attribute):
        return node.attr == "path" and isinstance(node.value, ast.Name) and node.value.id == "sys"
    return False


def sys_path_edits(source: str, name: str) -> list[str]:
    """`name:line` of every statement of `source` that changes `sys.path`: a call of one of its mutating methods, an
    assignment to it or to an item or slice of it, an augmented assignment, a `del` of an item.

    Example:
        >>> sys_path_edits("import sys\\nsys.path.insert(0, 'x')\\nsys.path[:] = []\\nprint(sys.path)\\n", "m.py")
        ['m.py:2', 'm.py:3']
    """
    found = []
    tree = ast.parse(source)
    from_sys = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "sys" for alias in node.names if alias.name == "path"}  # fmt: skip

    def is_path(node: ast.AST) -> bool:
        return _is_sys_path(node) or (isinstance(node, ast.Name) and node.id in from_sys)

    def target_is_path(target: ast.AST) -> bool:
        return is_path(target) or (isinstance(target, ast.Subscript) and is_path(target.value))

    for node in ast.walk(tree):
        edit = False
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            edit = node.func.attr in _PATH_METHODS and is_path(node.func.value)
        elif isinstance(node, ast.Assign):
            edit = any(target_is_path(t) for t in node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            edit = target_is_path(node.target)
        elif isinstance(node, ast.Delete):
            edit = any(target_is_path(t) for t in node.targets)
        if edit:
            found.append(f"{name}:{node.lineno}")
    return sorted(set(found), key=lambda s: int(s.rsplit(":", 1)[1]))


def test_no_module_edits_sys_path():
    edits = []
    for path in _python_files(CODE_DIRS):
        edits += sys_path_edits(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert not edits, (
        "These lines change sys.path for the whole process; import by module name (`python -m benchmarks.NAME`, "
        "`from .helpers import ...`) or load a file with importlib.util.spec_from_file_location instead:\n"
        + "\n".join(edits)
    )


def test_the_sys_path_check_catches_every_kind_of_edit():
    source = """import sys
from sys import path as search_path
sys.path.insert(0, "a")
sys.path.append("b")
sys.path += ["c"]
sys.path = ["d"]
sys.path[0] = "e"
del sys.path[0]
search_path.extend(["f"])
print(sys.path, list(sys.path))
"""
    assert sys_path_edits(source, "x.py") == [f"x.py:{line}" for line in range(3, 10)]


# ---------------------------------------------------------------------------------------------------------------
# references to places outside the repository
# ---------------------------------------------------------------------------------------------------------------
_OUTSIDE = re.compile(
    r"PAPER\.md|DESIGN\.md|\.\./shared\b"  # notes that are not shipped with the repository
    r"|\bissues?\s*#?\d+"  # "issue 14", "issue #14", "issues #89"
    r"|(?<![\w&/#])#\d+\b"  # a bare tracker reference, "#12"
    r"|\bthe issue\b",
    re.IGNORECASE,
)


def outside_references(text: str, name: str) -> list[str]:
    """`name:line: match` for every reference to a file or an issue tracker outside the repository in `text`.

    Example:
        >>> outside_references("ok\\nsee PAPER.md and issue 14\\nfixed in #12\\nrank 1 (# 1 is fine)\\n", "f.py")
        ['f.py:2: PAPER.md', 'f.py:2: issue 14', 'f.py:3: #12']
    """
    return [
        f"{name}:{number}: {match.group(0)}"
        for number, line in enumerate(text.splitlines(), 1)
        for match in _OUTSIDE.finditer(line)
    ]


def _documented_files() -> list[Path]:
    files = _python_files((*CODE_DIRS, "tests"))
    for pattern in ("hf_unmask/**/*.md", "docs/**/*.md", "*.md", "scripts/**/*.yaml", "trainers/**/*.yaml"):
        files += [p for p in REPO.glob(pattern) if ".venv" not in p.parts]
    this = Path(__file__).resolve()
    return sorted({p for p in files if p.resolve() != this})


def test_code_docstrings_and_docs_state_facts_not_outside_references():
    found = []
    for path in _documented_files():
        found += outside_references(path.read_text(encoding="utf-8", errors="replace"), str(path.relative_to(REPO)))
    assert not found, (
        "References to notes or issue trackers outside the repository; state the fact itself instead:\n"
        + "\n".join(found)
    )


# ---------------------------------------------------------------------------------------------------------------
# function length
# ---------------------------------------------------------------------------------------------------------------
MAX_FUNCTION_LINES = 80


def long_functions(source: str, name: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """`name:line function (N lines)` for every function of `source` longer than `limit` lines (its decorators and
    docstring included)."""
    return [
        f"{name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit
    ]


def test_no_function_in_the_package_is_longer_than_80_lines():
    found = []
    for path in _python_files(("hf_unmask",)):
        found += long_functions(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert not found, f"Functions over {MAX_FUNCTION_LINES} lines; split them:\n" + "\n".join(found)


def test_the_length_check_counts_lines():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    just_fits = "".join(body.splitlines(keepends=True)[1:])  # the `def` line and 79 more: 80 lines
    assert long_functions(f"def fits():\n{just_fits}", "a.py") == []
    assert long_functions(f"def long():\n{body}", "a.py") == [f"a.py:1 long ({MAX_FUNCTION_LINES + 1} lines)"]
