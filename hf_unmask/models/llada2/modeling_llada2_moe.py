"""`LLaDA2MoeModelLM`: LLaDA2.x (inclusionAI/LLaDA2.0-mini, -flash, LLaDA2.1-mini, -flash), implemented natively.

The module tree is the published checkpoints', so their sharded safetensors load as they are:

    model.word_embeddings                                   token embedding
    model.layers.{i}.input_layernorm                        RMSNorm
    model.layers.{i}.attention.query_key_value              fused q | k | v projection (bias: use_qkv_bias)
    model.layers.{i}.attention.{query,key}_layernorm        RMSNorm over each head (use_qk_norm)
    model.layers.{i}.attention.dense                        output projection (bias: use_bias)
    model.layers.{i}.post_attention_layernorm               RMSNorm
    model.layers.{i}.mlp.{gate,up,down}_proj                dense SwiGLU (layers < first_k_dense_replace)
    model.layers.{i}.mlp.gate.{weight,expert_bias}          router (the other layers, see `.moe`)
    model.layers.{i}.mlp.experts.{e}.{gate,up,down}_proj    routed experts
    model.layers.{i}.mlp.shared_experts.{gate,up,down}_proj shared experts
    model.norm                                              final RMSNorm
    lm_head                                                 output head (tied to the embedding with
                                                            tie_word_embeddings)

What the published modeling code computes and this class reproduces: pre-norm blocks; queries, keys and
values split from one projection into grouped-query heads, queries and keys RMS-normed per head, then RoPE (angles
in float32, applied in the model's dtype, `rotate_half` pairing) on the first `partial_rotary_factor` of each head;
attention scaled by `head_dim ** -0.5`; logits aligned (`logits[:, i]` predicts token i; its generate reads
`logits[:, -block_length:]` for the block it denoises) and returned in float32. Dropout: the attention dropout, in
training only (the published forward reads neither `embedding_dropout` nor `output_dropout`).

Attention is block-causal: a position sees its own block and every earlier one (blocks of `block_length` positions
counted on the position ids, i.e. from each row's first real token), never a later block nor padding. The published
generate passes that mask as a 4-D additive tensor (`log` of a 0/1 block matrix) with positions `0..T-1`; a 4-D
mask, boolean (keep) or additive, is used here as given too. The published forward turns a 2-D mask into a *causal*
one (plus padding), which `block_length=1` gives exactly; a 2-D mask or none here gets the block-causal mask of
`block_length` (default `LLADA2_TRAINED_BLOCK_LENGTH`, 32).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import MaskedLMOutput

from ...generation.kv_cache import DiffusionKVCache
from ...generation.mixin import DiffusionGenerationMixin
from ..bidirectional import RMSNorm, RotaryEmbedding, attend, attention_inputs, cache_argument, run_layers
from ..strict_loading import StrictCheckpointMixin
from .configuration_llada2_moe import LLADA2_TRAINED_BLOCK_LENGTH, LLaDA2MoeConfig
from .moe import LLaDA2MoeGate, LLaDA2MoeSparseMoeBlock, gated_mlp

__all__ = ["LLADA2_TRAINED_BLOCK_LENGTH", "LLaDA2MoeModelLM"]


class LLaDA2MoeAttention(nn.Module):
    """Grouped-query self-attention with a fused `query_key_value` projection, per-head QK RMSNorm and partial RoPE.

    The mask decides what is seen (block-causal for LLaDA2.x), so the module itself is not causal."""

    is_causal = False

    def __init__(self, config: LLaDA2MoeConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.head_dim = config.head_dim
        width = (self.num_heads + 2 * self.num_key_value_heads) * self.head_dim
        self.query_key_value = nn.Linear(config.hidden_size, width, bias=config.use_qkv_bias)
        if config.use_qk_norm:
            self.query_layernorm = RMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.key_layernorm = RMSNorm(self.head_dim, eps=config.rms_norm_eps)
        self.dense = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=config.use_bias)

    def forward(
        self,
        x: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: Optional[torch.Tensor],
        past_key_values: Optional[DiffusionKVCache] = None,
        cache_position: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        batch, length, _ = x.shape
        heads = self.query_key_value(x).view(batch, length, -1, self.head_dim)
        q, k, v = heads.split([self.num_heads, self.num_key_value_heads, self.num_key_value_heads], dim=2)
        if self.config.use_qk_norm:
            q, k = self.query_layernorm(q), self.key_layernorm(k)
        flat = lambda t: t.reshape(batch, length, -1)  # noqa: E731
        # `attend` rotates the first rotary channels of each head (partial RoPE) and handles the cache
        attended = attend(
            self, flat(q), flat(k), flat(v), position_embeddings, attention_mask,
            dropout=self.config.attention_dropout, past_key_values=past_key_values, cache_position=cache_position,
        )  # fmt: skip
        return self.dense(attended)


class LLaDA2MoeDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: `x + attention(input_layernorm(x))`, then `x + mlp(post_attention_layernorm(x))`, the MLP
    dense in the first `first_k_dense_replace` layers and a Mixture-of-Experts block after."""

    def __init__(self, config: LLaDA2MoeConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.attention = LLaDA2MoeAttention(config, layer_idx)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp: nn.Module = (
            LLaDA2MoeSparseMoeBlock(config)
            if config.is_moe_layer(layer_idx)
            else gated_mlp(config, config.intermediate_size)
        )

    def forward(
        self,
        x: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: Optional[torch.Tensor] = None,
        past_key_values: Optional[DiffusionKVCache] = None,
        cache_position: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        x = x + self.attention(
            self.input_layernorm(x), position_embeddings, attention_mask, past_key_values, cache_position
        )
        return x + self.mlp(self.post_attention_layernorm(x))


class LLaDA2MoeBody(nn.Module):
    """The transformer body, `model.*` in the checkpoint."""

    def __init__(self, config: LLaDA2MoeConfig) -> None:
        super().__init__()
        pad = config.pad_token_id
        padding_idx = pad if isinstance(pad, int) and 0 <= pad < config.vocab_size else None
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx)
        self.layers = nn.ModuleList(LLaDA2MoeDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)


class LLaDA2MoePreTrainedModel(StrictCheckpointMixin, PreTrainedModel):
    config_class = LLaDA2MoeConfig
    config: LLaDA2MoeConfig
    base_model_prefix = "model"
    _no_split_modules = ["LLaDA2MoeDecoderLayer"]
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    #: takes a `DiffusionKVCache` as `past_key_values` (`generate(..., use_cache=True)`)
    supports_diffusion_cache = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, LLaDA2MoeGate):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            init.zeros_(module.expert_bias)


