"""`DreamModel`: Dream's bidirectional Qwen2 transformer, implemented natively (no remote code).

The module tree is the published checkpoints' (the same as Qwen2's), so their safetensors and PEFT adapters trained
on the original code load as they are:

    model.embed_tokens                                   token embedding
    model.layers.{i}.input_layernorm                     RMSNorm
    model.layers.{i}.self_attn.{q,k,v}_proj              with biases; k, v: num_key_value_heads heads
    model.layers.{i}.self_attn.o_proj                    no bias
    model.layers.{i}.post_attention_layernorm            RMSNorm
    model.layers.{i}.mlp.{gate,up,down}_proj             down(silu(gate(x)) * up(x))
    model.norm                                           final RMSNorm
    lm_head                                              output head (no bias, untied)

What the original does (Dream-org's `modeling_dream.py`) and this class reproduces: attention is never causal; RoPE
angles are computed in float32 and applied in the model's dtype; the model keeps the next-token layout of the
autoregressive LM it was initialised from, so `logits[:, i]` predicts token i + 1 (Dream's generation, and
hf_unmask's `DreamAdapter`, shift them right by one). Masks: a 2-D `attention_mask` (1 = token, 0 = padding), a
4-D boolean one as Dream's `generation_utils` builds, or the string `"full"` / `None` for no padding.
"""

from __future__ import annotations

from typing import Any, Optional, Union

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
from .configuration_dream import DreamConfig


class DreamAttention(nn.Module):
    """Bidirectional grouped-query self-attention with q/k/v biases."""

    is_causal = False

    def __init__(self, config: DreamConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.head_dim = config.head_dim
        kv = self.num_key_value_heads * self.head_dim
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(config.hidden_size, kv, bias=True)
        self.v_proj = nn.Linear(config.hidden_size, kv, bias=True)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: Optional[torch.Tensor],
        past_key_values: Optional[DiffusionKVCache] = None,
        cache_position: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        attended = attend(
            self,
            self.q_proj(x),
            self.k_proj(x),
            self.v_proj(x),
            position_embeddings,
            attention_mask,
            dropout=self.config.attention_dropout,
            past_key_values=past_key_values,
            cache_position=cache_position,
        )
        return self.o_proj(attended)


class DreamDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: `x + self_attn(input_layernorm(x))`, then `x + mlp(post_attention_layernorm(x))`."""

    def __init__(self, config: DreamConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.self_attn = DreamAttention(config, layer_idx)
        self.mlp = GatedMLP(config.hidden_size, config.intermediate_size, config.hidden_act)
        self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

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
        return x + self.mlp(self.post_attention_layernorm(x))


class DreamBaseModel(nn.Module):
    """The transformer body, `model.*` in the checkpoint."""

    def __init__(self, config: DreamConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(DreamDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)


class DreamPreTrainedModel(StrictCheckpointMixin, PreTrainedModel):
    config_class = DreamConfig
    config: DreamConfig
    base_model_prefix = "model"
    _no_split_modules = ["DreamDecoderLayer"]
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    #: takes a `DiffusionKVCache` as `past_key_values` (`generate(..., use_cache=True)`)
    supports_diffusion_cache = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True


class DreamModel(DiffusionGenerationMixin, DreamPreTrainedModel):
    """Dream (Dream-org/Dream-v0-Base-7B, -Instruct-7B, Dream-Coder) with its head and a diffusion `generate`.

    Loads the published config.json and safetensors without executing any file of the checkpoint (transformers'
    `AutoModel` resolves `model_type="Dream"` to this class once hf_unmask is imported). Called as Dream's own
    generation code calls it, `model(input_ids, attention_mask, position_ids)`; `logits[:, i]` predict token
    i + 1, as in the original (hf_unmask's `generate` shifts them).

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.models.dream import DreamConfig, DreamModel
        >>> config = DreamConfig(vocab_size=200, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        ...                      num_attention_heads=4, num_key_value_heads=2, mask_token_id=199, pad_token_id=3,
        ...                      bos_token_id=3, eos_token_id=3)
        >>> model = DreamModel(config).eval()
        >>> model(torch.tensor([[5, 6, 199]])).logits.shape
        torch.Size([1, 3, 200])
        >>> model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=4).shape
        torch.Size([1, 7])
        ```
    """

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: DreamConfig) -> None:
        problems = config.unsupported_fields()
        if problems:
            raise ValueError(
                "This Dream config uses settings hf_unmask's native Dream does not implement: "
                + "; ".join(problems)
                + ". The published Dream checkpoints use none of them."
            )
        super().__init__(config)
        self.model = DreamBaseModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_parameters["rope_theta"])
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
        attention_mask: Optional[Union[torch.Tensor, str]] = None,
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
        """Run Dream over a (partly masked) sequence.

        Args:
            input_ids: `[B, T]` token ids (masked positions hold `config.mask_token_id`).
            attention_mask: `[B, T]` (1 = token, 0 = padding), a 4-D `[B, 1, T, T]` mask, `"full"` or None.
            position_ids: `[B, T]` RoPE positions (default `0..T-1`, counted from the first real token of a padded
                row when a 2-D mask is given).
            labels: `[B, T]` token ids, -100 = ignored: `loss` is the cross-entropy of `logits[:, i - 1]` against
                `labels[:, i]` (Dream's next-position layout), no diffusion weighting.
            output_hidden_states: also return the embeddings and each layer's output (the last one after `norm`).
            past_key_values, cache_position, use_cache, cache: the diffusion key/value cache (see
                `LLaDAModelLM.forward`).
        """
        past_key_values, cache_position = cache_argument(past_key_values, cache, use_cache, cache_position)
        if isinstance(attention_mask, str):
            if attention_mask != "full":
                raise ValueError(f"attention_mask may be a tensor, None or 'full', got {attention_mask!r}.")
            attention_mask = None
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
            targets = labels.to(logits.device)[:, 1:].flatten()
            loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), targets, ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=hidden_states)
