"""Import user code named `module:attribute` (a correctness function, a reward function): one rule everywhere.

The current working directory is importable, as it is for `python -m`, so `--correctness my_checks:is_correct`
and `--reward_funcs my_rewards:reward` find `my_checks.py` / `my_rewards.py` next to where the command runs, whether
it is `hf-unmask evaluate`, `hf-unmask train` or `python trainers/train_unmasking_policy.py` (whose own `sys.path[0]` is
`trainers/`).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


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
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ValueError(
                f"Cannot import module '{module_name}' for {what} '{spec}' ({err}). Put {module_name.split('.')[0]}"
                f".py (or the package folder) in the current directory ({cwd}) or add its folder to PYTHONPATH."
            ) from err
        raise ValueError(f"Importing module '{module_name}' for {what} '{spec}' failed: {err}") from err
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
