"""The built-in trained unmasking policies, inside the package and loadable offline by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._builtin import builtin_names, builtin_path
from .._warnings import warn_deprecated
from .base import UnmaskingStrategy

BUILTIN_POLICY_DIR = Path(__file__).resolve().parent / "builtin_policies"


def list_builtin_policies() -> list[str]:
    """Names of the built-in trained policies (folders of `hf_unmask/strategies/builtin_policies/`).

    Each name says what it was trained for: `<dLLM>-<task>-<bl8|full>-alpha<alpha>`.

    Example:
        ```python
        >>> from hf_unmask.strategies import list_builtin_policies
        >>> "tiny-dllm-program_trace-bl8-alpha1" in list_builtin_policies()
        True
        ```
    """
    return builtin_names(BUILTIN_POLICY_DIR)


def builtin_policy_path(name: str) -> Path:
    """Folder of the built-in policy `name` (usable with `UnmaskingStrategy.from_pretrained`)."""
    return builtin_path(BUILTIN_POLICY_DIR, name, "policy", "policies")


def load_builtin_policy(name: str, **overrides: Any) -> Any:
    """Load a built-in policy by name (no network needed); keyword arguments override its saved settings
    (e.g. `temperature`, `unmask_beta`, `mode`).

    Example:
        ```python
        >>> import hf_unmask
        >>> from hf_unmask.strategies import load_builtin_policy
        >>> policy = load_builtin_policy("tiny-dllm-program_trace-bl8-alpha1")
        >>> policy.trained_for["block_length"]
        8
        ```
    """
    return UnmaskingStrategy.from_pretrained(builtin_policy_path(name), **overrides)


def __getattr__(name: str) -> Any:
    if name == "PRETRAINED_POLICY_DIR":
        warn_deprecated("PRETRAINED_POLICY_DIR", "BUILTIN_POLICY_DIR")
        return BUILTIN_POLICY_DIR
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
