"""EOS ids: an `eos_token_id` setting as a list, generated ids cut at their first EOS, and the `stop_at_eos` fill of a
finished row."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import torch

__all__ = ["cut_at_eos", "eos_id_list", "fill_after_eos"]


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


def fill_after_eos(gen: torch.Tensor, mask_id: int, eos: torch.Tensor, fill_id: int) -> None:
    """Rows whose first decided EOS has no masked position before it are finished: fill their still-masked positions
    after that EOS with `fill_id` (in later blocks too: they follow the end of the answer). Decided tokens are kept."""
    masked = gen == mask_id
    is_eos = torch.isin(gen, eos) & ~masked
    has_eos = is_eos.any(-1)
    if not bool(has_eos.any()):
        return
    L = gen.shape[-1]
    positions = torch.arange(L, device=gen.device).unsqueeze(0)
    first = torch.where(is_eos, positions, torch.full_like(positions, L)).min(-1).values
    masked_before = (masked & (positions < first.unsqueeze(-1))).any(-1)
    done = has_eos & ~masked_before
    fill = done.unsqueeze(-1) & (positions > first.unsqueeze(-1)) & masked
    gen.masked_fill_(fill, fill_id)
