"""Token editing: the bookkeeping of a strategy that revises decided tokens of the current block.

A strategy opts in with `revises_decided_tokens = True` and returns `StrategyOutput(revision=...)`. The loop then:
keeps a revision to the decided, generated positions of the current block of the rows fed (never the prompt, never
another block); feeds a row whose block has no mask left while its last step revised something (the first such
step always runs), for at most the strategy's `max_revision_steps` steps, never for a block that was full from its
start; and counts those steps as NFE, bounded by the block's budget when `max_steps` is set.
"""

from __future__ import annotations

from typing import Any, Optional

import torch


class TokenEditing:
    """Per-call state of token editing (None for a strategy that does not revise: see `for_strategy`).

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.strategies import LLaDA21Decoder
        >>> editing = TokenEditing.for_strategy(LLaDA21Decoder(max_post_steps=2))
        >>> editing.start_block(batch=2, device=torch.device("cpu"))
        >>> editing.rows_editing(remaining=torch.tensor([0, 3]), block_mask_count=torch.tensor([4, 4])).tolist()
        [True, False]
        ```
    """

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.steps: Optional[torch.Tensor] = None  # [B] steps run since the row's block had no mask left
        self.revised_last: Optional[torch.Tensor] = None  # [B] the row's last step revised a token

    @classmethod
    def for_strategy(cls, strategy: Any) -> Optional[TokenEditing]:
        if not getattr(strategy, "revises_decided_tokens", False):
            return None
        if getattr(strategy, "reads_only_eligible", False):
            raise ValueError(
                f"{type(strategy).__name__} sets both revises_decided_tokens and reads_only_eligible: a strategy that "
                "revises decided tokens reads their confidence and proposal, which reads_only_eligible leaves out. "
                "Set reads_only_eligible = False on it."
            )
        return cls(int(getattr(strategy, "max_revision_steps", 0)))

    def start_block(self, batch: int, device: torch.device) -> None:
        self.steps = torch.zeros(batch, dtype=torch.long, device=device)
        self.revised_last = torch.zeros(batch, dtype=torch.bool, device=device)

    def rows_editing(
        self, remaining: torch.Tensor, block_mask_count: torch.Tensor, stopped: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """`[B]` bool: rows with no mask left in the block that go on editing this step."""
        editing = (remaining == 0) & (block_mask_count > 0) & (self.steps < self.bound)
        editing &= (self.steps == 0) | self.revised_last
        return editing & ~stopped if stopped is not None else editing

    @staticmethod
    def revisable(masked: torch.Tensor, in_block: Optional[torch.Tensor], live: torch.Tensor) -> torch.Tensor:
        """`[B, L]` bool: decided positions of the current block of the rows fed (`live`, `[B]`)."""
        decided = ~masked if in_block is None else ~masked & in_block
        return decided & live.unsqueeze(-1)

    def revised(
        self,
        revisable: torch.Tensor,
        revision: Optional[torch.Tensor],
        proposal: torch.Tensor,
        tokens: torch.Tensor,
        spread: Any,
        editing_step: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(revised over the rows fed, revised over the batch)`: the strategy's revision kept to revisable positions
        whose proposal differs from the token; records the step (`editing_step`, `[B]`: the rows that ran an editing
        step)."""
        revised = revisable & (proposal != tokens)
        revised = revised & revision if revision is not None else torch.zeros_like(revised)
        full = spread(revised)
        self.revised_last = full.any(-1)
        self.steps = self.steps + editing_step.long()
        return revised, full
