"""An independent plain-PyTorch forward of the published LLaDA2.x architecture, for checking the native class.

Written from the architecture as published (RMSNorm pre-norm blocks, a fused q|k|v projection split into grouped
heads, per-head RMSNorm of queries and keys, RoPE on the leading `partial_rotary_factor` of each head, a dense SwiGLU
in the first `first_k_dense_replace` layers and sigmoid-routed experts with a selection bias and group-limited top-k
after, shared experts, aligned logits) and computed in float64 from a checkpoint's raw weights, one token and one
expert at a time where the package batches. The attention mask is an explicit `[B, T, T]` matrix: block-causal
blocks of `block_length` counted on the positions, or causal (`block_length=1`), padding keys hidden. Shares no code
with hf_unmask.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)


def _swiglu(h: torch.Tensor, w: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    gate = h @ w[prefix + "gate_proj.weight"].T
    return (gate * torch.sigmoid(gate) * (h @ w[prefix + "up_proj.weight"].T)) @ w[prefix + "down_proj.weight"].T


def _rope(x: torch.Tensor, positions: torch.Tensor, rotary: int, theta: float) -> torch.Tensor:
    """x [B, H, T, D]: channel j < rotary/2 turns with channel j + rotary/2 by position * theta^(-2j/rotary)."""
    half = rotary // 2
    freqs = 1.0 / theta ** (torch.arange(0, rotary, 2, dtype=torch.float64) / rotary)
    angle = positions.to(torch.float64)[:, None, :, None] * freqs
    a, b, rest = x[..., :half], x[..., half:rotary], x[..., rotary:]
    return torch.cat([a * angle.cos() - b * angle.sin(), b * angle.cos() + a * angle.sin(), rest], dim=-1)


def visibility(positions: torch.Tensor, keep: Optional[torch.Tensor], block_length: int) -> torch.Tensor:
    """`[B, T, T]` booleans, query i sees key j: j's block (position // block_length) is not after i's, j is real."""
    blocks = torch.div(positions, block_length, rounding_mode="floor")
    seen = blocks[:, None, :] <= blocks[:, :, None]
    if keep is not None:
        seen = seen & keep.bool()[:, None, :]
    return seen


def route(
    config: dict[str, Any], gate_weight: torch.Tensor, bias: torch.Tensor, h: torch.Tensor, group_limited: bool = True
) -> tuple[list[list[int]], list[list[float]]]:
    """Per token of `h [N, C]`: the chosen expert ids and their weights, token by token. `group_limited=False` (for
    tests) picks the best biased scores among all experts."""
    experts, groups = config["num_experts"], config["n_group"]
    per_group, top_k = experts // groups, config["num_experts_per_tok"]
    scores = torch.sigmoid(h @ gate_weight.T)
    chosen_all, weights_all = [], []
    for s in scores:
        biased = (s + bias).tolist()
        allowed = list(range(experts))
        if group_limited:
            strength = []
            for g in range(groups):
                members = sorted(biased[g * per_group : (g + 1) * per_group], reverse=True)
                strength.append(members[0] + members[1])
            kept = sorted(range(groups), key=lambda g: -strength[g])[: config["topk_group"]]  # noqa: B023
            allowed = [e for e in allowed if e // per_group in kept]
        chosen = sorted(allowed, key=lambda e: -biased[e])[:top_k]  # noqa: B023
        raw = [float(s[e]) for e in chosen]
        total = sum(raw) + 1e-20 if top_k > 1 else 1.0
        chosen_all.append(chosen)
        weights_all.append([r / total * config["routed_scaling_factor"] for r in raw])
    return chosen_all, weights_all


def _moe(config: dict[str, Any], w: dict[str, torch.Tensor], prefix: str, h: torch.Tensor, trace: Any) -> torch.Tensor:
    flat = h.reshape(-1, h.shape[-1])
    chosen, weights = route(config, w[prefix + "gate.weight"], w[prefix + "gate.expert_bias"], flat)
    if trace is not None:
        trace.append((prefix, flat.clone(), chosen))
    out = torch.zeros_like(flat)
    for e in range(config["num_experts"]):
        for t, (ids, ws) in enumerate(zip(chosen, weights)):
            if e in ids:
                out[t] += ws[ids.index(e)] * _swiglu(flat[t], w, f"{prefix}experts.{e}.")
    if config.get("num_shared_experts"):
        out = out + _swiglu(flat, w, prefix + "shared_experts.")
    return out.view_as(h)


def llada2_logits(
    config: dict[str, Any],
    weights: dict[str, torch.Tensor],
    input_ids: torch.Tensor,
    keep: Optional[torch.Tensor] = None,
    block_length: int = 32,
    positions: Optional[torch.Tensor] = None,
    trace: Optional[list] = None,
) -> torch.Tensor:
    """Logits `[B, T, vocab]` (row i scores token i) of a LLaDA2.x checkpoint in float64. Positions default to
    `0..T-1`, or counted from each row's first real token when `keep` (1 = token, 0 = padding) is given. `trace`, a
    list, receives `(layer prefix, router input [N, C], chosen experts)` for every MoE layer."""
    w = {k: v.double() for k, v in weights.items()}
    eps = config["rms_norm_eps"]
    heads, kv_heads, head_dim = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
    rotary = int(head_dim * config["partial_rotary_factor"])
    batch, length = input_ids.shape
    if positions is None:
        positions = torch.arange(length).expand(batch, length) if keep is None else (keep.cumsum(-1) - 1).clamp_min(0)
    seen = visibility(positions, keep, block_length)
    x = w["model.word_embeddings.weight"][input_ids]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = _rms(x, w[p + "input_layernorm.weight"], eps)
        qkv = h @ w[p + "attention.query_key_value.weight"].T
        if p + "attention.query_key_value.bias" in w:
            qkv = qkv + w[p + "attention.query_key_value.bias"]
        qkv = qkv.view(batch, length, heads + 2 * kv_heads, head_dim).permute(0, 2, 1, 3)
        q, k, v = qkv[:, :heads], qkv[:, heads : heads + kv_heads], qkv[:, heads + kv_heads :]
        q = _rms(q, w[p + "attention.query_layernorm.weight"], eps)
        k = _rms(k, w[p + "attention.key_layernorm.weight"], eps)
        q, k = _rope(q, positions, rotary, config["rope_theta"]), _rope(k, positions, rotary, config["rope_theta"])
        attended = torch.zeros(batch, heads, length, head_dim, dtype=torch.float64)
        for head in range(heads):
            kv = head // (heads // kv_heads)
            scores = q[:, head] @ k[:, kv].transpose(-1, -2) / math.sqrt(head_dim)
            scores = scores.masked_fill(~seen, float("-inf"))
            attended[:, head] = scores.softmax(-1) @ v[:, kv]
        merged = attended.permute(0, 2, 1, 3).reshape(batch, length, heads * head_dim)
        out = merged @ w[p + "attention.dense.weight"].T
        if p + "attention.dense.bias" in w:
            out = out + w[p + "attention.dense.bias"]
        x = x + out
        h = _rms(x, w[p + "post_attention_layernorm.weight"], eps)
        if i < config["first_k_dense_replace"]:
            x = x + _swiglu(h, w, p + "mlp.")
        else:
            x = x + _moe(config, w, p + "mlp.", h, trace)
    x = _rms(x, w["model.norm.weight"], eps)
    head_weight = w["model.word_embeddings.weight"] if config["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head_weight.T
