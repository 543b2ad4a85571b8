"""Load a script of `trainers/` as a module (not a test module): the folder holds scripts, not an installed package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TRAINERS = Path(__file__).resolve().parent.parent / "trainers"


def load_script(name: str) -> ModuleType:
    """`trainers/<name>.py` imported under the module name `<name>` (its `__main__` block does not run)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TRAINERS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
