"""An independent plain-PyTorch forward of the published SDAR architecture (its inference path), for checking the
native class. Written from the architecture as published: Qwen3 blocks (RMSNorm; q/k/v projections with a per-head
RMSNorm of queries and keys before RoPE; grouped-query attention; SwiGLU), aligned logits, and attention that
follows an explicit `[B, T, T]` keep mask, as SDAR's own `generate.py` hands it one. Computed in float64 from a
checkpoint's raw weights; the masks are built here too. Shares no code with hf_unmask.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch


def published_generate_mask(total_length: int, block_length: int) -> torch.Tensor:
    """The `[1, T, T]` float 0/1 mask SDAR's `generate.py` passes: lower-triangular over blocks, blown up to tokens."""
    blocks = -(-total_length // block_length)
    tril = torch.tril(torch.ones(blocks, blocks))
    full = tril.repeat_interleave(block_length, dim=0).repeat_interleave(block_length, dim=1)
    return full[:total_length, :total_length].unsqueeze(0)


def block_keep(pad_keep: Optional[torch.Tensor], length: int, block_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(keep [B, T, T], positions [B, T])` of a block-causal forward: positions count each row's real tokens from 0,
    a query sees the real keys whose block (`position // block_length`) is not after its own."""
    if pad_keep is None:
        pad_keep = torch.ones(1, length, dtype=torch.bool)
    pad_keep = pad_keep.bool()
    positions = (pad_keep.long().cumsum(-1) - 1).clamp_min(0)
    block = positions // block_length
    keep = (block[:, None, :] <= block[:, :, None]) & pad_keep[:, None, :]
    return keep, positions


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * weight


def _rope(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """x [B, H, T, D]: feature j is paired with j + D/2 and turned by position * theta^(-2j/D)."""
    half = x.shape[-1] // 2
    freqs = theta ** (-2.0 * torch.arange(half, dtype=torch.float64) / x.shape[-1])
    angle = positions.to(torch.float64)[:, None, :, None] * freqs
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * angle.cos() - b * angle.sin(), b * angle.cos() + a * angle.sin()], dim=-1)


def _linear(w: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    out = x @ w[name + ".weight"].T
    return out + w[name + ".bias"] if name + ".bias" in w else out


def sdar_logits(
    config: dict[str, Any],
    weights: dict[str, torch.Tensor],
    input_ids: torch.Tensor,
    keep: Optional[torch.Tensor] = None,
    positions: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Logits `[B, T, vocab]` (row i scores token i). `keep [B or 1, T, T]` says which key each query sees (None:
    all); `positions [B or 1, T]` default `0..T-1`."""
    w = {k: v.double() for k, v in weights.items()}
    batch, length = input_ids.shape
    eps, theta = config["rms_norm_eps"], float(config["rope_theta"])
    heads, kv_heads, head_dim = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
    if positions is None:
        positions = torch.arange(length).unsqueeze(0)
    positions = positions.expand(batch, length)
    x = w["model.embed_tokens.weight"][input_ids]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}.self_attn."
        h = _rms(x, w[f"model.layers.{i}.input_layernorm.weight"], eps)
        q = _rms(_linear(w, p + "q_proj", h).view(batch, length, heads, head_dim), w[p + "q_norm.weight"], eps)
        k = _rms(_linear(w, p + "k_proj", h).view(batch, length, kv_heads, head_dim), w[p + "k_norm.weight"], eps)
        v = _linear(w, p + "v_proj", h).view(batch, length, kv_heads, head_dim).transpose(1, 2)
        q, k = _rope(q.transpose(1, 2), positions, theta), _rope(k.transpose(1, 2), positions, theta)
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
        if keep is not None:
            scores = scores.masked_fill(~keep.bool()[:, None], float("-inf"))
        attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, heads * head_dim)
        x = x + _linear(w, p + "o_proj", attended)
        h = _rms(x, w[f"model.layers.{i}.post_attention_layernorm.weight"], eps)
        mlp = f"model.layers.{i}.mlp."
        gate = h @ w[mlp + "gate_proj.weight"].T
        x = x + (gate * torch.sigmoid(gate) * (h @ w[mlp + "up_proj.weight"].T)) @ w[mlp + "down_proj.weight"].T
    x = _rms(x, w["model.norm.weight"], eps)
    head = w["lm_head.weight"] if not config["tie_word_embeddings"] else w["model.embed_tokens.weight"]
    return x @ head.T
