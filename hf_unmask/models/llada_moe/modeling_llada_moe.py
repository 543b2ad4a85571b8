"""`LLaDAMoEModelLM`: LLaDA-MoE's bidirectional mixture-of-experts transformer, implemented natively (no remote
code).

The module tree mirrors the published checkpoints, so their safetensors load as they are (and PEFT adapters
trained on the original code find the same module names):

    model.embed_tokens                                   token embedding [vocab_size, hidden_size]
    model.layers.{i}.input_layernorm                     RMSNorm
    model.layers.{i}.self_attn.{q,k,v,o}_proj            attention (k, v: num_key_value_heads heads)
    model.layers.{i}.self_attn.{q,k}_norm                per-head RMSNorm of queries / keys (qk_layernorm)
    model.layers.{i}.post_attention_layernorm            RMSNorm
    model.layers.{i}.mlp.gate                            router [num_experts, hidden_size]
    model.layers.{i}.mlp.experts.{e}.{gate,up,down}_proj down(silu(gate(x)) * up(x)) per expert
    model.layers.{i}.mlp.expert_bias                     added to the routing scores (moe_router_enable_expert_bias)
    model.layers.{i}.mlp.{gate,up,down}_proj             instead, in a dense layer (moe_layer_freq[i] == 0)
    model.layers.{i}.shared_expert.{gate,up,down}_proj   always-on expert (shared_expert_intermediate_size)
    model.norm                                           final RMSNorm
    lm_head                                              output head

What the published modeling code does and this class reproduces: attention is never
causal; queries and keys are RMS-normed per head before RoPE; RoPE angles are computed in float32 and applied in
the model's dtype to the first `partial_rotary_factor` of each head; a 2-D `attention_mask` (1 = token, 0 =
padding) hides padding keys; the router takes a float32 softmax over all experts, adds `expert_bias`, keeps the
top `num_experts_per_tok` values as weights (not renormalised) and sums the chosen experts' outputs so weighted;
logits are aligned (`logits[:, i]` predicts token i). Unlike the original, `position_ids` default to positions
counted from each row's first real token when a 2-D mask is given (RoPE only sees query-key offsets, so this only
changes float rounding, and a left-padded row computes what it computes alone).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import MaskedLMOutput

from ...generation.kv_cache import DiffusionKVCache
from ...generation.mixin import DiffusionGenerationMixin
from ..bidirectional import GatedMLP, RMSNorm, RotaryEmbedding, attend, attention_inputs, cache_argument, run_layers
from ..strict_loading import StrictCheckpointMixin
from .configuration_llada_moe import LLaDAMoEConfig


def gated_mlp(config: LLaDAMoEConfig, width: int) -> GatedMLP:
    """An expert, the shared expert or a dense layer: a `GatedMLP` of width `width`."""
    return GatedMLP(config.hidden_size, width, config.hidden_act)


class LLaDAMoESparseBlock(nn.Module):
    """Token-choice mixture of experts: each token runs its top `num_experts_per_tok` experts of the router's
    float32 softmax (plus `expert_bias`), weighted by those scores."""

    def __init__(self, config: LLaDAMoEConfig) -> None:
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.gate = nn.Linear(config.hidden_size, config.num_experts, bias=False)
        self.experts = nn.ModuleList(
            gated_mlp(config, config.expert_intermediate_size) for _ in range(config.num_experts)
        )
        self.expert_bias: Optional[torch.Tensor]
        if config.moe_router_enable_expert_bias:
            self.register_buffer("expert_bias", torch.zeros(config.num_experts))
        else:
            self.expert_bias = None

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(weights [N, k] in x's dtype, chosen experts [N, k])` for the tokens `x [N, C]`."""
        scores = F.softmax(self.gate(x), dim=-1, dtype=torch.float32)
        if self.expert_bias is not None:
            scores = scores + self.expert_bias
        weights, chosen = scores.topk(self.top_k, dim=-1)
        return weights.to(x.dtype), chosen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        weights, chosen = self.route(x)
        out = torch.zeros_like(x)
        counts = torch.bincount(chosen.flatten(), minlength=len(self.experts)).tolist()
        for index, count in enumerate(counts):
            if count:
                rows, slot = torch.where(chosen == index)
                out.index_add_(0, rows, self.experts[index](x[rows]) * weights[rows, slot, None])
        return out.view(shape)


