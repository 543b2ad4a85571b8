"""Top-k confidence: LLaDA's `low_confidence` remasking, Dream's `maskgit_plus`."""

from __future__ import annotations

import torch

from ..generation.state import DenoisingState
from .fixed_count import FixedCountStrategy


class TopKConfidence(FixedCountStrategy):
    """Unmask the scheduled number of eligible positions whose proposed token is most probable.

    Args:
        steps: total denoising steps (split over blocks as LLaDA does); defaults to the generation config's
            `steps`, else one token per step.

    Example:
        ```python
        >>> from hf_unmask.strategies import TopKConfidence
        >>> strategy = TopKConfidence(steps=64)
        >>> strategy
        TopKConfidence(steps=64)
        ```
    """

    name = "top_k_confidence"

    def score(self, state: DenoisingState) -> torch.Tensor:
        return state.confidence
