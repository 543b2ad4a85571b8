"""Independent plain-PyTorch forwards of the published LLaDA and Dream architectures, for checking the native
classes. Written from the architecture as published (RMSNorm, SwiGLU, RoPE with the config's theta, grouped-query
attention, no causal mask; Dream's next-position logits), computed in float64 from a checkpoint's raw weights.
Shares no code with hf_unmask.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)


def _rotate(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """RoPE on x [B, H, T, D]: dimension j is paired with j + D/2 and turned by position * theta^(-2j/D)."""
    half = x.shape[-1] // 2
    freqs = theta ** (-2.0 * torch.arange(half, dtype=torch.float64) / x.shape[-1])
    angle = positions.to(torch.float64)[:, None, :, None] * freqs
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * angle.cos() - second * angle.sin(), first * angle.sin() + second * angle.cos()], -1)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: Optional[torch.Tensor]) -> torch.Tensor:
    """Bidirectional attention; q [B, H, T, D], k/v [B, H_kv, T, D]; keep [B, T] hides padding keys, a dense
    keep [B, T, T] (query x key) hides key k from query q where keep[:, q, k] is False."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if keep is not None:
        keep = keep.bool()
        keep = keep[:, None, None, :] if keep.dim() == 2 else keep[:, None]
        scores = scores.masked_fill(~keep, float("-inf"))
    return scores.softmax(-1) @ v


def _heads(x: torch.Tensor, n: int) -> torch.Tensor:
    batch, length, width = x.shape
    return x.view(batch, length, n, width // n).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    batch, heads, length, dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * dim)


def _positions(input_ids: torch.Tensor, keep: Optional[torch.Tensor]) -> torch.Tensor:
    if keep is not None and keep.dim() != 2:
        raise ValueError("A dense [B, T, T] keep-mask needs explicit positions.")
    if keep is None:
        return torch.arange(input_ids.shape[1]).expand_as(input_ids)
    return (keep.long().cumsum(-1) - 1).clamp_min(0)


def llada_logits(
    config: dict[str, Any],
    weights: dict[str, torch.Tensor],
    input_ids: torch.Tensor,
    keep: Optional[torch.Tensor] = None,
    positions: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Logits `[B, T, embedding_size]` of a LLaDA checkpoint (llama blocks, RMSNorm, silu gate, untied head).

    `keep`: a `[B, T]` padding mask or a dense `[B, T, T]` keep-mask; `positions` `[B, T]` default to the count of
    kept tokens before each one (a dense keep-mask needs them given)."""
    w = {k: v.double() for k, v in weights.items()}
    eps, heads = config["rms_norm_eps"], config["n_heads"]
    kv_heads = config["n_kv_heads"] or heads
    positions = _positions(input_ids, keep) if positions is None else positions
    x = w["model.transformer.wte.weight"][input_ids]
    for i in range(config["n_layers"]):
        p = f"model.transformer.blocks.{i}."
        h = _rms_norm(x, w[p + "attn_norm.weight"], eps)
        q = _rotate(_heads(h @ w[p + "q_proj.weight"].T, heads), positions, config["rope_theta"])
        k = _rotate(_heads(h @ w[p + "k_proj.weight"].T, kv_heads), positions, config["rope_theta"])
        v = _heads(h @ w[p + "v_proj.weight"].T, kv_heads)
        x = x + _merge(_attention(q, k, v, keep)) @ w[p + "attn_out.weight"].T
        h = _rms_norm(x, w[p + "ff_norm.weight"], eps)
        gate = h @ w[p + "ff_proj.weight"].T
        x = x + (gate * torch.sigmoid(gate) * (h @ w[p + "up_proj.weight"].T)) @ w[p + "ff_out.weight"].T
    x = _rms_norm(x, w["model.transformer.ln_f.weight"], eps)
    return x @ w["model.transformer.ff_out.weight"].T


def dream_logits(
    config: dict[str, Any],
    weights: dict[str, torch.Tensor],
    input_ids: torch.Tensor,
    keep: Optional[torch.Tensor] = None,
    positions: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Logits `[B, T, vocab]` of a Dream checkpoint as the model returns them: row i scores token i + 1.

    `keep` and `positions` as in `llada_logits`."""
    w = {k: v.double() for k, v in weights.items()}
    eps, heads, kv_heads = config["rms_norm_eps"], config["num_attention_heads"], config["num_key_value_heads"]
    positions = _positions(input_ids, keep) if positions is None else positions
    x = w["model.embed_tokens.weight"][input_ids]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."

        def project(name: str, h: torch.Tensor, n: int) -> torch.Tensor:
            return _heads(h @ w[p + f"self_attn.{name}.weight"].T + w[p + f"self_attn.{name}.bias"], n)  # noqa: B023

        h = _rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = _rotate(project("q_proj", h, heads), positions, config["rope_theta"])
        k = _rotate(project("k_proj", h, kv_heads), positions, config["rope_theta"])
        v = project("v_proj", h, kv_heads)
        x = x + _merge(_attention(q, k, v, keep)) @ w[p + "self_attn.o_proj.weight"].T
        h = _rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        x = x + (gate * torch.sigmoid(gate) * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    x = _rms_norm(x, w["model.norm.weight"], eps)
    return x @ w["lm_head.weight"].T
