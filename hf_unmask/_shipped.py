"""Folders shipped inside the package (trained models, trained policies), found by name."""

from __future__ import annotations

from pathlib import Path

from .hub import CONFIG_NAME


def shipped_names(root: Path) -> list[str]:
    """Names of the sub-folders of `root` that hold a `config.json`, sorted."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_NAME).is_file())


def shipped_path(root: Path, name: str, kind: str, kinds: str) -> Path:
    """The folder `root/name`; a `ValueError` listing what is shipped when there is none (`kind`/`kinds`: "policy",
    "policies")."""
    path = root / name
    if not name or "/" in name or not (path / CONFIG_NAME).is_file():
        available = ", ".join(shipped_names(root)) or "(none)"
        raise ValueError(f"Unknown built-in {kind} '{name}'. Built-in {kinds}: {available}.")
    return path
