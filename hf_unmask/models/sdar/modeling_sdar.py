"""`SDARForCausalLM`: SDAR's block-diffusion Qwen3 transformer, implemented natively (no remote code).

The module tree is the published checkpoints' (Qwen3's), so their safetensors and PEFT adapters trained on the
original code load as they are:

    model.embed_tokens                                   token embedding
    model.layers.{i}.input_layernorm                     RMSNorm
    model.layers.{i}.self_attn.{q,k,v,o}_proj            biases only with attention_bias; k, v: num_key_value_heads
    model.layers.{i}.self_attn.{q,k}_norm                RMSNorm over head_dim, per head, before RoPE
    model.layers.{i}.post_attention_layernorm            RMSNorm
    model.layers.{i}.mlp.{gate,up,down}_proj             down(silu(gate(x)) * up(x))
    model.norm                                           final RMSNorm
    lm_head                                              output head (tied to the embedding with tie_word_embeddings)

What the original inference forward does (JetAstra/SDAR's `modeling_sdar.py` in eval mode, as its `generate.py`
calls it) and this class reproduces: queries and keys are RMS-normed per head, then rotated (angles in float32,
applied in the model's dtype); RMSNorm multiplies by its weight in float32 and rounds once (the flash-attn kernel
the original calls); attention follows the mask it is given, and SDAR's `generate.py` gives the block-causal one of
its trained block size 4 (a query sees its own block and every earlier block, blocks counted from position 0);
`logits[:, i]` predicts token i (the generation reads the current block's logits directly, no shift).

Masks here: with a 2-D `attention_mask` (1 = token, 0 = padding) or none, the forward builds that block-causal mask
itself (`block_length`, default `config.block_size`, 4), with blocks counted from each row's first real token, so a
left-padded row computes what it computes alone; `block_length=1` is a causal mask. A 3-D `[B or 1, q, T]` mask (the
layout SDAR's `generate.py` passes, nonzero = attend) or a 4-D one (boolean keep, or additive float) is used as
given. Note that the original forward, called with a plain all-ones 2-D mask, attends bidirectionally (its causal
mask builder is disabled): only the block mask of its `generate` makes it block-causal.

Not implemented: the original's training path (in train mode it doubles the sequence into noisy and clean copies
and computes its own diffusion loss); here train mode runs the same forward, and `labels` give a plain aligned
cross-entropy, as the original's eval-mode loss.
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
from ..bidirectional import (
    GatedMLP,
    RotaryEmbedding,
    attend,
    attention_inputs,
    cache_argument,
    cache_window,
    run_layers,
)
from ..strict_loading import StrictCheckpointMixin
from .configuration_sdar import SDAR_TRAINED_BLOCK_LENGTH, SDARConfig

__all__ = ["SDARForCausalLM", "SDARPreTrainedModel", "SDAR_TRAINED_BLOCK_LENGTH"]


class SDARRMSNorm(nn.Module):
    """`x * rsqrt(mean(x^2) + eps) * weight`, all in float32, rounded once to the input's dtype (as the fused
    kernel SDAR's code calls; Qwen3's reference rounds before the weight, which differs only below bfloat16's
    precision)."""

    def __init__(self, size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = x.float()
        wide = wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return (wide * self.weight.float()).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


class SDARAttention(nn.Module):
    """Grouped-query self-attention with Qwen3's per-head query / key norms; the mask decides what is causal."""

    is_causal = False

    def __init__(self, config: SDARConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.head_dim = config.head_dim
        bias, width, kv = (
            config.attention_bias,
            self.num_heads * self.head_dim,
            self.num_key_value_heads * self.head_dim,
        )
        self.q_proj = nn.Linear(config.hidden_size, width, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, kv, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, kv, bias=bias)
        self.o_proj = nn.Linear(width, config.hidden_size, bias=bias)
        self.q_norm = SDARRMSNorm(self.head_dim, eps=config.rms_norm_eps)
        self.k_norm = SDARRMSNorm(self.head_dim, eps=config.rms_norm_eps)

    def _head_normed(self, projected: torch.Tensor, norm: SDARRMSNorm) -> torch.Tensor:
        """RMS-norm every head of `[B, T, H*D]` over its D features (the layout stays flat)."""
        batch, length, width = projected.shape
        return norm(projected.view(batch, length, width // self.head_dim, self.head_dim)).view(batch, length, width)

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
            self._head_normed(self.q_proj(x), self.q_norm),
            self._head_normed(self.k_proj(x), self.k_norm),
            self.v_proj(x),
            position_embeddings,
            attention_mask,
            dropout=self.config.attention_dropout,
            past_key_values=past_key_values,
            cache_position=cache_position,
        )
        return self.o_proj(attended)


class SDARDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: `x + self_attn(input_layernorm(x))`, then `x + mlp(post_attention_layernorm(x))`."""

    def __init__(self, config: SDARConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.self_attn = SDARAttention(config, layer_idx)
        self.mlp = GatedMLP(config.hidden_size, config.intermediate_size, config.hidden_act)
        self.input_layernorm = SDARRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = SDARRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

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


class SDARBaseModel(nn.Module):
    """The transformer body, `model.*` in the checkpoint."""

    def __init__(self, config: SDARConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(SDARDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = SDARRMSNorm(config.hidden_size, eps=config.rms_norm_eps)


class SDARPreTrainedModel(StrictCheckpointMixin, PreTrainedModel):
    config_class = SDARConfig
    config: SDARConfig
    base_model_prefix = "model"
    _no_split_modules = ["SDARDecoderLayer"]
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    #: takes a `DiffusionKVCache` as `past_key_values` (`generate(..., use_cache=True)`)
    supports_diffusion_cache = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True


def _three_d_mask(attention_mask: torch.Tensor, queries: int, keys: int) -> torch.Tensor:
    """SDAR's `[B or 1, q, T]` mask (nonzero = attend) as a boolean `[B or 1, 1, q, T]` keep mask."""
    if attention_mask.shape[1] != queries or attention_mask.shape[2] != keys:
        raise ValueError(
            f"A 3-D attention_mask must be [batch or 1, queries, keys] = [*, {queries}, {keys}], got "
            f"{tuple(attention_mask.shape)}."
        )
    return (attention_mask != 0).unsqueeze(1)


class SDARForCausalLM(DiffusionGenerationMixin, SDARPreTrainedModel):
    """SDAR (JetLM/SDAR-1.7B-Chat, -4B-Chat, -8B-Chat) with its head and a diffusion `generate`.

    Loads the published config.json and safetensors without executing any file of the checkpoint (transformers'
    `AutoModel` resolves `model_type="sdar"` to this class once hf_unmask is imported). The forward is block-causal
    with the trained block size 4 unless told otherwise (`block_length=`, or a 3-D / 4-D mask); `logits[:, i]`
    predict token i.

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.models.sdar import SDARConfig, SDARForCausalLM
        >>> config = SDARConfig(vocab_size=200, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        ...                     num_attention_heads=4, num_key_value_heads=2, head_dim=16, mask_token_id=199,
        ...                     bos_token_id=3, eos_token_id=3)
        >>> model = SDARForCausalLM(config).eval()
        >>> ids = torch.tensor([[5, 6, 7, 8, 9, 199, 199, 199]])
        >>> logits = model(ids).logits                      # blocks of 4: [5 6 7 8] [9 M M M]
        >>> logits.shape
        torch.Size([1, 8, 200])
        >>> later = ids.clone(); later[0, 6] = 42           # a token of the second block ...
        >>> torch.equal(model(later).logits[:, :4], logits[:, :4])  # ... never reaches the first
        True
        ```
    """

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: SDARConfig) -> None:
        problems = config.unsupported_fields()
        if problems:
            raise ValueError(
                "This SDAR config uses settings hf_unmask's native SDAR does not implement: "
                + "; ".join(problems)
                + ". The published SDAR checkpoints use none of them."
            )
        super().__init__(config)
        self.model = SDARBaseModel(config)
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
        """Run SDAR over a (partly masked) sequence.

        Args:
            input_ids: `[B, T]` token ids (masked positions hold `config.mask_token_id`).
            attention_mask: `[B, T]` (1 = token, 0 = padding) or None: block-causal over `block_length`; a 3-D
                `[B or 1, T, T]` mask (nonzero = attend, as SDAR's `generate.py` builds it) or a 4-D `[B, 1, T, T]`
                one (boolean keep or additive float) is used as given. Against a cache window the mask's key
                dimension covers the whole sequence.
            position_ids: `[B, T]` RoPE positions, which also number the blocks (default `0..T-1`, counted from the
                first real token of a padded row when a 2-D mask is given).
            labels: `[B, T]` token ids, -100 = ignored: `loss` is the cross-entropy of `logits[:, i]` against
                `labels[:, i]` (aligned, as the original's eval-mode loss), no diffusion weighting.
            output_hidden_states: also return the embeddings and each layer's output (the last one after `norm`).
            past_key_values, cache_position, use_cache, cache: the diffusion key/value cache (see
                `LLaDAModelLM.forward`).
            block_length: tokens per block of the block-causal mask; default `config.block_size` (SDAR's trained
                4). `1` is a causal mask; a value at least the sequence length makes attention bidirectional.
        """
        past_key_values, cache_position = cache_argument(past_key_values, cache, use_cache, cache_position)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        x = self.model.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        if attention_mask is not None and attention_mask.dim() == 3:
            window = cache_window(past_key_values, cache_position, x.shape[1])
            keys = x.shape[1] if window is None else max(past_key_values.get_seq_length(), window[1])
            attention_mask = _three_d_mask(attention_mask.to(x.device), x.shape[1], keys)
        block = self.config.block_size if block_length is None else block_length
        mask, position_ids = attention_inputs(
            self.config, x, attention_mask, position_ids, past_key_values, block, cache_position
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
            targets = labels.to(logits.device).flatten()
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets, ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=hidden_states)
