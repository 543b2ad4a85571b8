"""Folders inside the package (the built-in trained models and policies), found by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .hub import CONFIG_NAME


def builtin_names(root: Path) -> list[str]:
    """Names of the sub-folders of `root` that hold a `config.json`, sorted."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_NAME).is_file())


def builtin_path(root: Path, name: str, kind: str, kinds: str) -> Path:
    """The folder `root/name`; a `ValueError` listing the built-in ones when there is none (`kind`/`kinds`:
    "policy", "policies")."""
    path = root / name
    if not name or "/" in name or not (path / CONFIG_NAME).is_file():
        available = ", ".join(builtin_names(root)) or "(none)"
        raise ValueError(f"Unknown built-in {kind} '{name}'. Built-in {kinds}: {available}.")
    return path


#: The model that `load_builtin_model()` and the name "builtin" (CLI, trainer) stand for.
DEFAULT_BUILTIN_MODEL = "tiny-dllm"


def is_builtin_alias(name: Any) -> bool:
    """Whether `name` designates a built-in model: `"builtin"` (the default) or `"builtin:NAME"`."""
    return isinstance(name, str) and (name == "builtin" or name.startswith("builtin:"))


def builtin_model_name(name_or_alias: str) -> str:
    """The built-in model an alias stands for: `"builtin"` -> the default, `"builtin:NAME"` -> NAME; other names
    are returned as they are."""
    if name_or_alias == "builtin":
        return DEFAULT_BUILTIN_MODEL
    return name_or_alias.split(":", 1)[1] if name_or_alias.startswith("builtin:") else name_or_alias
