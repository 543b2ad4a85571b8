"""Outputs of diffusion generation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from transformers.utils import ModelOutput


@dataclass
class DiffusionTrajectory(ModelOutput):
    """Per-step record of a generation, stacked over steps: what a learned policy is trained on.

    Every tensor has a leading step axis T (the number of forward passes of the longest row).
    `live[t, b]` is False for steps in which row b did not count a forward pass (its block was
    already done, or it stopped at EOS); those entries must be ignored by a loss.

    Attributes:
        confidence: `[T, B, L]` float32, dLLM confidence of the proposed token.
        masked: `[T, B, L]` bool, masked positions before the step.
        eligible: `[T, B, L]` bool, positions the strategy was allowed to pick.
        time: `[T, B]` float32, steps used so far / L at that step.
        action: `[T, B, L]` bool, the strategy's own selection (restricted to eligible positions), before
            any fallback or forced completion.
        unmasked: `[T, B, L]` bool, what the loop actually unmasked (action + fallback / forced positions).
        live: `[T, B]` bool, rows that counted a forward pass at that step.
        block: `[T]` long, block index of each step.
        log_prob: `[T, B]` float32, log-probability of `action` reported by the strategy, when it reports one.
        hidden_states: `[T, B, L, H]`, only for strategies that read hidden states.
    """

    confidence: Optional[torch.Tensor] = None
    masked: Optional[torch.Tensor] = None
    eligible: Optional[torch.Tensor] = None
    time: Optional[torch.Tensor] = None
    action: Optional[torch.Tensor] = None
    unmasked: Optional[torch.Tensor] = None
    live: Optional[torch.Tensor] = None
    block: Optional[torch.Tensor] = None
    log_prob: Optional[torch.Tensor] = None
    hidden_states: Optional[torch.Tensor] = None

    @property
    def num_steps(self) -> int:
        return 0 if self.live is None else self.live.shape[0]


@dataclass
class DiffusionGenerateOutput(ModelOutput):
    """Result of `generate(..., return_dict_in_generate=True)`.

    Attributes:
        sequences: `[B, P + L]` prompt (left-padded as given) followed by the generated tokens.
        nfe: `[B]` long, dLLM forward passes each row used.
        trajectory: a `DiffusionTrajectory` when `output_trajectory=True`.
        history: `[T + 1, B, P + L]` canvas before the first step and after every step, when `output_history=True`.
    """

    sequences: Optional[torch.LongTensor] = None
    nfe: Optional[torch.LongTensor] = None
    trajectory: Optional[DiffusionTrajectory] = None
    history: Optional[torch.LongTensor] = None
