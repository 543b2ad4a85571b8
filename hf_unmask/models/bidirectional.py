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
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama.modeling_llama import LlamaRMSNorm, apply_rotary_pos_emb, eager_attention_forward

from .._warnings import warn_deprecated
from ..generation.kv_cache import DiffusionKVCache, window_of

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


class GatedMLP(nn.Module):
    """`down_proj(act(gate_proj(x)) * up_proj(x))` without biases: the feed-forward of Dream, SDAR, and of LLaDA2's
    and LLaDA-MoE's dense layers and experts (the weight names are theirs).

    Example:
        ```python
        >>> import torch
        >>> GatedMLP(hidden_size=8, intermediate_size=16, hidden_act="silu")(torch.zeros(1, 3, 8)).shape
        torch.Size([1, 3, 8])
        ```
    """

    def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)
        self.act_fn = ACT2FN[hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


def rotate(query: torch.Tensor, key: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """RoPE on `query` / `key` `[B, H, T, D]` with `cos` / `sin` `[B, T, r]`: the whole head when r = D, else only
    its first r channels (partial rotary, as LLaDA2.x and LLaDA-MoE use); the other channels pass unchanged."""
    width = cos.shape[-1]
    if width == query.shape[-1]:
        return apply_rotary_pos_emb(query, key, cos, sin)
    q_turned, k_turned = apply_rotary_pos_emb(query[..., :width], key[..., :width], cos, sin)
    return torch.cat([q_turned, query[..., width:]], dim=-1), torch.cat([k_turned, key[..., width:]], dim=-1)


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
    `create_bidirectional_mask`). The 2-D mask covers the keys: it may be longer than `inputs_embeds` when only a
    window of the sequence is fed against a cache. A 4-D mask is taken as given (boolean = keep, float = additive);
    for the eager implementation a boolean one is turned into an additive mask."""
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
    batch, queries = inputs_embeds.shape[:2]
    keys = None
    if attention_mask.shape[1] != queries:  # a window of queries against every key (cross-attention sizes)
        keys = inputs_embeds.new_empty(batch, attention_mask.shape[1], 1)
    return create_bidirectional_mask(
        config=config, inputs_embeds=inputs_embeds, attention_mask=attention_mask, encoder_hidden_states=keys
    )


def block_causal_mask(
    config: Any,
    inputs_embeds: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    query_positions: torch.Tensor,
    key_positions: torch.Tensor,
    block_length: int,
) -> torch.Tensor:
    """The block-causal attention mask of block-diffusion models (LLaDA2.x, SDAR): a query sees the keys of its
    own block and of every earlier block, never a later one, and never a padding key.

    Blocks are counted on the RoPE positions (`position // block_length`), so they are aligned to each row's first
    real token: a left-padded row gets the blocks it gets alone, and the prompt's tail shares a block with the first
    generated tokens. `block_length=1` is a causal mask. Returns `[B, 1, q, T]` in the form the configured attention
    implementation takes (boolean, or additive for "eager").

    Example:
        ```python
        >>> import torch
        >>> from types import SimpleNamespace
        >>> config = SimpleNamespace(_attn_implementation="sdpa")
        >>> positions = torch.arange(4).unsqueeze(0)
        >>> mask = block_causal_mask(config, torch.zeros(1, 4, 8), None, positions, positions, block_length=2)
        >>> mask[0, 0].int().tolist()
        [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
        ```
    """
    if isinstance(block_length, bool) or not isinstance(block_length, int) or block_length <= 0:
        raise ValueError(f"block_length must be a positive integer, got {block_length!r}.")
    query_block = torch.div(query_positions, block_length, rounding_mode="floor")
    key_block = torch.div(key_positions, block_length, rounding_mode="floor")
    keep = key_block.unsqueeze(1) <= query_block.unsqueeze(2)  # [B, q, T]
    if attention_mask is not None:
        keep = keep & attention_mask.to(keep.device).bool().unsqueeze(1)
    return bidirectional_mask(config, inputs_embeds, keep.unsqueeze(1))


def attention_inputs(
    config: Any,
    inputs_embeds: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    position_ids: Optional[torch.Tensor],
    past_key_values: Optional[DiffusionKVCache] = None,
    block_length: Optional[int] = None,
    cache_position: Optional[torch.Tensor] = None,
) -> tuple[Optional[torch.Tensor], torch.Tensor]:
    """`(attention mask, position ids)` of a forward over `inputs_embeds [B, q, C]`: the whole sequence, or, with
    `past_key_values` and `cache_position` (the q consecutive sequence positions fed), that window of it
    (`attention_mask` still covers the whole sequence; default positions are taken from the whole sequence and
    sliced).

    With `block_length` (block-diffusion models) and no 4-D mask, the mask is block-causal (`block_causal_mask`):
    the queries' blocks come from their position ids, the keys' from the positions of the whole sequence (the
    given `position_ids` for a full forward, else counted from each row's first real token)."""
    batch, queries = inputs_embeds.shape[:2]
    window = cache_window(past_key_values, cache_position, queries)
    total = queries if window is None else max(past_key_values.get_seq_length(), window[1])
    if attention_mask is not None:
        attention_mask = attention_mask.to(inputs_embeds.device)
        if attention_mask.dim() == 2 and attention_mask.shape[1] != total:
            raise ValueError(
                f"attention_mask covers {attention_mask.shape[1]} positions; it must cover the whole sequence "
                f"({total})."
            )
    sequence_positions = None
    if position_ids is None or (block_length is not None and window is not None):
        sequence_positions = default_position_ids(batch, total, inputs_embeds.device, attention_mask)
    if position_ids is None:
        position_ids = sequence_positions if window is None else sequence_positions[:, window[0] : window[1]]
    if block_length is not None and (attention_mask is None or attention_mask.dim() == 2):
        keys = position_ids if window is None else sequence_positions
        mask = block_causal_mask(config, inputs_embeds, attention_mask, position_ids, keys, block_length)
        return mask, position_ids
    return bidirectional_mask(config, inputs_embeds, attention_mask), position_ids


def cache_window(
    past_key_values: Optional[DiffusionKVCache], cache_position: Optional[torch.Tensor], length: int
) -> Optional[tuple[int, int]]:
    """`(start, end)`: the window of the sequence that a forward of `length` positions feeds against
    `past_key_values`, read from `cache_position`; None for a refresh (no cache position) or without a cache.
    Errors name the misuse: a window against a cache never refreshed, one that does not fit the positions fed or
    starts past the cached ones."""
    if past_key_values is None:
        return None
    if cache_position is None:
        cache_position = past_key_values._with_legacy_window({}).get("cache_position")  # deprecated window
    window = window_of(cache_position, length)
    if window is None:
        return None
    cached = past_key_values.get_seq_length()
    if cached == 0:
        raise RuntimeError(
            "A partial forward needs a refreshed cache: run a full forward first (without cache_position)."
        )
    # a window may end past the cached positions (a block-causal cache grows), never start past them
    if window[0] > cached:
        raise ValueError(
            f"The cache window {window} does not fit {length} fed positions of {cached} cached: it starts past the "
            "cached positions."
        )
    return window


def attend(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    attention_mask: Optional[torch.Tensor],
    dropout: float = 0.0,
    rope_in_float32: bool = False,
    past_key_values: Optional[DiffusionKVCache] = None,
    cache_position: Optional[torch.Tensor] = None,
    cache: Optional[DiffusionKVCache] = None,
) -> torch.Tensor:
    """Bidirectional multi-head attention over projected `query [B, T, H*D]`, `key`/`value [B, T, H_kv*D]`.

    Splits heads (`module.num_heads`, `module.num_key_value_heads`, `module.head_dim`), rotates queries and keys
    by `position_embeddings` (in float32 when `rope_in_float32`, as LLaDA does, else in the model's dtype, as
    Dream / Qwen2 do; only the first channels of each head when the angles are narrower than a head, see `rotate`), then runs the attention implementation named by `module.config._attn_implementation`
    (grouped-query heads are shared by the implementation). Returns `[B, T, H*D]`.

    With `past_key_values`, the keys and values of this layer (`module.layer_idx`) are stored (refresh, no
    `cache_position`) or written over the positions `cache_position`, and the queries attend to the keys of the
    whole sequence. `cache` is the deprecated name of `past_key_values`.

    `module` must also have `num_key_value_groups` and `is_causal = False` (transformers' implementations read
    them).
    """
    batch, length, _ = query.shape
    q = query.view(batch, length, module.num_heads, module.head_dim).transpose(1, 2)
    k = key.view(batch, length, module.num_key_value_heads, module.head_dim).transpose(1, 2)
    v = value.view(batch, length, module.num_key_value_heads, module.head_dim).transpose(1, 2)
    cos, sin = position_embeddings
    if rope_in_float32:
        q_rot, k_rot = rotate(q.float(), k.float(), cos.float(), sin.float())
        q, k = q_rot.to(q.dtype), k_rot.to(k.dtype)
    else:
        q, k = rotate(q, k, cos, sin)
    past_key_values = past_key_values if past_key_values is not None else cache
    if past_key_values is not None:
        k, v = past_key_values.update(k, v, module.layer_idx, {"cache_position": cache_position})
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


def run_layers(
    layers: nn.ModuleList,
    x: torch.Tensor,
    layer_inputs: tuple[Any, ...],
    norm: nn.Module,
    keep_hidden: bool,
    past_key_values: Optional[DiffusionKVCache] = None,
    cache_position: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, Optional[tuple[torch.Tensor, ...]]]:
    """Run the blocks, `x = layer(x, *layer_inputs, past_key_values=..., cache_position=...)`, then the final norm.
    Returns the normed output and, when `keep_hidden`, the hidden states in transformers' layout: the embeddings, the
    output of every block but the last, and the normed output of the last."""
    hidden_states: Optional[list[torch.Tensor]] = [] if keep_hidden else None
    for layer in layers:
        if hidden_states is not None:
            hidden_states.append(x)
        x = layer(x, *layer_inputs, past_key_values=past_key_values, cache_position=cache_position)
    x = norm(x)
    if hidden_states is not None:
        hidden_states.append(x)
    return x, tuple(hidden_states) if hidden_states is not None else None


def cache_argument(
    past_key_values: Any = None,
    cache: Any = None,
    use_cache: Optional[bool] = None,
    cache_position: Optional[torch.Tensor] = None,
) -> tuple[Optional[DiffusionKVCache], Optional[torch.Tensor]]:
    """`(the forward's DiffusionKVCache or None, the CPU positions fed or None)` from its cache arguments, in
    transformers' names (`past_key_values`, `use_cache`, `cache_position`). `cache` is the deprecated name of
    `past_key_values` (a `FutureWarning`). Autoregressive caches mean nothing to a diffusion forward and are refused
    rather than ignored, as is `use_cache=True` without a cache (a diffusion forward makes none of its own)."""
    if cache is not None:
        warn_deprecated("The forward's cache= argument", "past_key_values=")
        if not isinstance(cache, DiffusionKVCache):
            raise TypeError(
                f"cache must be a hf_unmask.DiffusionKVCache, got {type(cache).__name__}: autoregressive "
                "caches append keys, a diffusion cache rewrites a window of the sequence. Pass it as past_key_values."
            )
        if past_key_values is not None and past_key_values is not cache:
            raise ValueError("Pass the cache once, as past_key_values= (cache= is its deprecated name).")
        past_key_values = cache
    if past_key_values is None:
        if use_cache:
            raise ValueError(
                "use_cache=True is not supported without a cache: a diffusion forward makes none of its own. Pass "
                "past_key_values=hf_unmask.DiffusionKVCache() (a forward without cache_position refreshes it, one "
                "with cache_position feeds those positions against it), or let generate(..., use_cache=True) do it."
            )
        return None, None
    if not isinstance(past_key_values, DiffusionKVCache):
        raise ValueError(
            f"past_key_values= is not supported with a {type(past_key_values).__name__}: pass a "
            "hf_unmask.DiffusionKVCache (an autoregressive cache appends keys, a diffusion cache rewrites a window of "
            "the sequence)."
        )
    if use_cache is False:
        raise ValueError("use_cache=False with past_key_values: drop past_key_values to run without the cache.")
    if cache_position is None:  # the deprecated window set on the cache
        cache_position = past_key_values._with_legacy_window({}).get("cache_position")
    elif isinstance(cache_position, torch.Tensor):
        cache_position = cache_position.cpu()  # its bounds are read by every layer: no device sync per layer
    return past_key_values, cache_position
