"""LLaDA's fixed-count schedule: how many tokens a fixed-K strategy unmasks at each step."""

from __future__ import annotations

import torch


def num_transfer_tokens(mask_count: torch.Tensor, steps: int) -> torch.Tensor:
    """Split each row's masked count evenly over `steps`, the remainder going to the first steps.

    Args:
        mask_count: `[B]` number of masked positions in the block when it starts.
        steps: number of steps the block gets.

    Returns:
        `[B, steps]` long tensor; row b sums to `mask_count[b]`.

    Example:
        ```python
        >>> num_transfer_tokens(torch.tensor([10]), 4).tolist()
        [[3, 3, 2, 2]]
        ```
    """
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}.")
    mask_count = mask_count.to(torch.long)
    base = mask_count // steps
    remainder = mask_count % steps
    idx = torch.arange(steps, device=mask_count.device)
    return base.unsqueeze(-1) + (idx.unsqueeze(0) < remainder.unsqueeze(-1)).to(torch.long)


def num_transfer_tokens_at(mask_count: torch.Tensor, steps: int, step: int) -> torch.Tensor:
    """Column `step` of `num_transfer_tokens(mask_count, steps)`, without building the whole schedule.

    Example:
        ```python
        >>> num_transfer_tokens_at(torch.tensor([10]), 4, 2).tolist()
        [2]
        ```
    """
    if not 0 <= step < steps:
        raise ValueError(f"step must be in [0, steps) = [0, {steps}), got {step}.")
    # q + (step < r) for mask_count = q * steps + r, in one division: floor((mask_count + steps - 1 - step) / steps)
    mask_count = mask_count if mask_count.dtype == torch.long else mask_count.long()
    return torch.div(mask_count + (steps - 1 - step), steps, rounding_mode="floor")


def steps_per_block(total_steps: int, num_blocks: int) -> int:
    """Steps each block gets when `total_steps` are split evenly over `num_blocks` blocks."""
    if total_steps % num_blocks != 0:
        raise ValueError(
            f"steps={total_steps} is not a multiple of the number of blocks ({num_blocks}). "
            f"Use a multiple, e.g. steps={max(num_blocks, total_steps // num_blocks * num_blocks)}."
        )
    return total_steps // num_blocks
