"""The strategy protocol as the generation loop sees it.

A strategy is any callable `strategy(state) -> BoolTensor[B, L]` (or a `StrategyOutput` carrying the selection's
log-probability, and, for strategies that edit or re-mask, the decided tokens to revise or to set back to
`[MASK]`). The loop knows nothing of the concrete strategies: names (`"top_k_confidence"`, a saved folder, a
Hub repo) and the default (`None`) are turned into strategy objects by a resolver that `hf_unmask.strategies`
registers when it is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import torch

_resolver: Optional[Callable[[Optional[str]], Any]] = None


@dataclass
class StrategyOutput:
    """What a strategy may return instead of a bare tensor.

    Attributes:
        selection: `[B, L]` bool, positions to unmask.
        log_prob: `[B]` float, log-probability of `selection` (and `revision`) under the strategy (learned policies).
        revision: `[B, L]` bool, decided positions of the current block whose token is replaced by `state.proposal`
            (token editing). Only from a strategy whose class sets `revises_decided_tokens = True`; the loop keeps
            it to `state.revisable` (decided, generated, current block), so the prompt and other blocks never change.
        remask: `[B, L]` bool, decided positions of the current block set back to `[MASK]` (re-masking). Only from a
            strategy whose class sets `remasks_decided_tokens = True`; kept to `state.revisable` like `revision`.
    """

    selection: torch.Tensor
    log_prob: Optional[torch.Tensor] = None
    revision: Optional[torch.Tensor] = None
    remask: Optional[torch.Tensor] = None


def register_strategy_resolver(resolver: Callable[[Optional[str]], Any]) -> None:
    """Set the function that turns a strategy name (or None, the default) into a strategy object."""
    global _resolver
    _resolver = resolver


def as_strategy(strategy: Any) -> Any:
    """Accept a strategy object, any callable, a registered short name, or a saved strategy folder / Hub repo.

    Example:
        ```python
        >>> import hf_unmask
        >>> from hf_unmask.generation.strategy import as_strategy
        >>> as_strategy("confidence_threshold")
        ConfidenceThreshold(threshold=0.9)
        ```
    """
    if strategy is None or isinstance(strategy, str):
        if _resolver is None:
            raise RuntimeError("No strategy resolver is registered: import hf_unmask (or hf_unmask.strategies) first.")
        return _resolver(strategy)
    if isinstance(strategy, type):
        raise TypeError(
            f"strategy={strategy.__name__} is a strategy class; generate needs an instance: pass "
            f"strategy={strategy.__name__}() (with its hyper-parameters, e.g. steps=...)."
        )
    if not callable(strategy):
        raise TypeError(
            f"strategy must be callable (an UnmaskingStrategy or a function state -> BoolTensor[B, L]); got "
            f"{type(strategy).__name__}. Pass e.g. strategy=hf_unmask.strategies.TopKConfidence()."
        )
    return strategy
