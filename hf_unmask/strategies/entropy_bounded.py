"""EB-Sampler: entropy-bounded unmasking (Ben-Hamu et al., 2025)."""

from __future__ import annotations

import torch

from ..generation.state import DenoisingState
from ._utils import block_entropy, check_number
from .base import UnmaskingStrategy


class EBSampler(UnmaskingStrategy):
    """Unmask the largest set of lowest-entropy positions whose joint error bound stays within `gamma`.

    Sort the eligible positions by the entropy of their predictive distribution, lowest first, and unmask the
    largest prefix whose cumulative entropy minus its largest entropy stays `<= gamma` (the sum of entropies minus
    the max upper-bounds the mutual information between the tokens decoded together). At least one position, the
    lowest-entropy one, is always unmasked. Adaptive: the generation config's `steps` is ignored. In
    semi-autoregressive mode the set is taken within the current block.

    From "Accelerated Sampling from Masked Diffusion Models via Entropy Bounded Unmasking" (arXiv:2505.24857).

    Args:
        gamma: the entropy budget in nats, >= 0. 0 unmasks one token per step (ties aside); larger is faster.

    Example:
        ```python
        >>> from hf_unmask.strategies import EBSampler
        >>> EBSampler(gamma=0.1)
        EBSampler(gamma=0.1)
        ```
    """

    deterministic = True
    reads_only_eligible = True

    name = "eb_sampler"

    def __init__(self, gamma: float = 0.1) -> None:
        self.gamma = check_number(type(self).__name__, "gamma", gamma, low=0.0, example="gamma=0.1")

    def __call__(self, state: DenoisingState) -> torch.Tensor:
        eligible = state.eligible
        entropy = block_entropy(state).masked_fill(~eligible, float("inf"))
        ranked, order = entropy.sort(dim=-1, stable=True)
        positions = torch.arange(ranked.shape[-1], device=ranked.device).unsqueeze(0)
        valid = positions < eligible.sum(dim=-1, keepdim=True)
        ranked = ranked.masked_fill(~valid, 0.0)
        # ascending order: the running max of the prefix is its last entry
        within = (ranked.cumsum(dim=-1) - ranked <= self.gamma) & valid
        count = within.sum(dim=-1, keepdim=True).clamp_min(1)  # at least the lowest-entropy position
        take = positions < count
        return torch.zeros_like(eligible).scatter(-1, order, take) & eligible
