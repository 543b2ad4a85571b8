"""Warnings that point at the user's line, however deep inside hf_unmask (or the libraries it drives) they are
raised, and the one text of a deprecation warning."""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path
from types import FrameType

# Frames inside these packages are skipped: a warning names the first frame outside them. torch's covers the
# `torch.no_grad()` decorator around generation; transformers' and huggingface_hub's `from_pretrained` and a model's
# forward; trl's and accelerate's the training loop that calls back into hf_unmask.
_SKIPPED_PACKAGES = ("hf_unmask", "torch", "transformers", "huggingface_hub", "trl", "accelerate")


def _package_dirs() -> tuple[str, ...]:
    dirs = []
    for name in _SKIPPED_PACKAGES:
        spec = importlib.util.find_spec(name)  # locates the package without importing it
        for location in (spec.submodule_search_locations or []) if spec is not None else []:
            dirs.append(str(Path(location).resolve()) + os.sep)
    return tuple(dirs)


_INTERNAL_DIRS = _package_dirs()


def _is_internal(frame: FrameType) -> bool:
    filename = frame.f_code.co_filename
    if filename == "<string>":  # code generated for a package's class, e.g. a dataclass __init__
        return str(frame.f_globals.get("__name__", "")).split(".")[0] in _SKIPPED_PACKAGES
    if filename.startswith("<"):  # doctests and the interactive prompt are the user's
        return False
    return str(Path(filename).resolve()).startswith(_INTERNAL_DIRS)


def caller_stacklevel() -> int:
    """The `stacklevel` a `warnings.warn` in the calling function needs to name the first frame outside hf_unmask
    and the libraries it drives (torch, transformers, huggingface_hub, trl, accelerate).

    Example:
        ```python
        >>> caller_stacklevel() >= 1
        True
        ```
    """
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and _is_internal(frame):
        frame = frame.f_back
        level += 1
    return level


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """`warnings.warn(message, category)` attributed to the user's line that led into hf_unmask.

    Example:
        ```python
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_at_caller("careful")
        >>> str(caught[0].message), caught[0].category.__name__
        ('careful', 'UserWarning')
        ```
    """
    warnings.warn(message, category, stacklevel=caller_stacklevel())  # counted from this frame, internal too


def warn_deprecated(old: str, new: str) -> None:
    """A `FutureWarning` at the user's line: `old` is deprecated (removed in the next release), `new` replaces it.

    Example:
        ```python
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_deprecated("cache_mode", "cache_implementation")
        >>> str(caught[0].message)
        'cache_mode is deprecated and will be removed in the next release; use cache_implementation instead.'
        ```
    """
    warn_at_caller(f"{old} is deprecated and will be removed in the next release; use {new} instead.", FutureWarning)
