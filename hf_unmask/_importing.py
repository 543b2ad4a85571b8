"""Import user code named `module:attribute` (a correctness function, a reward function): one rule everywhere.

A module or package in the current working directory is found first, as it is for `python -m`, so
`--correctness my_checks:is_correct` and `--reward_funcs my_rewards:reward` find `my_checks.py` / `my_rewards.py`
next to where the command runs, whether it is `hf-unmask evaluate`, `hf-unmask train` or
`python scripts/train_unmasking_policy.py` (whose own `sys.path[0]` is `scripts/`). `sys.path` is left as it is: the
module is loaded from the working directory by file location, and only what was asked for is imported from there.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any, Optional


def import_object(spec: str, what: str) -> Any:
    """The object named by `spec` = `package.module:attribute[.attribute...]`; `what` names it in errors.

    Raises `ValueError` naming the fix: a module that is not found (put it in the current directory or on
    PYTHONPATH), a module that fails while importing (its own error), or a missing attribute.

    Example:
        ```python
        >>> import_object("os.path:join", "function")("a", "b")
        'a/b'
        ```
    """
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path or ":" in attr_path:
        raise ValueError(f"Malformed {what} {spec!r}: expected 'module:function', e.g. 'my_module:my_function'.")
    cwd = os.getcwd()
    try:
        module = _import_from_working_directory(module_name, cwd) or importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ValueError(
                f"Cannot import module '{module_name}' for {what} '{spec}' ({err}). Put {module_name.split('.')[0]}"
                f".py (or the package folder) in the current directory ({cwd}) or add its folder to PYTHONPATH."
            ) from err
        hint = ""
        if missing and importlib.machinery.PathFinder.find_spec(missing.split(".")[0], [cwd]) is not None:
            hint = (
                f" '{missing}' is in the current directory, which is not on sys.path: make the two modules one "
                "package (a folder with __init__.py) or run with PYTHONPATH=."
            )
        raise ValueError(f"Importing module '{module_name}' for {what} '{spec}' failed: {err}.{hint}") from err
    except ImportError as err:
        raise ValueError(f"Importing module '{module_name}' for {what} '{spec}' failed: {err}") from err
    obj: Any = module
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            where = getattr(module, "__file__", None) or module_name
            raise ValueError(
                f"Module '{module_name}' ({where}) has no attribute '{attr_path}' (from {what} '{spec}')."
            )
        obj = getattr(obj, part)
    return obj


def _import_from_working_directory(module_name: str, cwd: str) -> Optional[ModuleType]:
    """`module_name` when its top-level module or package is a file or folder in `cwd` (and was not imported
    before), else None. The top level is loaded from its file and registered in `sys.modules`, so its submodules
    and its own imports of them resolve through the package as usual."""
    top = module_name.split(".", 1)[0]
    if top in sys.modules or "" in sys.path or cwd in sys.path:  # imported already, or `cwd` is searched anyway
        return None
    spec = importlib.machinery.PathFinder.find_spec(top, [cwd])
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[top] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[top]
        raise
    return importlib.import_module(module_name)
