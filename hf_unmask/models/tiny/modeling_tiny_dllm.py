"""`TinyDLLMForMaskedDiffusion`: a small bidirectional transformer (pre-LN, RoPE) for masked diffusion."""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import MaskedLMOutput

from ...generation.kv_cache import DiffusionKVCache, window_of
from ...generation.mixin import DiffusionGenerationMixin
from ..bidirectional import RotaryEmbedding, attend, attention_inputs, cache_argument, run_layers
from .configuration_tiny_dllm import TinyDLLMConfig


class TinyDLLMAttention(nn.Module):
    """Bidirectional multi-head self-attention with rotary embeddings (one fused `qkv` projection)."""

    is_causal = False

    def __init__(self, config: TinyDLLMConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = self.num_key_value_heads = config.num_attention_heads
        self.num_key_value_groups = 1
        self.head_dim = config.head_dim
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self,
        x: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: Optional[torch.Tensor],
        past_key_values: Optional[DiffusionKVCache] = None,
        cache_position: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        attended = attend(
            self, q, k, v, position_embeddings, attention_mask,
            past_key_values=past_key_values, cache_position=cache_position,
        )  # fmt: skip
        return self.out(attended)


class TinyDLLMLocalMixer(nn.Module):
    """Depthwise convolution over a small centred window (a bidirectional "token shift"): each position sees its
    neighbours' features before attention, so keys can carry their context (smeared keys). Padding is zeroed
    first, so a left-padded row computes exactly what it computes alone. Fed against a cache (`cache_position`: the
    positions fed), the inputs of the positions around them come from the cache. With `segments` (`[B, T]` long), each segment id's positions
    are convolved on their own (the others read as zeros; id 0 is padding): the verification forward's shadow block
    never mixes with the canvas."""

    def __init__(self, config: TinyDLLMConfig, layer_idx: int = 0) -> None:
        super().__init__()
        k = config.conv_kernel_size
        self.layer_idx = layer_idx
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.conv = nn.Conv1d(config.hidden_size, config.hidden_size, k, padding=k // 2, groups=config.hidden_size)

    def forward(
        self,
        x: torch.Tensor,
        token_mask: Optional[torch.Tensor],
        past_key_values: Optional[DiffusionKVCache] = None,
        segments: Optional[torch.Tensor] = None,
        cache_position: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        h = self.norm(x)
        if token_mask is not None:
            h = h * token_mask
        if segments is not None:
            if past_key_values is not None:
                raise ValueError("local_segments cannot be combined with a cache.")
            out = torch.zeros_like(h)
            for segment in segments.unique().tolist():
                if segment != 0:
                    inside = (segments == segment).unsqueeze(-1).to(h.dtype)
                    out = out + self.conv((h * inside).transpose(1, 2)).transpose(1, 2) * inside
            return out
        window = window_of(cache_position) if past_key_values is not None else None
        if window is None:
            if past_key_values is not None:
                past_key_values.update_state("mixer", self.layer_idx, h)
            return self.conv(h.transpose(1, 2)).transpose(1, 2)
        # the window's outputs need `half` inputs on each side: read them from the cached sequence
        half = self.conv.padding[0]
        start, end = window
        full = F.pad(past_key_values.update_state("mixer", self.layer_idx, h, cache_position), (0, 0, half, half))
        context = full[:, start : end + 2 * half].transpose(1, 2)
        return F.conv1d(context, self.conv.weight, self.conv.bias, groups=self.conv.groups).transpose(1, 2)


class TinyDLLMBlock(GradientCheckpointingLayer):
    """Pre-LayerNorm transformer block: (optional local mixer,) attention, then a GELU feed-forward layer, all
    residual."""

    def __init__(self, config: TinyDLLMConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.mixer = TinyDLLMLocalMixer(config, layer_idx) if config.conv_kernel_size > 0 else None
        self.attn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attn = TinyDLLMAttention(config, layer_idx)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden_size, config.intermediate_size),
            nn.GELU(),
            nn.Linear(config.intermediate_size, config.hidden_size),
        )

    def forward(
        self,
        x: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: Optional[torch.Tensor],
        token_mask: Optional[torch.Tensor] = None,
        segments: Optional[torch.Tensor] = None,
        past_key_values: Optional[DiffusionKVCache] = None,
        cache_position: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        if self.mixer is not None:
            x = x + self.mixer(x, token_mask, past_key_values, segments, cache_position)
        x = x + self.attn(self.attn_norm(x), position_embeddings, attention_mask, past_key_values, cache_position)
        return x + self.mlp(self.mlp_norm(x))


class TinyDLLMPreTrainedModel(PreTrainedModel):
    config_class = TinyDLLMConfig
    config: TinyDLLMConfig
    base_model_prefix = "tiny_dllm"
    _no_split_modules = ["TinyDLLMBlock"]
    _supports_sdpa = True
    #: takes a `DiffusionKVCache` as `past_key_values` (`generate(..., use_cache=True)`)
    supports_diffusion_cache = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    supports_gradient_checkpointing = True

    @property
    def diffusion_cache_margin(self) -> int:
        """Positions on each side of a cached step's window that must be recomputed with it: the local mixer reads
        `conv_kernel_size // 2` neighbours (0 without a mixer: the config allows only 0 or an odd width), so their
        keys and values change as soon as the window's tokens do."""
        return self.config.conv_kernel_size // 2


class TinyDLLMForMaskedDiffusion(DiffusionGenerationMixin, TinyDLLMPreTrainedModel):
    """The built-in masked diffusion LM: `logits[:, i]` predict token i from the whole (partly masked) sequence.

    `generate(input_ids, strategy=...)` is diffusion generation (see `DiffusionGenerationMixin`). Padded batches
    take an `attention_mask`; position ids are then counted from each row's first real token.

    Example:
        ```python
        >>> import hf_unmask
        >>> model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
        >>> prompt = "trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6"
        >>> ids = tokenizer(prompt, return_tensors="pt").input_ids
        >>> out = model.generate(ids, max_new_tokens=16, block_length=8)
        >>> tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        '7 1 2 4 6 4 ; answer : 4'
        ```
    """

    def __init__(self, config: TinyDLLMConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([TinyDLLMBlock(config, i) for i in range(config.num_hidden_layers)])
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        inputs_embeds: Optional[torch.Tensor] = None,
        labels: Optional[torch.LongTensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        past_key_values: Optional[DiffusionKVCache] = None,
        use_cache: Optional[bool] = None,
        cache_position: Optional[torch.Tensor] = None,
        local_segments: Optional[torch.Tensor] = None,
        cache: Optional[DiffusionKVCache] = None,
        **kwargs: Any,
    ) -> MaskedLMOutput:
        """Run the transformer.

        Args:
            input_ids: `[B, T]` token ids (masked positions hold `config.mask_token_id`).
            attention_mask: `[B, T]` 1 for real tokens, 0 for padding (padding keys are never attended to).
            position_ids: `[B, T]` RoPE positions; default: counted from each row's first real token.
            labels: `[B, T]` optional targets (-100 = ignored) for a plain cross-entropy `loss`.
            output_hidden_states: also return the embeddings and the output of every block.
            past_key_values: a `DiffusionKVCache`: refreshed by this forward, or, with `cache_position`, `input_ids`
                are those positions of the sequence (`attention_mask` still covers the whole sequence).
            use_cache: `True` needs `past_key_values`; `False` refuses one (a diffusion forward makes no cache).
            cache_position: `[q]` the consecutive sequence positions fed against `past_key_values`, e.g.
                `torch.arange(start, end)` (none: a refresh over the whole sequence).
            local_segments: `[B, T]` long segment ids for the local mixer: it convolves each segment on its own,
                zero-padded at its borders, and zeroes id 0 (padding). The verification forward passes it (canvas 1,
                shadow block 2, padding 0) with a 4-D `attention_mask`; default: one segment, padding from a 2-D mask.
            cache: deprecated name of `past_key_values`.
        """
        past_key_values, cache_position = cache_argument(past_key_values, cache, use_cache, cache_position)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        mask, position_ids = attention_inputs(
            self.config, x, attention_mask, position_ids, past_key_values, cache_position=cache_position
        )
        token_mask = None
        if mask is not None and attention_mask.dim() == 2:  # padding: zero it before the local mixer
            token_mask = attention_mask.to(device=x.device, dtype=x.dtype).unsqueeze(-1)
            window = window_of(cache_position) if past_key_values is not None else None
            if window is not None:
                token_mask = token_mask[:, window[0] : window[1]]
        if local_segments is not None:
            local_segments = local_segments.to(x.device)
            token_mask = (local_segments != 0).to(x.dtype).unsqueeze(-1)
        position_embeddings = self.rotary(position_ids, x.dtype)
        layer_inputs: tuple[Any, ...] = (position_embeddings, mask, token_mask)
        if local_segments is not None:
            layer_inputs += (local_segments,)
        want_hidden = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        x, hidden_states = run_layers(
            self.layers, x, layer_inputs, self.norm, want_hidden, past_key_values, cache_position
        )
        logits = self.lm_head(x)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=hidden_states)
