"""EOS ids: an `eos_token_id` setting as a list, and generated ids cut at their first EOS."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

__all__ = ["cut_at_eos", "eos_id_list"]


def eos_id_list(eos_token_id: Any) -> list[Any]:
    """An `eos_token_id` setting (one id, a list or tuple of ids, or None) as a list of ids; values are kept as
    they are (callers that need checked integers convert them).

    Example:
        ```python
        >>> eos_id_list(2), eos_id_list([2, 7]), eos_id_list(None)
        ([2], [2, 7], [])
        ```
    """
    if eos_token_id is None:
        return []
    return list(eos_token_id) if isinstance(eos_token_id, (list, tuple)) else [eos_token_id]


def cut_at_eos(ids: Iterable[int], eos_ids: Collection[int], keep_eos: bool = False) -> list[int]:
    """The ids before the first EOS (all of them when there is none); with `keep_eos`, through that EOS.

    Example:
        ```python
        >>> cut_at_eos([5, 6, 2, 7, 2], {2}), cut_at_eos([5, 6, 2, 7], [2], keep_eos=True), cut_at_eos([5, 6], [2])
        ([5, 6], [5, 6, 2], [5, 6])
        ```
    """
    ids = list(ids)
    eos = set(eos_ids)
    for i, token in enumerate(ids):
        if token in eos:
            return ids[: i + 1] if keep_eos else ids[:i]
    return ids
