"""The lm-evaluation-harness versions `hf_unmask.lm_eval` is written and tested for.

The model class follows the evaluator's request objects (`Instance`), its multi-process calls (`all_gather`,
`gather_object`, `barrier`) and the layout of the logged samples it adds NFE to; the entry point runs lm-eval's own
CLI. A release outside this range may change any of them, so importing `hf_unmask.lm_eval` with one warns
(`tests/lm_eval/test_lm_eval_compat.py` says what changed).
"""

from __future__ import annotations

from typing import Optional

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from .._warnings import warn_at_caller

#: The lm_eval versions hf_unmask.lm_eval is tested with; the same range as the `[lm-eval]` extra of pyproject.toml.
LM_EVAL_REQUIREMENT = ">=0.4.13,<0.4.14"

_warned = False


def installed_lm_eval_version() -> str:
    import lm_eval

    return lm_eval.__version__


def is_supported_lm_eval(version: Optional[str] = None) -> bool:
    """Whether an lm_eval version (default: the installed one) is in `LM_EVAL_REQUIREMENT`.

    Example:
        ```python
        >>> is_supported_lm_eval("0.4.13"), is_supported_lm_eval("0.4.14"), is_supported_lm_eval("0.4.9")
        (True, False, False)
        ```
    """
    version = installed_lm_eval_version() if version is None else version
    return Version(version) in SpecifierSet(LM_EVAL_REQUIREMENT)


def warn_if_untested() -> None:
    """Warn once when the installed lm_eval is outside `LM_EVAL_REQUIREMENT`."""
    global _warned
    if _warned or is_supported_lm_eval():
        return
    _warned = True
    warn_at_caller(
        f"hf_unmask.lm_eval is tested with lm_eval{LM_EVAL_REQUIREMENT}, but lm_eval {installed_lm_eval_version()} "
        f"is installed: evaluation may fail or report NFE wrongly. Install a tested version: "
        f"pip install 'lm_eval{LM_EVAL_REQUIREMENT}' (or pip install 'hf_unmask[lm-eval]')."
    )
