"""The trained unmasking policies shipped inside the package, loadable offline by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._shipped import shipped_names, shipped_path

PRETRAINED_POLICY_DIR = Path(__file__).resolve().parent / "pretrained"


def list_builtin_policies() -> list[str]:
    """Names of the trained policies shipped with hf_unmask (folders of `hf_unmask/strategies/pretrained/`).

    Each name says what it was trained for: `<dLLM>-<task>-<bl8|full>-alpha<alpha>`.

    Example:
        ```python
        >>> from hf_unmask.strategies import list_builtin_policies
        >>> "tiny-dllm-program_trace-bl8-alpha1" in list_builtin_policies()
        True
        ```
    """
    return shipped_names(PRETRAINED_POLICY_DIR)


def builtin_policy_path(name: str) -> Path:
    """Folder of the shipped policy `name` (usable with `UnmaskingStrategy.from_pretrained`)."""
    return shipped_path(PRETRAINED_POLICY_DIR, name, "policy", "policies")


def load_builtin_policy(name: str, **overrides: Any) -> Any:
    """Load a shipped policy by name (no network needed); keyword arguments override its saved settings
    (e.g. `temperature`, `beta`, `mode`).

    Example:
        ```python
        >>> import hf_unmask
        >>> from hf_unmask.strategies import load_builtin_policy
        >>> policy = load_builtin_policy("tiny-dllm-program_trace-bl8-alpha1")
        >>> policy.trained_for["block_length"]
        8
        ```
    """
    from .base import UnmaskingStrategy

    return UnmaskingStrategy.from_pretrained(builtin_policy_path(name), **overrides)
