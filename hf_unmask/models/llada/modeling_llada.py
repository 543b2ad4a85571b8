"""`LLaDAModelLM`: LLaDA's bidirectional transformer, implemented natively (no remote code).

The module tree mirrors the published checkpoints, so their safetensors load as they are (and PEFT adapters
trained on the original code find the same module names):

    model.transformer.wte                         token embedding [embedding_size, d_model]
    model.transformer.blocks.{i}.attn_norm        pre-attention norm
    model.transformer.blocks.{i}.{q,k,v}_proj     attention projections (k, v: n_kv_heads heads)
    model.transformer.blocks.{i}.attn_out         attention output projection
    model.transformer.blocks.{i}.ff_norm          pre-feed-forward norm
    model.transformer.blocks.{i}.ff_proj          gate: ff_out(act(ff_proj(x)) * up_proj(x))
    model.transformer.blocks.{i}.up_proj
    model.transformer.blocks.{i}.ff_out
    model.transformer.ln_f                        final norm
    model.transformer.ff_out                      output head (absent with weight_tying)

What the original does (GSAI-ML's `modeling_llada.py`) and this class reproduces: attention is never causal;
RoPE (base `rope_theta`) is applied in float32 when `rope_full_precision`; a 2-D `attention_mask` (1 = token,
0 = padding) hides padding keys; logits are aligned (`logits[:, i]` predicts token i) over `embedding_size` rows.
Unlike the original, `position_ids` may be passed. By default they are `0..T-1` (what the original uses), or, with
a 2-D mask, counted from each row's first real token: RoPE depends only on the offset between query and key, so
this changes nothing but float rounding, and a left-padded row then computes exactly what it computes alone.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import MaskedLMOutput

from ...generation.kv_cache import DiffusionKVCache
from ...generation.mixin import DiffusionGenerationMixin
from ..bidirectional import RMSNorm, RotaryEmbedding, attend, attention_inputs, cache_argument, run_layers
from ..strict_loading import StrictCheckpointMixin
from .configuration_llada import LLaDAConfig


class LLaDARMSNorm(nn.Module):
    """LLaDA's RMS norm variants other than the plain one: with a bias, without affine parameters, or Gemma's
    `x * (1 + weight)`."""

    def __init__(self, size: int, eps: float, affine: bool, bias: bool, gemma: bool) -> None:
        super().__init__()
        self.eps, self.gemma = eps, gemma
        self.weight = nn.Parameter(torch.zeros(size) if gemma else torch.ones(size)) if affine else None
        self.bias = nn.Parameter(torch.zeros(size)) if affine and bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)
        if self.weight is None:
            return normed
        out = normed * (1 + self.weight) if self.gemma else self.weight * normed
        return out + self.bias if self.bias is not None else out


def build_norm(config: LLaDAConfig) -> nn.Module:
    """The norm `layer_norm_type` names, with LLaDA's rules for its affine parameters and bias."""
    affine = config.layer_norm_with_affine
    bias = config.bias_for_layer_norm if config.bias_for_layer_norm is not None else config.include_bias
    if config.layer_norm_type in ("default", "low_precision"):
        # LLaDA's LayerNorm keeps torch's default epsilon (rms_norm_eps is for the RMS variants only)
        return nn.LayerNorm(config.d_model, eps=1e-5, elementwise_affine=affine, bias=bool(affine and bias))
    gemma = config.layer_norm_type == "gemma_rms"
    if affine and not bias and not gemma:
        return RMSNorm(config.d_model, eps=config.rms_norm_eps)
    return LLaDARMSNorm(config.d_model, config.rms_norm_eps, affine, bool(bias), gemma)


