"""Fast-dLLM's adaptive parallel decoding rules: confidence threshold and the factor rule."""

from __future__ import annotations

import torch

from ..generation.state import DenoisingState
from ._utils import check_number
from .base import UnmaskingStrategy


def _most_confident(state: DenoisingState) -> torch.Tensor:
    """`[B, L]` bool: the most confident eligible position of each live row (lowest index on ties)."""
    score = state.confidence.float().masked_fill(~state.eligible, float("-inf"))
    top = score.argmax(dim=-1, keepdim=True)
    return torch.zeros_like(state.eligible).scatter(-1, top, True) & state.eligible


class ConfidenceThreshold(UnmaskingStrategy):
    """Unmask every eligible position whose confidence reaches `threshold`, and always the most confident one
    (Fast-dLLM's threshold rule).

    The number of positions per step is adaptive, so the generation config's `steps` is ignored: easy stretches
    are filled in parallel, hard ones one token at a time. A position is accepted when its confidence (probability
    of the proposed token) is `>= threshold`, as in Fast-dLLM's code (which drops the ranked candidates below it).

    Args:
        threshold: confidence in [0, 1] above which a position is unmasked (Fast-dLLM's default is 0.9).

    Example:
        ```python
        >>> from hf_unmask.strategies import ConfidenceThreshold
        >>> ConfidenceThreshold(threshold=0.9)
        ConfidenceThreshold(threshold=0.9)
        ```
    """

    deterministic = True
    reads_only_eligible = True

    name = "confidence_threshold"

    def __init__(self, threshold: float = 0.9) -> None:
        self.threshold = check_number(
            type(self).__name__, "threshold", threshold, low=0.0, high=1.0, example="threshold=0.9"
        )

    def __call__(self, state: DenoisingState) -> torch.Tensor:
        # compared in float64, as Fast-dLLM does, so 0.9 means 0.9 and not float32(0.9) = 0.89999998
        confident = state.eligible & (state.confidence.double() >= self.threshold)
        return confident | _most_confident(state)


class ConfidenceFactor(UnmaskingStrategy):
    """Fast-dLLM's factor rule: the more tokens decoded in parallel, the more confident each must be.

    Sort the eligible confidences of a row in descending order; the rank-r entry (r = 1, 2, ...) passes when its
    confidence is `>= 1 - factor / (r + 1)`. The largest prefix of passing entries is unmasked, and the top one
    always is. Adaptive: the generation config's `steps` is ignored.

    Fast-dLLM's own loop (`get_transfer_index_dynamic`) also accepts the last-ranked entry whenever every entry
    before it passed, even if it fails its own threshold; this class implements the rule as stated above.

    Args:
        factor: larger values accept more tokens per step; must be > 0 (Fast-dLLM's examples use 1.0).

    Example:
        ```python
        >>> from hf_unmask.strategies import ConfidenceFactor
        >>> ConfidenceFactor(factor=1.0)
        ConfidenceFactor(factor=1.0)
        ```
    """

    deterministic = True
    reads_only_eligible = True

    name = "confidence_factor"

    def __init__(self, factor: float = 1.0) -> None:
        self.factor = check_number(
            type(self).__name__, "factor", factor, low=0.0, low_inclusive=False, example="factor=1.0"
        )

    def __call__(self, state: DenoisingState) -> torch.Tensor:
        eligible = state.eligible
        score = state.confidence.double().masked_fill(~eligible, float("-inf"))
        ranked, order = score.sort(dim=-1, descending=True, stable=True)
        rank = torch.arange(1, score.shape[-1] + 1, device=score.device, dtype=torch.float64)
        passes = ranked >= 1.0 - self.factor / (rank + 1.0)  # ineligible entries are -inf and fail
        passes[:, 0] = True  # the most confident position is always accepted
        count = passes.long().cumprod(dim=-1).sum(dim=-1, keepdim=True)
        take = rank.unsqueeze(0) <= count
        return torch.zeros_like(eligible).scatter(-1, order, take) & eligible
