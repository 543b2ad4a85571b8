"""The policy as the model TRL trains, and switching it between its training and inference settings."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Optional

import torch
from torch import nn
from transformers import GenerationConfig, PretrainedConfig

__all__ = ["PolicyModel", "inference_mode_of", "policy_setting"]


class PolicyModel(nn.Module):
    """The model `GRPOTrainer` trains: the unmasking policy, plus what TRL's constructor reads from a transformers
    model: a `config` and a `generation_config` holding the tokenizer's special ids, the latter's `eos_token_id`
    listing every EOS id of the dLLM (TRL turns it into `trainer.eos_token_ids`, where completions are cut), and
    `add_model_tags`. Calling it
    runs the policy network; the optimiser sees exactly the policy's parameters.

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.strategies import ConfidencePolicy
        >>> model = PolicyModel(ConfidencePolicy(hidden_size=32, ffn_size=64), eos_token_ids=[2])
        >>> model(torch.rand(1, 8), torch.ones(1, 8, dtype=torch.bool), torch.zeros(1)).shape
        torch.Size([1, 8])
        >>> model.generation_config.eos_token_id
        [2]
        ```
    """

    def __init__(
        self,
        policy: nn.Module,
        eos_token_ids: Sequence[int],
        bos_token_id: Optional[int] = None,
        pad_token_id: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.policy = policy
        # the tokenizer's ids (its EOS first): transformers' Trainer then finds nothing to align and says nothing
        eos = list(eos_token_ids)
        ids = dict(bos_token_id=bos_token_id, pad_token_id=pad_token_id)
        self.config = PretrainedConfig(eos_token_id=eos[0] if eos else None, **ids)
        self.generation_config = GenerationConfig(eos_token_id=eos, **ids)
        self.model_tags: list[str] = []

    def forward(
        self,
        feature: torch.Tensor,
        masked: torch.Tensor,
        time: torch.Tensor,
        padding_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """The policy's logits `[B, L]` (before temperature) for the states `(feature, masked, time)`, `feature`
        being the per-position input the policy reads (`policy.network_inputs`): the dLLM's confidences `[B, L]` for
        a `ConfidencePolicy`, its last hidden states `[B, L, H]` for a `HiddenStatePolicy`, the features `[B, L, 3]`
        of a `RemaskingPolicy` (whose logits are `[B, L, 2]`: unmask, re-mask)."""
        return self.policy(feature, masked, time, padding_mask)

    def add_model_tags(self, tags: Any) -> None:
        """Record the tags TRL gives the model it trains."""
        for tag in [tags] if isinstance(tags, str) else tags:
            if tag not in self.model_tags:
                self.model_tags.append(tag)


def inference_mode_of(action_mode: str) -> str:
    """The policy's inference mode for a training action mode: DPLS stays DPLS, Bernoulli gets the argmax fallback."""
    return "dpls" if action_mode == "dpls" else "bernoulli-argmax"


@contextmanager
def policy_setting(policy: Any, mode: str, temperature: float) -> Iterator[Any]:
    """Temporarily set the policy's action mode and temperature (sampling vs inference settings)."""
    saved = (policy.mode, policy.temperature)
    policy.mode, policy.temperature = mode, float(temperature)
    try:
        yield policy
    finally:
        policy.mode, policy.temperature = saved
