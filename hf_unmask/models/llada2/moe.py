"""The feed-forward blocks of LLaDA2.x: the dense SwiGLU MLP and the Mixture-of-Experts block.

Routing, as the published modeling code computes it: gate logits `hidden @ gate.weight^T` in float32,
scores `sigmoid(logits)`; the selection uses the scores plus the per-expert `expert_bias`: the experts are split into
`n_group` consecutive groups, each group is scored by the sum of its 2 best biased scores, the `topk_group` best
groups are kept and the `num_experts_per_tok` best biased scores among their experts are chosen. The weights of the
chosen experts are their *unbiased* scores, divided by their sum (plus 1e-20) when more than one is chosen, times
`routed_scaling_factor`. The experts run in the model's dtype; their weighted outputs are summed in float32 and cast
back, then the shared experts' output (one SwiGLU of width `moe_intermediate_size x num_shared_experts`) is added.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..bidirectional import GatedMLP
from .configuration_llada2_moe import LLaDA2MoeConfig


def gated_mlp(config: LLaDA2MoeConfig, intermediate_size: int) -> GatedMLP:
    """The dense layers' MLP, each expert and the shared one: a `GatedMLP` of width `intermediate_size`."""
    return GatedMLP(config.hidden_size, intermediate_size, config.hidden_act)


class LLaDA2MoeGate(nn.Module):
    """The router: `weight [num_experts, hidden]` and the selection bias `expert_bias [num_experts]` (a buffer in
    the checkpoint, as published). `forward(hidden [N, hidden])` returns `(expert ids [N, k], weights [N, k])`, the
    weights in float32."""

    def __init__(self, config: LLaDA2MoeConfig) -> None:
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.n_group = config.n_group
        self.topk_group = config.topk_group
        self.routed_scaling_factor = config.routed_scaling_factor
        self.weight = nn.Parameter(torch.empty(config.num_experts, config.hidden_size))
        self.register_buffer("expert_bias", torch.zeros(config.num_experts))

    def select(self, biased_scores: torch.Tensor) -> torch.Tensor:
        """Group-limited top-k: the ids `[N, k]` of the best biased scores within the best `topk_group` groups."""
        tokens, experts = biased_scores.shape
        grouped = biased_scores.view(tokens, self.n_group, experts // self.n_group)
        group_scores = grouped.topk(2, dim=-1).values.sum(dim=-1)
        kept = group_scores.topk(self.topk_group, dim=-1, sorted=False).indices
        group_keep = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, kept, True)
        expert_keep = group_keep.unsqueeze(-1).expand_as(grouped).reshape(tokens, experts)
        candidates = biased_scores.masked_fill(~expert_keep, float("-inf"))
        return candidates.topk(self.top_k, dim=-1).indices

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.sigmoid(F.linear(hidden.float(), self.weight.float()))
        chosen = self.select(scores + self.expert_bias)
        weights = scores.gather(1, chosen)
        if self.top_k > 1:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return chosen, weights * self.routed_scaling_factor


class LLaDA2MoeSparseMoeBlock(nn.Module):
    """`gate`, `experts.{e}` and `shared_experts` (the checkpoint's names): routed experts plus shared ones."""

    def __init__(self, config: LLaDA2MoeConfig) -> None:
        super().__init__()
        self.gate = LLaDA2MoeGate(config)
        self.experts = nn.ModuleList(
            gated_mlp(config, config.moe_intermediate_size) for _ in range(config.num_experts)
        )
        # The published code builds the shared MLP whenever num_shared_experts is not None; with 0 it has no width
        # and adds exactly zero, so 0 and None both mean "no shared experts" here.
        self.shared_experts = (
            gated_mlp(config, config.moe_intermediate_size * config.num_shared_experts)
            if config.num_shared_experts
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        chosen, weights = self.gate(flat)
        slots = chosen.shape[1]
        expert_of_slot = chosen.flatten()
        order = torch.argsort(expert_of_slot, stable=True)
        token_of_slot = order // slots
        weight_of_slot = weights.flatten()[order].unsqueeze(-1)
        counts = torch.bincount(expert_of_slot, minlength=len(self.experts)).tolist()
        combined = torch.zeros(flat.shape, dtype=torch.float32, device=flat.device)
        start = 0
        for expert, count in zip(self.experts, counts):
            if count:
                tokens = token_of_slot[start : start + count]
                out = expert(flat[tokens]).float() * weight_of_slot[start : start + count]
                combined.index_add_(0, tokens, out)
                start += count
        y = combined.to(x.dtype).view_as(x)
        if self.shared_experts is not None:
            y = y + self.shared_experts(x)
        return y
