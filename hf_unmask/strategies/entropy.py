"""Top-k (negative) entropy: Dream's `alg='entropy'` with LLaDA's fixed-count schedule."""

from __future__ import annotations

import torch

from ..generation.state import DenoisingState
from ._utils import block_entropy
from .fixed_count import FixedCountStrategy


class TopKEntropy(FixedCountStrategy):
    """Unmask the scheduled number of eligible positions whose predictive distribution has the lowest entropy.

    The score is the negative Shannon entropy (nats) of the softmax of the processed logits, so the most certain
    positions, over the whole vocabulary and not just the proposed token, go first. The count per step follows
    LLaDA's schedule.

    Args:
        steps: total denoising steps (split over blocks as LLaDA does); defaults to the generation config's
            `steps`, else one token per step.

    Example:
        ```python
        >>> from hf_unmask.strategies import TopKEntropy
        >>> TopKEntropy(steps=64)
        TopKEntropy(steps=64)
        ```
    """

    name = "top_k_entropy"

    def score(self, state: DenoisingState) -> torch.Tensor:
        return -block_entropy(state)