class LLaDALlamaBlock(GradientCheckpointingLayer):
    """One LLaDA block: `x + attn_out(attention(attn_norm(x)))`, then `x + ff_out(act(ff_proj(h)) * up_proj(h))`
    with `h = ff_norm(x)`; attention is bidirectional."""

    is_causal = False

    def __init__(self, config: LLaDAConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.n_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.head_dim = config.head_dim
        qkv_bias = bool(config.include_bias or config.include_qkv_bias)
        d, kv = config.d_model, self.num_key_value_heads * self.head_dim
        self.attn_norm = build_norm(config)
        self.q_proj = nn.Linear(d, d, bias=qkv_bias)
        self.k_proj = nn.Linear(d, kv, bias=qkv_bias)
        self.v_proj = nn.Linear(d, kv, bias=qkv_bias)
        self.attn_out = nn.Linear(d, d, bias=config.include_bias)
        self.ff_norm = build_norm(config)
        self.ff_proj = nn.Linear(d, config.intermediate_size, bias=config.include_bias)
        self.up_proj = nn.Linear(d, config.intermediate_size, bias=config.include_bias)
        self.ff_out = nn.Linear(config.intermediate_size, d, bias=config.include_bias)
        self.act = ACT2FN[config.activation_type]
        self.dropout = nn.Dropout(config.residual_dropout)

    def forward(
        self,
        x: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: Optional[torch.Tensor] = None,
        past_key_values: Optional[DiffusionKVCache] = None,
        cache_position: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        h = self.attn_norm(x)
        attended = attend(
            self,
            self.q_proj(h),
            self.k_proj(h),
            self.v_proj(h),
            position_embeddings,
            attention_mask,
            dropout=self.config.attention_dropout,
            rope_in_float32=self.config.rope_full_precision,
            past_key_values=past_key_values,
            cache_position=cache_position,
        )
        x = x + self.dropout(self.attn_out(attended))
        h = self.ff_norm(x)
        return x + self.dropout(self.ff_out(self.act(self.ff_proj(h)) * self.up_proj(h)))


class LLaDAModel(nn.Module):
    """The transformer body, `model.transformer.*` in the checkpoint (embedding, blocks, final norm, head)."""

    def __init__(self, config: LLaDAConfig) -> None:
        super().__init__()
        modules: dict[str, nn.Module] = {
            "wte": nn.Embedding(config.padded_vocab_size, config.d_model),
            "emb_drop": nn.Dropout(config.embedding_dropout),
            "blocks": nn.ModuleList(LLaDALlamaBlock(config, i) for i in range(config.n_layers)),
            "ln_f": build_norm(config),
        }
        if not config.weight_tying:
            modules["ff_out"] = nn.Linear(config.d_model, config.padded_vocab_size, bias=config.include_bias)
        self.transformer = nn.ModuleDict(modules)


class LLaDAPreTrainedModel(StrictCheckpointMixin, PreTrainedModel):
    config_class = LLaDAConfig
    config: LLaDAConfig
    base_model_prefix = "model"
    _no_split_modules = ["LLaDALlamaBlock"]
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    #: takes a `DiffusionKVCache` as `past_key_values` (`generate(..., use_cache=True)`)
    supports_diffusion_cache = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True


class LLaDAModelLM(DiffusionGenerationMixin, LLaDAPreTrainedModel):
    """LLaDA (GSAI-ML/LLaDA-8B-Base, -Instruct, LLaDA-1.5) with its logits head and a diffusion `generate`.

    Loads the published config.json and safetensors without executing any file of the checkpoint (transformers'
    `AutoModel` resolves `model_type="llada"` to this class once hf_unmask is imported). `forward` takes
    `input_ids` (or `inputs_embeds`), a 2-D `attention_mask` (or a 4-D boolean/additive mask, also accepted as
    LLaDA's `attention_bias`) and optional `position_ids`; it returns `logits [B, T, embedding_size]` aligned with
    the input (no shift).

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.models.llada import LLaDAConfig, LLaDAModelLM
        >>> config = LLaDAConfig(d_model=32, n_heads=4, n_kv_heads=4, n_layers=2, mlp_hidden_size=64,
        ...                      vocab_size=200, embedding_size=256, mask_token_id=199, eos_token_id=3, pad_token_id=3)
        >>> model = LLaDAModelLM(config).eval()
        >>> model(torch.tensor([[5, 6, 199]])).logits.shape
        torch.Size([1, 3, 256])
        >>> model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=4).shape
        torch.Size([1, 7])
        ```
    """

    def __init__(self, config: LLaDAConfig) -> None:
        problems = config.unsupported_fields()
        if problems:
            raise ValueError(
                "This LLaDA config uses settings hf_unmask's native LLaDA does not implement: "
                + "; ".join(problems)
                + ". The published LLaDA checkpoints use none of them; to run another variant, load its own modeling "
                "code with transformers (trust_remote_code=True) and give it a diffusion generate with "
                "hf_unmask.enable_diffusion_generate(model)."
            )
        super().__init__(config)
        self.model = LLaDAModel(config)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.transformer.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.transformer.wte = value

    def get_output_embeddings(self) -> nn.Module:
        transformer = self.model.transformer
        return transformer.wte if self.config.weight_tying else transformer.ff_out

    def set_output_embeddings(self, value: nn.Module) -> None:
        if self.config.weight_tying:
            self.model.transformer.wte = value
        else:
            self.model.transformer.ff_out = value

    def forward(
        self,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        inputs_embeds: Optional[torch.Tensor] = None,
        labels: Optional[torch.LongTensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        attention_bias: Optional[torch.Tensor] = None,
        past_key_values: Optional[DiffusionKVCache] = None,
        use_cache: Optional[bool] = None,
        cache_position: Optional[torch.Tensor] = None,
        cache: Optional[DiffusionKVCache] = None,
        **kwargs: Any,
    ) -> MaskedLMOutput:
        """Run LLaDA over a (partly masked) sequence.

        Args:
            input_ids: `[B, T]` token ids (masked positions hold `config.mask_token_id`).
            attention_mask: `[B, T]` with 1 for tokens and 0 for padding, or a 4-D mask `[B, 1, T, T]`.
            position_ids: `[B, T]` RoPE positions (default `0..T-1`, counted from the first real token of a padded
                row).
            labels: `[B, T]` targets, -100 = ignored: `loss` is their mean cross-entropy (no diffusion weighting).
            output_hidden_states: also return the embeddings and each block's output (the last one after `ln_f`).
            attention_bias: LLaDA's name for a 4-D mask; give it or `attention_mask`, not both.
            past_key_values: a `DiffusionKVCache`: refreshed by this forward, or, with `cache_position`, `input_ids`
                are those positions of the sequence and attend to the cached keys and values of the rest
                (`attention_mask` then still covers the whole sequence).
            cache_position: `[q]` the consecutive sequence positions fed against `past_key_values`, e.g.
                `torch.arange(start, end)` (none: a refresh over the whole sequence).
            use_cache: `True` needs `past_key_values`; `False` refuses one (a diffusion forward makes no cache).
            cache: deprecated name of `past_key_values`.
        """
        past_key_values, cache_position = cache_argument(past_key_values, cache, use_cache, cache_position)
        if attention_bias is not None:
            if attention_mask is not None:
                raise ValueError("Pass either attention_mask or LLaDA's attention_bias, not both.")
            attention_mask = attention_bias
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        transformer = self.model.transformer
        x = transformer.wte(input_ids) if inputs_embeds is None else inputs_embeds
        if self.config.input_emb_norm:
            x = x * self.config.d_model**0.5
        x = transformer.emb_drop(x)
        mask, position_ids = attention_inputs(
            self.config, x, attention_mask, position_ids, past_key_values, cache_position=cache_position
        )
        rope_dtype = torch.float32 if self.config.rope_full_precision else x.dtype
        position_embeddings = self.rotary(position_ids, rope_dtype)
        want_hidden = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        x, hidden_states = run_layers(
            transformer.blocks,
            x,
            (position_embeddings, mask),
            transformer.ln_f,
            want_hidden,
            past_key_values,
            cache_position,
        )
        logits = F.linear(x, transformer.wte.weight) if self.config.weight_tying else transformer.ff_out(x)
        if self.config.scale_logits:
            logits = logits * (1 / self.config.d_model**0.5)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.to(logits.device).flatten(), ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=hidden_states)
