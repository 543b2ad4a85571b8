"""Shared machinery of fixed-count strategies: LLaDA's per-block schedule and top-k selection by a score."""

from __future__ import annotations

from typing import Optional

import torch

from ..generation.schedule import num_transfer_tokens, steps_per_block
from ..generation.state import DenoisingState
from .base import UnmaskingStrategy


def select_top_k(score: torch.Tensor, eligible: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Per row, select the `k[b]` eligible positions with the highest `score` (ties: lowest index first)."""
    score = score.float().masked_fill(~eligible, float("-inf"))
    order = score.argsort(dim=-1, descending=True, stable=True)
    take = torch.arange(score.shape[-1], device=score.device).unsqueeze(0) < k.clamp_max(score.shape[-1]).unsqueeze(-1)
    return torch.zeros_like(eligible).scatter(-1, order, take) & eligible


class FixedCountStrategy(UnmaskingStrategy):
    """Unmask a scheduled number of positions per step, the ones with the highest `score(state)`.

    The count follows LLaDA's `get_num_transfer_tokens`: `steps` (this strategy's, else the generation
    config's, else L) are split evenly over the blocks, and each block's masked count is split evenly over
    its steps, the remainder going to the first steps.
    """

    def __init__(self, steps: Optional[int] = None) -> None:
        self.steps = steps

    def score(self, state: DenoisingState) -> torch.Tensor:
        raise NotImplementedError

    def tokens_this_step(self, state: DenoisingState) -> torch.Tensor:
        """`[B]` number of positions to unmask at this step."""
        total = self.steps if self.steps is not None else state.config.steps
        if total is None:
            total = state.gen_length
        per_block = steps_per_block(total, state.config.num_blocks)
        block_len = state.block_end - state.block_start
        if per_block > block_len:
            raise ValueError(
                f"steps={total} gives {per_block} steps per block but a block has only {block_len} tokens. "
                f"Use steps <= {block_len * state.config.num_blocks}."
            )
        schedule = num_transfer_tokens(state.block_mask_count, per_block)
        index = min(state.block_step, per_block - 1)
        return schedule[:, index]

    def __call__(self, state: DenoisingState) -> torch.Tensor:
        return select_top_k(self.score(state), state.eligible, self.tokens_this_step(state))
