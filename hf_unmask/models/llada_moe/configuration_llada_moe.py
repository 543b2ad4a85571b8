"""`LLaDAMoEConfig`: the configuration of LLaDA-MoE checkpoints (inclusionAI/LLaDA-MoE-7B-A1B-Base, -Instruct),
native.

The field names are those of the published `config.json` (an OLMoE-style mixture-of-experts config), so a
checkpoint's config loads as it is and saves back with the same keys. The published file names the family
`"llada"`, like LLaDA-1's OLMo-style config, whose fields (`d_model`, `n_heads`, ...) are different: the two are
told apart by their fields (`is_llada_moe_config`), and a config built by this class reports `model_type`
`"lladamoe"`. `rope_theta` / `rope_scaling` / `partial_rotary_factor` are standardised into transformers'
`rope_parameters` (only the default rotary type is implemented).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from transformers import PretrainedConfig
from transformers.activations import ACT2FN

LLADA_MOE_MASK_TOKEN_ID = 156895  # <|mask|>
LLADA_MOE_EOS_TOKEN_ID = 156892  # <|endoftext|>, also the padding

#: Fields only a LLaDA-MoE config has (LLaDA-1's OLMo-style config has none of them).
LLADA_MOE_FIELDS = frozenset(
    {
        "num_experts",
        "num_experts_per_tok",
        "expert_intermediate_size",
        "dense_intermediate_size",
        "shared_expert_intermediate_size",
        "moe_layer_freq",
    }
)


def is_llada_moe_config(config_dict: Mapping[str, Any]) -> bool:
    """Whether a config dict describes LLaDA-MoE rather than LLaDA-1 (both are published as `model_type` "llada").

    The rule: `model_type` "lladamoe", or any mixture-of-experts field (`num_experts`, `expert_intermediate_size`,
    `moe_layer_freq`, ...), or transformers-style `hidden_size` without LLaDA-1's `d_model`.

    Example:
        ```python
        >>> is_llada_moe_config({"model_type": "llada", "hidden_size": 2048, "num_experts": 64})
        True
        >>> is_llada_moe_config({"model_type": "llada", "d_model": 4096, "n_heads": 32})
        False
        ```
    """
    if config_dict.get("model_type") == "lladamoe":
        return True
    keys = set(config_dict)
    return bool(keys & LLADA_MOE_FIELDS) or ("hidden_size" in keys and "d_model" not in keys)


class LLaDAMoEConfig(PretrainedConfig):
    """Configuration of `LLaDAMoEModelLM` (LLaDA-MoE's bidirectional mixture-of-experts transformer).

    Every field of the published checkpoints' config.json is accepted and kept. What the native model runs:
    pre-norm blocks (RMSNorm), attention with grouped-query heads, optional per-head QK RMSNorm (`qk_layernorm`),
    optional `attention_bias` and `clip_qkv`, RoPE on the first `partial_rotary_factor` of each head; then per layer
    (`moe_layer_freq[i]`) either a dense SwiGLU feed-forward (`dense_intermediate_size`) or a mixture of
    `num_experts` SwiGLU experts (`expert_intermediate_size`) of which `num_experts_per_tok` run per token, plus an
    always-on shared expert when `shared_expert_intermediate_size` is set.

    Routing is what the published forward computes: softmax over all experts in float32, plus the `expert_bias`
    buffer when `moe_router_enable_expert_bias`, top-k of that, the top-k values used as weights as they are. The
    published forward reads but never applies `norm_topk_prob`, `moe_router_score_function`,
    `routed_scaling_factor`, `router_num_group` and `router_topk_group`, so neither does this one (they are kept).

    Defaults follow LLaDA-MoE-7B-A1B's reported shape (16 layers, hidden 2048, 16 heads, 64 experts of width 1024, 8 per
    token, QK norm, a vocabulary of 157184); a checkpoint's config.json sets every value. `moe_layer_freq=None`
    means every layer is a mixture-of-experts layer.

    Example:
        ```python
        >>> from hf_unmask.models.llada_moe import LLaDAMoEConfig
        >>> config = LLaDAMoEConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=2, num_experts=4,
        ...                         num_experts_per_tok=2, expert_intermediate_size=32)
        >>> config.model_type, config.moe_layer_freq, config.mask_token_id, config.unsupported_fields()
        ('lladamoe', [1, 1], 156895, [])
        ```
    """

    model_type = "lladamoe"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(
        self,
        vocab_size: int = 157184,
        hidden_size: int = 2048,
        dense_intermediate_size: Optional[int] = None,
        expert_intermediate_size: int = 1024,
        shared_expert_intermediate_size: Optional[int] = None,
        num_hidden_layers: int = 16,
        num_attention_heads: int = 16,
        num_key_value_heads: Optional[int] = None,
        hidden_act: str = "silu",
        max_position_embeddings: int = 8192,
        initializer_range: float = 0.02,
        rms_norm_eps: float = 1e-5,
        use_cache: bool = False,
        pad_token_id: Optional[int] = LLADA_MOE_EOS_TOKEN_ID,
        bos_token_id: Optional[int] = None,
        eos_token_id: Optional[int] = LLADA_MOE_EOS_TOKEN_ID,
        tie_word_embeddings: bool = False,
        rope_theta: float = 10000.0,
        partial_rotary_factor: float = 1.0,
        rope_parameters: Optional[dict[str, Any]] = None,
        attention_bias: bool = False,
        attention_dropout: float = 0.0,
        clip_qkv: Optional[float] = None,
        num_experts_per_tok: int = 8,
        num_experts: int = 64,
        output_router_logits: bool = False,
        router_aux_loss_coef: float = 0.01,
        norm_topk_prob: Optional[bool] = None,
        qk_layernorm: Optional[bool] = True,
        moe_layer_freq: Optional[list[int]] = None,
        moe_router_enable_expert_bias: Optional[bool] = None,
        moe_router_score_function: Optional[str] = None,
        routed_scaling_factor: float = 1,
        router_num_group: int = -2,
        router_topk_group: int = -2,
        mask_token_id: Optional[int] = LLADA_MOE_MASK_TOKEN_ID,
        **kwargs: Any,
    ) -> None:
        self.vocab_size, self.hidden_size, self.hidden_act = vocab_size, hidden_size, hidden_act
        self.dense_intermediate_size, self.expert_intermediate_size = dense_intermediate_size, expert_intermediate_size
        self.shared_expert_intermediate_size = shared_expert_intermediate_size
        self.num_hidden_layers, self.num_attention_heads = num_hidden_layers, num_attention_heads
        self.num_key_value_heads = num_attention_heads if num_key_value_heads is None else num_key_value_heads
        self.max_position_embeddings, self.initializer_range = max_position_embeddings, initializer_range
        self.rms_norm_eps, self.use_cache = rms_norm_eps, use_cache
        self.attention_bias, self.attention_dropout, self.clip_qkv = attention_bias, attention_dropout, clip_qkv
        self.num_experts_per_tok, self.num_experts = num_experts_per_tok, num_experts
        self.output_router_logits, self.router_aux_loss_coef = output_router_logits, router_aux_loss_coef
        self.norm_topk_prob, self.qk_layernorm = norm_topk_prob, qk_layernorm
        self.moe_layer_freq = [1] * num_hidden_layers if moe_layer_freq is None else moe_layer_freq
        self.moe_router_enable_expert_bias = moe_router_enable_expert_bias
        self.moe_router_score_function, self.routed_scaling_factor = moe_router_score_function, routed_scaling_factor
        self.router_num_group, self.router_topk_group = router_num_group, router_topk_group
        self.mask_token_id = mask_token_id
        # transformers moves rope_theta / rope_scaling / partial_rotary_factor into `rope_parameters`
        self.rope_theta = rope_theta
        self.partial_rotary_factor = partial_rotary_factor
        self.rope_parameters = rope_parameters
        # The published file says "llada" (see the module docstring); this class is "lladamoe" whatever it read, so
        # the adapter registered for "lladamoe" serves the model.
        kwargs.pop("model_type", None)
        # The checkpoint's `auto_map` points at its remote modeling files; this class replaces them.
        kwargs.pop("auto_map", None)
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    @classmethod
    def get_config_dict(cls, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The config dict as published, with `model_type` "llada" read as "lladamoe" when the fields are
        LLaDA-MoE's (so loading the published file does not warn about a type mismatch)."""
        config_dict, kwargs = super().get_config_dict(*args, **kwargs)
        if config_dict.get("model_type") == "llada" and is_llada_moe_config(config_dict):
            config_dict = {**config_dict, "model_type": cls.model_type}
        return config_dict, kwargs

    def rotary_dimensions(self) -> int:
        """Leading dimensions of each head that RoPE turns (`partial_rotary_factor` of the head size)."""
        factor = (self.rope_parameters or {}).get("partial_rotary_factor", 1.0)
        return int(self.hidden_size // self.num_attention_heads * factor)

    def is_moe_layer(self, layer_idx: int) -> bool:
        """Whether block `layer_idx` has experts (`moe_layer_freq[layer_idx]` non-zero) or a dense feed-forward."""
        return self.moe_layer_freq[layer_idx] != 0

    def unsupported_fields(self) -> list[str]:
        """`field=value` for every setting the native model does not implement (empty for the published
        checkpoints)."""
        problems = []
        rope = self.rope_parameters or {}
        if rope.get("rope_type", "default") != "default":
            problems.append(f"rope_scaling / rope_parameters rope_type={rope.get('rope_type')!r} (only the default)")
        heads, kv_heads, layers = self.num_attention_heads, self.num_key_value_heads, self.num_hidden_layers
        if heads <= 0 or self.hidden_size % heads:
            problems.append(f"hidden_size={self.hidden_size} is not a multiple of num_attention_heads={heads}")
        else:
            factor = rope.get("partial_rotary_factor", 1.0)
            if not 0 < factor <= 1 or self.rotary_dimensions() % 2 or self.rotary_dimensions() == 0:
                problems.append(
                    f"partial_rotary_factor={factor} (must turn an even, non-zero part of the head, at most all of it)"
                )
            if kv_heads <= 0 or heads % kv_heads:
                problems.append(f"num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads}")
        if self.hidden_act not in ACT2FN:
            problems.append(f"hidden_act={self.hidden_act!r} (not a transformers activation)")
        if not isinstance(self.moe_layer_freq, (list, tuple)) or len(self.moe_layer_freq) != layers:
            problems.append(
                f"moe_layer_freq={self.moe_layer_freq!r} (must list 0 / 1 for each of the {layers} layers)"
            )
            return problems
        if any(self.is_moe_layer(i) for i in range(layers)):
            if self.num_experts <= 0 or not 0 < self.num_experts_per_tok <= self.num_experts:
                problems.append(
                    f"num_experts={self.num_experts}, num_experts_per_tok={self.num_experts_per_tok} (need "
                    "0 < num_experts_per_tok <= num_experts)"
                )
            if self.expert_intermediate_size is None or self.expert_intermediate_size <= 0:
                problems.append(f"expert_intermediate_size={self.expert_intermediate_size} (must be positive)")
            shared = self.shared_expert_intermediate_size
            if shared is not None and shared <= 0:
                problems.append(f"shared_expert_intermediate_size={shared} (positive, or null for no shared expert)")
        if not all(self.is_moe_layer(i) for i in range(layers)):
            dense = self.dense_intermediate_size
            if dense is None or dense <= 0:
                problems.append(f"dense_intermediate_size={dense} (a dense layer is listed in moe_layer_freq)")
        return problems
