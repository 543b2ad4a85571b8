"""The building blocks every transformer in hf_unmask is made of (the built-in tiny dLLM, LLaDA, Dream).

A masked diffusion LM is a transformer whose attention is bidirectional: every position sees every real token,
only padding keys are hidden. The pieces come from transformers wherever it has them (the attention interface,
so `attn_implementation="sdpa" | "eager" | "flash_attention_2" | "flex_attention"` all work; its bidirectional
padding mask; its rotary application and RMSNorm); what is ours is the wiring that each family shares: rotary
angles computed on the fly for any length, and one attention call that turns projected queries, keys and values
into the attended output.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama.modeling_llama import LlamaRMSNorm, apply_rotary_pos_emb, eager_attention_forward

#: Root-mean-square LayerNorm: `weight * x / sqrt(mean(x^2) + eps)` with the statistics in float32 (LLaDA's
#: `RMSLayerNorm` and Dream's `DreamRMSNorm` compute exactly this).
RMSNorm = LlamaRMSNorm


class RotaryEmbedding(nn.Module):
    """Rotary position embedding angles for any positions (no table, so a model runs at any length).

    `forward(position_ids [B, T], dtype)` returns `(cos, sin)` of shape `[B, T, head_dim]`, computed in float32
    (inverse frequencies `theta ** (-2i / head_dim)`, halves concatenated as in transformers' `rotate_half`).

    Example:
        ```python
        >>> import torch
        >>> rope = RotaryEmbedding(head_dim=4, theta=10000.0)
        >>> cos, sin = rope(torch.tensor([[0, 1]]), torch.float32)
        >>> cos.shape, cos[0, 0].tolist()
        (torch.Size([1, 2, 4]), [1.0, 1.0, 1.0, 1.0])
        ```
    """

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"Rotary embeddings need an even head dimension, got {head_dim}.")
        self.head_dim = head_dim
        self.theta = float(theta)

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        exponents = torch.arange(0, self.head_dim, 2, device=position_ids.device, dtype=torch.float32) / self.head_dim
        inv_freq = 1.0 / (self.theta**exponents)
        angles = position_ids.to(torch.float32).unsqueeze(-1) * inv_freq
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def default_position_ids(
    batch: int, length: int, device: torch.device, attention_mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """`0..T-1` per row, or, for a padded batch, positions counted from each row's first real token (so a
    left-padded row sees the same rotations as when it runs alone)."""
    if attention_mask is not None and attention_mask.dim() == 2:
        return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
    return torch.arange(length, device=device).unsqueeze(0).expand(batch, length)


def bidirectional_mask(
    config: Any, inputs_embeds: torch.Tensor, attention_mask: Optional[torch.Tensor]
) -> Optional[torch.Tensor]:
    """The attention mask in the form the configured attention implementation wants, with nothing causal in it:
    `None` when nothing is padded, else padding keys hidden from every query (transformers'
    `create_bidirectional_mask`). A 4-D mask is taken as given (boolean = keep, float = additive); for the eager
    implementation a boolean one is turned into an additive mask."""
    if attention_mask is None:
        return None
    if attention_mask.dim() == 4:
        if attention_mask.dtype == torch.bool and config._attn_implementation == "eager":
            additive = torch.zeros(attention_mask.shape, dtype=inputs_embeds.dtype, device=attention_mask.device)
            return additive.masked_fill(~attention_mask, torch.finfo(inputs_embeds.dtype).min)
        return attention_mask
    if attention_mask.dim() != 2:
        raise ValueError(
            f"attention_mask must be [batch, seq_len] (1 = token, 0 = padding) or a 4-D mask [batch, 1, seq, seq], "
            f"got shape {tuple(attention_mask.shape)}."
        )
    if bool(attention_mask.bool().all()):
        return None
    return create_bidirectional_mask(config=config, inputs_embeds=inputs_embeds, attention_mask=attention_mask)


def attend(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    attention_mask: Optional[torch.Tensor],
    dropout: float = 0.0,
    rope_in_float32: bool = False,
) -> torch.Tensor:
    """Bidirectional multi-head attention over projected `query [B, T, H*D]`, `key`/`value [B, T, H_kv*D]`.

    Splits heads (`module.num_heads`, `module.num_key_value_heads`, `module.head_dim`), rotates queries and keys
    by `position_embeddings` (in float32 when `rope_in_float32`, as LLaDA does, else in the model's dtype, as
    Dream / Qwen2 do), then runs the attention implementation named by `module.config._attn_implementation`
    (grouped-query heads are shared by the implementation). Returns `[B, T, H*D]`.

    `module` must also have `num_key_value_groups` and `is_causal = False` (transformers' implementations read
    them).
    """
    batch, length, _ = query.shape
    q = query.view(batch, length, module.num_heads, module.head_dim).transpose(1, 2)
    k = key.view(batch, length, module.num_key_value_heads, module.head_dim).transpose(1, 2)
    v = value.view(batch, length, module.num_key_value_heads, module.head_dim).transpose(1, 2)
    cos, sin = position_embeddings
    if rope_in_float32:
        q_rot, k_rot = apply_rotary_pos_emb(q.float(), k.float(), cos.float(), sin.float())
        q, k = q_rot.to(q.dtype), k_rot.to(k.dtype)
    else:
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(module.config._attn_implementation, eager_attention_forward)
    out, _ = interface(
        module,
        q,
        k,
        v,
        attention_mask,
        dropout=dropout if module.training else 0.0,
        scaling=module.head_dim**-0.5,
        is_causal=False,
    )
    return out.reshape(batch, length, -1)


def refuse_cache_arguments(kwargs: dict[str, Any]) -> None:
    """Autoregressive cache arguments mean nothing to this forward; refuse them rather than ignore them."""
    for name in ("past_key_values", "cache"):
        if kwargs.get(name) is not None:
            raise ValueError(f"{name}= is not supported by this forward: diffusion generation recomputes the canvas.")
    if kwargs.get("use_cache"):
        raise ValueError(
            "use_cache=True is not supported by this forward: diffusion generation recomputes the canvas."
        )
