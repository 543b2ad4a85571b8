"""`LLaDAConfig`: the configuration of LLaDA checkpoints (GSAI-ML/LLaDA-8B-Base, -Instruct, LLaDA-1.5), native.

The field names are those of the published `config.json` (the OLMo-style `ModelConfig` of LLaDA's own
`configuration_llada.py`), so a checkpoint's config loads as it is and saves back with the same keys. The defaults
are LLaDA-8B-Instruct's values. transformers-style names (`hidden_size`, `num_attention_heads`, ...) read the
LLaDA fields.
"""

from __future__ import annotations

from typing import Any, Optional

from transformers import PretrainedConfig

LLADA_MASK_TOKEN_ID = 126336
LLADA_EOS_TOKEN_ID = 126081  # <|endoftext|>, also the padding the SFT data appends after an answer
LLADA_EOT_TOKEN_ID = 126348  # <|eot_id|>, ends a turn of the Instruct chat template
# Fields of LLaDA-MoE's config (published with model_type "llada" as well); LLaDA's own config has none of them.
_LLADA_MOE_FIELDS = frozenset(
    {"num_key_value_heads", "num_experts", "num_experts_per_tok", "expert_intermediate_size", "moe_layer_freq"}
)


def _refuse_moe_fields(kwargs: dict[str, Any]) -> None:
    """LLaDA-MoE's config also says model_type 'llada': refuse its fields with the way to load it."""
    moe_fields = sorted(set(kwargs) & _LLADA_MOE_FIELDS)
    if moe_fields:
        raise ValueError(
            f"This config has LLaDA-MoE's fields ({', '.join(moe_fields)}), not LLaDA's (d_model, n_heads, ...): "
            "LLaDA-MoE checkpoints also say model_type 'llada'. Load them with "
            "hf_unmask.AutoDiffusionLM.from_pretrained(...), which picks the native LLaDAMoEModelLM, or build "
            "hf_unmask.models.llada_moe.LLaDAMoEConfig(**fields)."
        )