class LLaDA2MoeModelLM(DiffusionGenerationMixin, LLaDA2MoePreTrainedModel):
    """LLaDA2.x (inclusionAI/LLaDA2.0-mini, -flash, LLaDA2.1-mini, -flash) with its head and a diffusion `generate`.

    Loads the published config.json and sharded safetensors without executing any file of the checkpoint
    (transformers' `AutoModel` resolves `model_type="llada2_moe"` to this class once hf_unmask is imported).
    `forward` takes `input_ids` (or `inputs_embeds`), an `attention_mask` (2-D, 1 = token, 0 = padding; or a 4-D
    boolean / additive mask used as given), optional `position_ids` and `block_length` (the block-causal mask's block
    size, default 32); it returns float32 `logits [B, T, vocab_size]` aligned with the input (no shift).

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.models.llada2 import LLaDA2MoeConfig, LLaDA2MoeModelLM
        >>> config = LLaDA2MoeConfig(vocab_size=200, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
        ...                          num_hidden_layers=2, intermediate_size=64, moe_intermediate_size=16,
        ...                          num_experts=8, n_group=4, topk_group=2, num_shared_experts=1,
        ...                          first_k_dense_replace=1, mask_token_id=199, pad_token_id=3, eos_token_id=3)
        >>> model = LLaDA2MoeModelLM(config).eval()
        >>> model(torch.tensor([[5, 6, 199]]), block_length=2).logits.shape
        torch.Size([1, 3, 200])
        >>> model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=4, block_length=2).shape
        torch.Size([1, 7])
        ```
    """

    _tied_weights_keys = {"lm_head.weight": "model.word_embeddings.weight"}

    def __init__(self, config: LLaDA2MoeConfig) -> None:
        problems = config.unsupported_fields()
        if problems:
            raise ValueError(
                "This LLaDA2 config uses settings hf_unmask's native LLaDA2 (llada2_moe) does not implement: "
                + "; ".join(problems)
                + ". The published LLaDA2.x checkpoints use none of them."
            )
        super().__init__(config)
        self.model = LLaDA2MoeBody(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.rotary = RotaryEmbedding(config.rotary_dimension(), config.rope_parameters["rope_theta"])
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.word_embeddings = value

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
        cache: Optional[DiffusionKVCache] = None,
        block_length: Optional[int] = None,
        **kwargs: Any,
    ) -> MaskedLMOutput:
        """Run LLaDA2 over a (partly masked) sequence.

        Args:
            input_ids: `[B, T]` token ids (masked positions hold `config.mask_token_id`).
            attention_mask: `[B, T]` with 1 for tokens and 0 for padding (the block-causal mask is built from it), or
                a 4-D mask `[B, 1, T, T]`, boolean (True = attend) or additive float, used as given.
            position_ids: `[B, T]` RoPE positions, which also number the blocks (default `0..T-1`, counted from the
                first real token of a padded row).
            labels: `[B, T]` targets, -100 = ignored: `loss` is their mean cross-entropy against the aligned logits
                (no diffusion weighting), as published.
            output_hidden_states: also return the embeddings and each layer's output (the last one after `norm`).
            past_key_values: a `DiffusionKVCache`: refreshed by this forward, or, with `cache_position`, `input_ids`
                are those positions of the sequence and attend to the cached keys and values of the rest
                (`attention_mask` then still covers the whole sequence).
            cache_position: `[q]` the consecutive sequence positions fed against `past_key_values`, e.g.
                `torch.arange(start, end)` (none: a refresh over the whole sequence).
            use_cache: `True` needs `past_key_values`; `False` refuses one (a diffusion forward makes no cache).
            cache: deprecated name of `past_key_values`.
            block_length: block size of the block-causal mask (None: `LLADA2_TRAINED_BLOCK_LENGTH` = 32; 1: causal,
                what the published forward does with a 2-D mask). Unused with a 4-D mask.
        """
        past_key_values, cache_position = cache_argument(past_key_values, cache, use_cache, cache_position)
        for flag in ("output_attentions", "output_router_logits"):
            if kwargs.get(flag):
                raise ValueError(f"{flag}=True is not supported by the native LLaDA2 model.")
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        x = self.model.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.is_floating_point():
            attention_mask = attention_mask.to(x.dtype)  # e.g. the published generate's bfloat16 additive mask
        block_length = LLADA2_TRAINED_BLOCK_LENGTH if block_length is None else block_length
        mask, position_ids = attention_inputs(
            self.config, x, attention_mask, position_ids, past_key_values, block_length, cache_position
        )
        position_embeddings = self.rotary(position_ids, x.dtype)
        want_hidden = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        x, hidden_states = run_layers(
            self.model.layers,
            x,
            (position_embeddings, mask),
            self.model.norm,
            want_hidden,
            past_key_values,
            cache_position,
        )
        logits = self.lm_head(x).float()
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.to(logits.device).flatten(), ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=hidden_states)
