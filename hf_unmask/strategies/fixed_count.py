"""Shared machinery of fixed-count strategies: LLaDA's per-block schedule and top-k selection by a score."""

from __future__ import annotations

from typing import Optional

import torch

from ..generation.schedule import num_transfer_tokens_at
from ..generation.state import DenoisingState
from ._utils import block_steps, check_steps
from .base import UnmaskingStrategy


def select_top_k(score: torch.Tensor, eligible: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Per row, select the `k[b]` eligible positions with the highest `score` (ties: lowest index first)."""
    score = torch.where(eligible, score if score.dtype == torch.float32 else score.float(), float("-inf"))
    order = score.argsort(dim=-1, descending=True, stable=True)
    take = torch.arange(score.shape[-1], device=score.device) < k.unsqueeze(-1)
    return torch.zeros_like(eligible).scatter(-1, order, take) & eligible


class FixedCountStrategy(UnmaskingStrategy):
    """Unmask a scheduled number of positions per step, the ones with the highest `score(state)`.

    The count follows LLaDA's `get_num_transfer_tokens`: `steps` (this strategy's, else the generation
    config's, else L) are split evenly over the blocks, and each block's masked count is split evenly over
    its steps, the remainder going to the first steps.
    """

    deterministic = True
    reads_only_eligible = True

    def __init__(self, steps: Optional[int] = None) -> None:
        self.steps = check_steps(type(self).__name__, steps)

    def score(self, state: DenoisingState) -> torch.Tensor:
        raise NotImplementedError

    def tokens_this_step(self, state: DenoisingState) -> torch.Tensor:
        """`[B]` number of positions to unmask at this step."""
        per_block = block_steps(state, self.steps)
        return num_transfer_tokens_at(state.block_mask_count, per_block, min(state.block_step, per_block - 1))

    def __call__(self, state: DenoisingState) -> torch.Tensor:
        return select_top_k(self.score(state), state.eligible, self.tokens_this_step(state))
