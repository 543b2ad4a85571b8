"""An independent plain-PyTorch forward of the published LLaDA-MoE architecture, for checking the native class.

Written from the architecture as published: pre-norm RMSNorm blocks; attention with q/k/v/o projections (optional
biases), per-head RMSNorm of queries and keys, optional clipping of q/k/v, RoPE on the leading
`partial_rotary_factor` of each head (dimension j paired with j + R/2), grouped-query heads, no causal mask, padding
keys hidden; then a dense SwiGLU layer or a mixture of SwiGLU experts routed by softmax over all experts plus the
expert bias, top-k scores as weights (never renormalised), plus an always-on shared expert; aligned logits. Computed
in float64 from a checkpoint's raw weights, eagerly, every expert run on every token and weighted by a dense
routing matrix (zero where not chosen). Shares no code with hf_unmask.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)


def _linear(x: torch.Tensor, w: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    out = x @ w[name + ".weight"].T
    return out + w[name + ".bias"] if name + ".bias" in w else out


def _rotate(x: torch.Tensor, positions: torch.Tensor, theta: float, rotary: int) -> torch.Tensor:
    """RoPE on the first `rotary` dims of x [B, H, T, D]: dim j (< rotary/2) is paired with j + rotary/2 and turned
    by position * theta^(-2j/rotary); the remaining dims pass unchanged."""
    half = rotary // 2
    freqs = theta ** (-2.0 * torch.arange(half, dtype=torch.float64) / rotary)
    angle = positions.to(torch.float64)[:, None, :, None] * freqs
    first, second, rest = x[..., :half], x[..., half:rotary], x[..., rotary:]
    turned = [first * angle.cos() - second * angle.sin(), first * angle.sin() + second * angle.cos()]
    return torch.cat([*turned, rest], -1)


def _positions(input_ids: torch.Tensor, keep: Optional[torch.Tensor]) -> torch.Tensor:
    if keep is None:
        return torch.arange(input_ids.shape[1]).expand_as(input_ids)
    return (keep.long().cumsum(-1) - 1).clamp_min(0)


def _swiglu(x: torch.Tensor, w: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    gate = x @ w[prefix + ".gate_proj.weight"].T
    return (gate * torch.sigmoid(gate) * (x @ w[prefix + ".up_proj.weight"].T)) @ w[prefix + ".down_proj.weight"].T


def routing(config: dict[str, Any], weights: dict[str, torch.Tensor], layer: int, x: torch.Tensor) -> torch.Tensor:
    """Dense routing weights `[..., num_experts]` of the normed tokens `x` at MoE layer `layer` (zero for experts
    not among a token's top k)."""
    w = {k: v.double() for k, v in weights.items() if k.startswith(f"model.layers.{layer}.mlp.")}
    prefix = f"model.layers.{layer}.mlp."
    scores = torch.softmax(x.double() @ w[prefix + "gate.weight"].T, dim=-1)
    if prefix + "expert_bias" in w:
        scores = scores + w[prefix + "expert_bias"]
    top, chosen = scores.topk(config["num_experts_per_tok"], dim=-1)
    return torch.zeros_like(scores).scatter(-1, chosen, top)


def llada_moe_logits(
    config: dict[str, Any],
    weights: dict[str, torch.Tensor],
    input_ids: torch.Tensor,
    keep: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Logits `[B, T, vocab_size]` of a LLaDA-MoE checkpoint (`config` as in its config.json)."""
    w = {k: v.double() for k, v in weights.items()}
    eps, heads, kv_heads = config["rms_norm_eps"], config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config["hidden_size"] // heads
    rotary = int(head_dim * config.get("partial_rotary_factor", 1.0))
    clip = config.get("clip_qkv")
    positions = _positions(input_ids, keep)
    batch, length = input_ids.shape
    x = w["model.embed_tokens.weight"][input_ids]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = _rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = _linear(h, w, p + "self_attn.q_proj").view(batch, length, heads, head_dim)
        k = _linear(h, w, p + "self_attn.k_proj").view(batch, length, kv_heads, head_dim)
        v = _linear(h, w, p + "self_attn.v_proj").view(batch, length, kv_heads, head_dim)
        if config["qk_layernorm"]:
            q = _rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = _rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        if clip is not None:
            q, k, v = q.clamp(-clip, clip), k.clamp(-clip, clip), v.clamp(-clip, clip)
        q = _rotate(q.transpose(1, 2), positions, config["rope_theta"], rotary)
        k = _rotate(k.transpose(1, 2), positions, config["rope_theta"], rotary)
        v = v.transpose(1, 2)
        groups = heads // kv_heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
        if keep is not None:
            scores = scores.masked_fill(~keep.bool()[:, None, None, :], float("-inf"))
        attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, heads * head_dim)
        x = x + _linear(attended, w, p + "self_attn.o_proj")
        h = _rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        if config["moe_layer_freq"][i] == 0:
            x = x + _swiglu(h, w, p + "mlp")
            continue
        route = routing(config, weights, i, h)
        out = torch.zeros_like(h)
        for e in range(config["num_experts"]):
            out = out + route[..., e : e + 1] * _swiglu(h, w, f"{p}mlp.experts.{e}")
        if config.get("shared_expert_intermediate_size") is not None:
            out = out + _swiglu(h, w, p + "shared_expert")
        x = x + out
    x = _rms_norm(x, w["model.norm.weight"], eps)
    return x @ w["lm_head.weight"].T
