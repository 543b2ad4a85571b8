"""The layering contract of pyproject.toml (`lint-imports`, run by `make test`) holds, and it catches a new cycle:
a scratch copy of the sources with one upward import fails it, naming the import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install -e '.[dev]')")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {"PATH": str(LINT.parent), "PYTHONPATH": str(root), "HOME": str(root)}
    return subprocess.run(
        [str(LINT), "--no-cache", str(REPO / "pyproject.toml")], cwd=root, env=env, capture_output=True, text=True
    )


def _copy_sources(dest: Path) -> Path:
    shutil.copytree(REPO / "hf_unmask", dest / "hf_unmask", ignore=lambda d, names: [n for n in names if not (
        n.endswith(".py") or (Path(d, n).is_dir() and n != "__pycache__"))])  # fmt: skip
    return dest


def test_the_package_keeps_its_layers(tmp_path):
    result = _lint(_copy_sources(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_is_caught(tmp_path):
    root = _copy_sources(tmp_path)
    loop = root / "hf_unmask" / "generation" / "loop.py"
    loop.write_text(loop.read_text() + "\nfrom ..strategies.lookup import get_strategy_by_name  # noqa\n")
    result = _lint(root)
    assert result.returncode != 0
    assert "hf_unmask.generation is not allowed to import hf_unmask.strategies" in result.stdout
    assert "hf_unmask.generation.loop -> hf_unmask.strategies.lookup" in result.stdout
