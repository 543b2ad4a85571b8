"""`module:function` specs (`--correctness`, `--reward_funcs`) find modules and packages in the working directory
without changing `sys.path`, and say what to do when such a module imports a sibling module."""

from __future__ import annotations

import sys

import pytest

from hf_unmask._importing import import_object


@pytest.fixture
def working_directory(tmp_path, monkeypatch):
    """`tmp_path` as the working directory, which is not on `sys.path` (as for the `hf-unmask` console script)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    names = ("cwd_checks", "cwd_pkg", "cwd_pkg.rules", "cwd_uses_sibling", "cwd_sibling")
    yield tmp_path
    for name in names:
        sys.modules.pop(name, None)


def test_modules_and_packages_in_the_working_directory_import_without_touching_sys_path(working_directory):
    (working_directory / "cwd_checks.py").write_text("def same(a, b):\n    return a == b\n")
    package = working_directory / "cwd_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("def strip(text):\n    return text.strip()\n")
    (package / "rules.py").write_text(
        "from .helpers import strip\n\ndef close(a, b):\n    return strip(a) == strip(b)\n"
    )
    before = list(sys.path)
    assert import_object("cwd_checks:same", "correctness function")("x", "x") is True
    assert import_object("cwd_pkg.rules:close", "reward function")(" x", "x ") is True
    assert sys.path == before
    assert sys.modules["cwd_checks"].__file__ == str(working_directory / "cwd_checks.py")


def test_a_sibling_import_of_a_working_directory_module_names_the_fix(working_directory):
    (working_directory / "cwd_sibling.py").write_text("VALUE = 1\n")
    (working_directory / "cwd_uses_sibling.py").write_text("import cwd_sibling\n\ndef f(a, b):\n    return True\n")
    with pytest.raises(ValueError, match="'cwd_sibling' is in the current directory.*package.*PYTHONPATH=."):
        import_object("cwd_uses_sibling:f", "correctness function")
    assert "cwd_uses_sibling" not in sys.modules  # a failed import leaves nothing half-imported behind
