"""Random unmasking orders: LLaDA's `remasking='random'` and Dream's `alg='origin'`."""

from __future__ import annotations

from typing import Optional

import torch

from ..generation.state import DenoisingState
from ._utils import block_steps, check_number, check_steps, uniform_like
from .base import UnmaskingStrategy
from .fixed_count import FixedCountStrategy


class RandomTopK(FixedCountStrategy):
    """Unmask the scheduled number of eligible positions, chosen uniformly at random (LLaDA `remasking='random'`).

    The count per step follows LLaDA's schedule (`steps` split evenly over the blocks, each block's masked count
    split evenly over its steps, remainder first). Every step draws one uniform score per position, `[B, L]`, from
    the generation's `torch.Generator` (pass `generator=` or `seed=` to `generate` for reproducible runs) and takes
    the top-k eligible scores, which is a uniformly random k-subset of the eligible positions.

    Args:
        steps: total denoising steps (split over blocks as LLaDA does); defaults to the generation config's
            `steps`, else one token per step.

    Example:
        ```python
        >>> from hf_unmask.strategies import RandomTopK
        >>> RandomTopK(steps=32)
        RandomTopK(steps=32)
        ```
    """

    deterministic = False

    name = "random"

    def score(self, state: DenoisingState) -> torch.Tensor:
        return uniform_like(state)


class RandomTimeGrid(UnmaskingStrategy):
    """Unmask each eligible position independently with probability `1 - s/t` on a linear time grid (Dream `origin`).

    Each block gets `steps_per_block` steps (`steps` split evenly over the blocks) and the time grid
    `t = linspace(1, eps, steps_per_block + 1)`. At block step `i` every eligible position is unmasked with
    probability `1 - t[i + 1] / t[i]`, independently, and at the last step of the block all remaining ones are.
    The count per step is therefore random (binomial), not fixed. One `[B, L]` uniform draw per step comes from the
    generation's `torch.Generator`.

    Unlike Dream, a step where a row draws nothing does not pass idle: the loop's progress fallback then unmasks
    that row's most confident eligible position (generation always ends within L forward passes).

    Args:
        steps: total denoising steps (split over blocks); defaults to the generation config's `steps`, else L.
        eps: final time of the grid, in (0, 1); Dream's default is 1e-3.

    Example:
        ```python
        >>> from hf_unmask.strategies import RandomTimeGrid
        >>> RandomTimeGrid(steps=16, eps=1e-3)
        RandomTimeGrid(steps=16, eps=0.001)
        ```
    """

    reads_only_eligible = True

    name = "random_time_grid"

    def __init__(self, steps: Optional[int] = None, eps: float = 1e-3) -> None:
        owner = type(self).__name__
        self.steps = check_steps(owner, steps)
        self.eps = check_number(
            owner, "eps", eps, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False, example="eps=1e-3"
        )

    def unmask_probability(self, block_step: int, steps_per_block: int) -> torch.Tensor:
        """Scalar float32 probability `1 - t[i + 1] / t[i]` of unmasking a position at `block_step` (1 at the end)."""
        if block_step >= steps_per_block - 1:
            return torch.tensor(1.0)
        # float32 grid, as Dream builds it, so the probabilities match the original's bit for bit
        grid = torch.linspace(1.0, self.eps, steps_per_block + 1, dtype=torch.float32)
        return 1 - grid[block_step + 1] / grid[block_step]

    def __call__(self, state: DenoisingState) -> torch.Tensor:
        probability = self.unmask_probability(state.block_step, block_steps(state, self.steps))
        draws = uniform_like(state)
        return (draws < probability.to(draws.device)) & state.eligible
