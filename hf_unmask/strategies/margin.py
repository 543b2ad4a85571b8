"""Top-k margin: Dream's `alg='topk_margin'` with LLaDA's fixed-count schedule."""

from __future__ import annotations

import torch

from ..generation.state import DenoisingState
from ._utils import block_margin
from .fixed_count import FixedCountStrategy


class TopKMargin(FixedCountStrategy):
    """Unmask the scheduled number of eligible positions with the largest top-1 minus top-2 probability.

    A large margin means the dLLM clearly prefers one token over the runner-up. The probabilities are the softmax of
    the processed logits (after `logits_processor`, `top_k`, `top_p`). The count per step follows LLaDA's schedule.

    Args:
        steps: total denoising steps (split over blocks as LLaDA does); defaults to the generation config's
            `steps`, else one token per step.

    Example:
        ```python
        >>> from hf_unmask.strategies import TopKMargin
        >>> TopKMargin(steps=64)
        TopKMargin(steps=64)
        ```
    """

    name = "top_k_margin"

    def score(self, state: DenoisingState) -> torch.Tensor:
        return block_margin(state)