class LLaDAMoEAttention(nn.Module):
    """Bidirectional grouped-query self-attention with optional per-head QK RMSNorm and partial RoPE."""

    is_causal = False

    def __init__(self, config: LLaDAMoEConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.head_dim = config.hidden_size // self.num_heads
        kv, bias = self.num_key_value_heads * self.head_dim, bool(config.attention_bias)
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, kv, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, kv, bias=bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=bias)
        if config.qk_layernorm:
            self.q_norm = RMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.k_norm = RMSNorm(self.head_dim, eps=config.rms_norm_eps)

    def _per_head_norm(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return norm(x.view(batch, length, -1, self.head_dim)).view(batch, length, -1)

    def forward(
        self,
        x: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: Optional[torch.Tensor],
        past_key_values: Optional[DiffusionKVCache] = None,
        cache_position: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        query, key, value = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if self.config.qk_layernorm:
            query, key = self._per_head_norm(self.q_norm, query), self._per_head_norm(self.k_norm, key)
        clip = self.config.clip_qkv
        if clip is not None:
            query, key, value = (t.clamp(min=-clip, max=clip) for t in (query, key, value))
        # `attend` rotates the first rotary dimensions of each head (partial RoPE) or whole heads
        attended = attend(
            self, query, key, value, position_embeddings, attention_mask, dropout=self.config.attention_dropout,
            past_key_values=past_key_values, cache_position=cache_position,
        )  # fmt: skip
        return self.o_proj(attended)


class LLaDAMoEDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: `x + self_attn(input_layernorm(x))`, then `x + mlp(h) (+ shared_expert(h))` with
    `h = post_attention_layernorm(x)`."""

    def __init__(self, config: LLaDAMoEConfig, layer_idx: int = 0) -> None:
        super().__init__()
        moe = config.is_moe_layer(layer_idx)
        self.self_attn = LLaDAMoEAttention(config, layer_idx)
        self.mlp = LLaDAMoESparseBlock(config) if moe else gated_mlp(config, config.dense_intermediate_size)
        self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        shared = config.shared_expert_intermediate_size
        self.shared_expert = gated_mlp(config, shared) if moe and shared is not None else None

    def forward(
        self,
        x: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: Optional[torch.Tensor] = None,
        past_key_values: Optional[DiffusionKVCache] = None,
        cache_position: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        x = x + self.self_attn(
            self.input_layernorm(x), position_embeddings, attention_mask, past_key_values, cache_position
        )
        h = self.post_attention_layernorm(x)
        out = self.mlp(h)
        if self.shared_expert is not None:
            out = out + self.shared_expert(h)
        return x + out


class LLaDAMoEBaseModel(nn.Module):
    """The transformer body, `model.*` in the checkpoint."""

    def __init__(self, config: LLaDAMoEConfig) -> None:
        super().__init__()
        pad = config.pad_token_id
        padding_idx = pad if isinstance(pad, int) and 0 <= pad < config.vocab_size else None
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx)
        self.layers = nn.ModuleList(LLaDAMoEDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)


class LLaDAMoEPreTrainedModel(StrictCheckpointMixin, PreTrainedModel):
    config_class = LLaDAMoEConfig
    config: LLaDAMoEConfig
    base_model_prefix = "model"
    _no_split_modules = ["LLaDAMoEDecoderLayer"]
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    #: takes a `DiffusionKVCache` as `past_key_values` (`generate(..., use_cache=True)`)
    supports_diffusion_cache = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True


class LLaDAMoEModelLM(DiffusionGenerationMixin, LLaDAMoEPreTrainedModel):
    """LLaDA-MoE (inclusionAI/LLaDA-MoE-7B-A1B-Base, -Instruct) with its logits head and a diffusion `generate`.

    Loads the published config.json and safetensors without executing any file of the checkpoint: the published
    config says `model_type` "llada" like LLaDA-1's, and `AutoDiffusionLM` tells them apart by their fields.
    `forward` takes `input_ids` (or `inputs_embeds`), a 2-D `attention_mask` (or a 4-D boolean / additive mask)
    and optional `position_ids`; it returns `logits [B, T, vocab_size]` aligned with the input (no shift).

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.models.llada_moe import LLaDAMoEConfig, LLaDAMoEModelLM
        >>> config = LLaDAMoEConfig(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        ...                         num_experts=4, num_experts_per_tok=2, expert_intermediate_size=16,
        ...                         mask_token_id=199, eos_token_id=3, pad_token_id=3)
        >>> model = LLaDAMoEModelLM(config).eval()
        >>> model(torch.tensor([[5, 6, 199]])).logits.shape
        torch.Size([1, 3, 200])
        >>> model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=4).shape
        torch.Size([1, 7])
        ```
    """

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: LLaDAMoEConfig) -> None:
        problems = config.unsupported_fields()
        if problems:
            raise ValueError(
                "This LLaDA-MoE config uses settings hf_unmask's native LLaDA-MoE does not implement: "
                + "; ".join(problems)
                + ". The published LLaDA-MoE checkpoints use none of them; to run another variant, load its own "
                "modeling code with transformers (trust_remote_code=True) and give it a diffusion generate with "
                "hf_unmask.enable_diffusion_generate(model)."
            )
        super().__init__(config)
        self.model = LLaDAMoEBaseModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.rotary = RotaryEmbedding(config.rotary_dimensions(), config.rope_parameters["rope_theta"])
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

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
        **kwargs: Any,
    ) -> MaskedLMOutput:
        """Run LLaDA-MoE over a (partly masked) sequence.

        Args:
            input_ids: `[B, T]` token ids (masked positions hold `config.mask_token_id`).
            attention_mask: `[B, T]` with 1 for tokens and 0 for padding, or a 4-D mask `[B, 1, T, T]`.
            position_ids: `[B, T]` RoPE positions (default `0..T-1`, counted from the first real token of a padded
                row).
            labels: `[B, T]` targets, -100 = ignored: `loss` is their mean cross-entropy (no diffusion weighting).
            output_hidden_states: also return the embeddings and each layer's output (the last one after `norm`).
            past_key_values: a `DiffusionKVCache`: refreshed by this forward, or, with `cache_position`, `input_ids`
                are those positions of the sequence and attend to the cached keys and values of the rest
                (`attention_mask` then still covers the whole sequence).
            cache_position: `[q]` the consecutive sequence positions fed against `past_key_values`, e.g.
                `torch.arange(start, end)` (none: a refresh over the whole sequence).
            use_cache: `True` needs `past_key_values`; `False` refuses one (a diffusion forward makes no cache).
            cache: deprecated name of `past_key_values`.
        """
        past_key_values, cache_position = cache_argument(past_key_values, cache, use_cache, cache_position)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        x = self.model.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        mask, position_ids = attention_inputs(
            self.config, x, attention_mask, position_ids, past_key_values, cache_position=cache_position
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
        logits = self.lm_head(x)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.to(logits.device).flatten(), ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=hidden_states)
