"""What a strategy sees at one denoising step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import torch

if TYPE_CHECKING:
    from .config import DiffusionGenerationConfig


@dataclass
class DenoisingState:
    """Read-only view of one denoising step, over the L generated positions of every row.

    All `[B, L]` tensors cover the generated region only (the prompt is excluded). A strategy returns a
    boolean `[B, L]` selection; the loop intersects it with `eligible`, applies the progress fallback and
    writes `proposal` at the selected positions. A strategy must never modify these tensors: the loop checks their
    version counters after the call and raises a `ValueError` if one was written in place.

    Attributes:
        confidence: `[B, L]` float, probability of the proposed token under the (processed) dLLM distribution.
            For a strategy with `reads_only_eligible = True` under greedy decoding, only eligible positions carry
            it (0 elsewhere).
        proposal: `[B, L]` long, the token each position would take if unmasked now (under the same condition,
            the canvas token at positions that are not eligible).
        masked: `[B, L]` bool, positions still `[MASK]`.
        eligible: `[B, L]` bool, masked positions of the current block in rows that are still live.
        nfe: `[B]` long, forward passes each row has used so far, this one excluded.
        step: global step index (0-based) of this forward pass.
        block: index of the current block; `block_start`/`block_end` are its bounds in `[0, L)`.
        block_step: forward passes already spent in the current block (same for all live rows).
        block_mask_count: `[B]` long, masked positions of the current block when the block started.
        config: the `DiffusionGenerationConfig` of this call (gen length, block length, steps...).
        generator: the `torch.Generator` of this call, for strategies that draw random numbers.
        logits / probs: `[B, L, V]` processed logits of the generated region and their softmax (lazy).
        hidden_states: `[B, L, H]` last hidden states of the generated region, only when the strategy sets
            `requires_hidden_states = True`.

    Example:
        ```python
        >>> import torch
        >>> def most_confident_two(state):
        ...     score = state.confidence.masked_fill(~state.eligible, -1.0)
        ...     top = score.topk(2, dim=-1).indices
        ...     return torch.zeros_like(state.eligible).scatter(1, top, True)
        ```
    """

    confidence: torch.Tensor
    proposal: torch.Tensor
    masked: torch.Tensor
    eligible: torch.Tensor
    nfe: torch.Tensor
    step: int
    block: int
    block_start: int
    block_end: int
    block_step: int
    block_mask_count: torch.Tensor
    config: DiffusionGenerationConfig
    generator: Optional[torch.Generator] = None
    hidden_states: Optional[torch.Tensor] = None
    _logits: Optional[torch.Tensor] = field(default=None, repr=False)
    _probs: Optional[torch.Tensor] = field(default=None, repr=False)

    @property
    def gen_length(self) -> int:
        return self.confidence.shape[-1]

    @property
    def batch_size(self) -> int:
        return self.confidence.shape[0]

    @property
    def time(self) -> torch.Tensor:
        """`[B]` float: steps used so far / L (the policy's time input)."""
        return self.nfe.to(torch.float32) / self.gen_length

    @property
    def live(self) -> torch.Tensor:
        """`[B]` bool: rows that still have masked positions in the current block."""
        return self.eligible.any(dim=-1)

    @property
    def logits(self) -> torch.Tensor:
        if self._logits is None:
            raise RuntimeError("This DenoisingState was built without logits.")
        return self._logits

    @property
    def probs(self) -> torch.Tensor:
        """`[B, L, V]` float32 softmax of the processed logits, computed on first access."""
        if self._probs is None:
            self._probs = torch.softmax(self.logits.float(), dim=-1)
        return self._probs