class LLaDAConfig(PretrainedConfig):
    """Configuration of `LLaDAModelLM` (LLaDA's bidirectional Llama-like transformer).

    Every field of the published checkpoints' config.json is accepted and kept. What the native model runs:
    `block_type="llama"` blocks (RMSNorm or LayerNorm pre-norm, separate `q_proj`/`k_proj`/`v_proj`, grouped-query
    heads through `n_kv_heads`, a gated feed-forward `ff_out(act(ff_proj(x)) * up_proj(x))`), RoPE with
    `rope_theta`, untied (`weight_tying=False`) or tied output embeddings, optional biases and `scale_logits`.
    Variants the published checkpoints do not use (ALiBi, no RoPE, the `sequential` block, block groups, QK norm,
    the `swiglu` activation with a llama block) are refused by the model with an error naming the field.

    Args:
        d_model: hidden size. n_heads / n_kv_heads: query heads / key-value heads (None = n_heads).
        n_layers: number of blocks. mlp_hidden_size: feed-forward width (None = mlp_ratio x d_model).
        activation_type: "silu" (LLaDA), "gelu" or "relu" applied to `ff_proj`.
        layer_norm_type: "rms" (LLaDA), "gemma_rms", "default" / "low_precision" (LayerNorm); rms_norm_eps for RMS.
        rope_theta: RoPE base (500000 for LLaDA-8B). max_sequence_length: longest trained sequence (4096).
        vocab_size / embedding_size: tokens / rows of the embedding and output matrices (>= vocab_size).
        mask_token_id / eos_token_id / pad_token_id: special ids (126336 / 126081 / 126081).

    Example:
        ```python
        >>> from hf_unmask.models.llada import LLaDAConfig
        >>> config = LLaDAConfig(d_model=64, n_heads=4, n_kv_heads=2, n_layers=2, mlp_hidden_size=128)
        >>> config.hidden_size, config.num_key_value_heads, config.head_dim, config.mask_token_id
        (64, 2, 16, 126336)
        ```
    """

    model_type = "llada"
    keys_to_ignore_at_inference = ["past_key_values"]
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
        "max_position_embeddings": "max_sequence_length",
    }

    def __init__(
        self,
        d_model: int = 4096,
        n_heads: int = 32,
        n_kv_heads: Optional[int] = 32,
        n_layers: int = 32,
        mlp_ratio: int = 4,
        mlp_hidden_size: Optional[int] = 12288,
        activation_type: str = "silu",
        block_type: str = "llama",
        block_group_size: int = 1,
        alibi: bool = False,
        alibi_bias_max: float = 8.0,
        rope: bool = True,
        rope_full_precision: bool = True,
        flash_attention: bool = False,
        attention_dropout: float = 0.0,
        multi_query_attention: Optional[bool] = None,
        attention_layer_norm: bool = False,
        residual_dropout: float = 0.0,
        embedding_dropout: float = 0.0,
        input_emb_norm: bool = False,
        layer_norm_type: str = "rms",
        layer_norm_with_affine: bool = True,
        rms_norm_eps: float = 1e-5,
        attention_layer_norm_with_affine: bool = True,
        max_sequence_length: int = 4096,
        rope_theta: float = 500000.0,
        include_qkv_bias: Optional[bool] = False,
        include_bias: bool = False,
        bias_for_layer_norm: Optional[bool] = False,
        scale_logits: bool = False,
        vocab_size: int = 126464,
        embedding_size: Optional[int] = 126464,
        weight_tying: bool = False,
        eos_token_id: int = LLADA_EOS_TOKEN_ID,
        pad_token_id: int = LLADA_EOS_TOKEN_ID,
        mask_token_id: Optional[int] = LLADA_MASK_TOKEN_ID,
        init_device: Optional[str] = "meta",
        init_fn: str = "mitchell",
        init_std: float = 0.02,
        init_cutoff_factor: Optional[float] = None,
        precision: Optional[str] = "amp_bf16",
        use_cache: bool = False,
        **kwargs: Any,
    ) -> None:
        _refuse_moe_fields(kwargs)
        self.d_model, self.n_heads, self.n_kv_heads, self.n_layers = d_model, n_heads, n_kv_heads, n_layers
        self.mlp_ratio, self.mlp_hidden_size = mlp_ratio, mlp_hidden_size
        self.activation_type, self.block_type = str(activation_type), str(block_type)
        self.block_group_size, self.alibi, self.alibi_bias_max = block_group_size, alibi, alibi_bias_max
        self.rope, self.rope_full_precision, self.rope_theta = rope, rope_full_precision, rope_theta
        self.flash_attention, self.attention_dropout = flash_attention, attention_dropout
        self.multi_query_attention, self.attention_layer_norm = multi_query_attention, attention_layer_norm
        self.residual_dropout, self.embedding_dropout = residual_dropout, embedding_dropout
        self.input_emb_norm, self.layer_norm_type = input_emb_norm, str(layer_norm_type)
        self.layer_norm_with_affine, self.rms_norm_eps = layer_norm_with_affine, rms_norm_eps
        self.attention_layer_norm_with_affine = attention_layer_norm_with_affine
        self.max_sequence_length = max_sequence_length
        self.include_qkv_bias, self.include_bias = include_qkv_bias, include_bias
        self.bias_for_layer_norm, self.scale_logits = bias_for_layer_norm, scale_logits
        self.vocab_size, self.embedding_size, self.weight_tying = vocab_size, embedding_size, weight_tying
        self.mask_token_id = mask_token_id
        self.init_device, self.init_fn, self.init_std = init_device, init_fn, init_std
        self.init_cutoff_factor, self.precision, self.use_cache = init_cutoff_factor, precision, use_cache
        # LLaDA names its output tying `weight_tying`; transformers must not tie anything on its own.
        kwargs["tie_word_embeddings"] = False
        # The checkpoint's `auto_map` points at its remote modeling files; this class replaces them, and a folder
        # saved from it holds no such files, so the key is not carried over.
        kwargs.pop("auto_map", None)
        super().__init__(eos_token_id=eos_token_id, pad_token_id=pad_token_id, **kwargs)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def num_key_value_heads(self) -> int:
        """Key-value heads, resolved as LLaDA does (`n_kv_heads`, or 1 with `multi_query_attention`)."""
        if self.n_kv_heads is None:
            return 1 if self.multi_query_attention else self.n_heads
        return self.n_kv_heads

    @property
    def intermediate_size(self) -> int:
        return self.mlp_hidden_size if self.mlp_hidden_size is not None else self.mlp_ratio * self.d_model

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding and output matrices (`embedding_size`, at least `vocab_size`)."""
        return self.embedding_size or self.vocab_size

    def unsupported_fields(self) -> list[str]:
        """`field=value` for every setting the native model does not implement (empty for the published
        checkpoints)."""
        problems = []
        if self.block_type != "llama":
            problems.append(f"block_type={self.block_type!r} (only 'llama' blocks, as in every LLaDA checkpoint)")
        if self.alibi:
            problems.append("alibi=True (LLaDA uses RoPE; ALiBi is not implemented)")
        if not self.rope:
            problems.append("rope=False (LLaDA requires RoPE)")
        if self.block_group_size != 1:
            problems.append(f"block_group_size={self.block_group_size} (only 1)")
        if self.attention_layer_norm:
            problems.append("attention_layer_norm=True (QK-norm is not implemented)")
        if self.activation_type not in ("silu", "gelu", "relu"):
            problems.append(f"activation_type={self.activation_type!r} (supported: 'silu', 'gelu', 'relu')")
        if self.layer_norm_type not in ("rms", "gemma_rms", "default", "low_precision"):
            problems.append(
                f"layer_norm_type={self.layer_norm_type!r} (supported: 'rms', 'gemma_rms', 'default', 'low_precision')"
            )
        if self.d_model % self.n_heads:
            problems.append(f"d_model={self.d_model} is not a multiple of n_heads={self.n_heads}")
        elif self.n_heads % self.num_key_value_heads:
            problems.append(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.num_key_value_heads}")
        if self.embedding_size is not None and self.embedding_size < self.vocab_size:
            problems.append(f"embedding_size={self.embedding_size} is smaller than vocab_size={self.vocab_size}")
        return problems
