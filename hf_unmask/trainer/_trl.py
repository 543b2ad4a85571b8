"""The TRL versions `UnmaskingGRPOTrainer` is written and tested for.

The trainer builds on `GRPOTrainer`'s public constructor and overrides a few of its hooks; it also reads the metric
and completion-log stores TRL's constructor sets up. A TRL release outside this range may change those, so
installing one warns (and `tests/trainer/test_trl_compat.py` says what changed).
"""

from __future__ import annotations

from typing import Optional

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from .._warnings import warn_at_caller

#: The TRL versions the trainer is tested with; the same range as the `[train]` extra of pyproject.toml.
TRL_REQUIREMENT = ">=1.16,<1.17"

_warned = False


def installed_trl_version() -> str:
    import trl

    return trl.__version__


def is_supported_trl(version: Optional[str] = None) -> bool:
    """Whether a TRL version (default: the installed one) is in `TRL_REQUIREMENT`.

    Example:
        ```python
        >>> is_supported_trl("1.16.0"), is_supported_trl("1.17.0"), is_supported_trl("0.19.1")
        (True, False, False)
        ```
    """
    version = installed_trl_version() if version is None else version
    return Version(version) in SpecifierSet(TRL_REQUIREMENT)


def warn_if_untested() -> None:
    """Warn once when the installed TRL is outside `TRL_REQUIREMENT`."""
    global _warned
    if _warned or is_supported_trl():
        return
    _warned = True
    warn_at_caller(
        f"hf_unmask's UnmaskingGRPOTrainer is tested with trl{TRL_REQUIREMENT}, but trl {installed_trl_version()} is "
        f"installed: training may fail or differ. Install a tested version: pip install 'trl{TRL_REQUIREMENT}'."
    )
