"""`LLaDA2MoeConfig`: the configuration of the LLaDA2.x checkpoints (inclusionAI/LLaDA2.0-mini, LLaDA2.0-flash,
LLaDA2.1-mini, LLaDA2.1-flash), native.

The field names and defaults are those of the published configuration class, so a checkpoint's
`config.json` loads as it is (the values of a field it omits are the published defaults) and saves back with the same
keys. LLaDA2.1 ships the same class, except that `num_key_value_heads=0` means "as many as the query heads"; that
reading is used here for both. `rope_theta` / `rope_scaling` / `partial_rotary_factor` are also standardised into
transformers' `rope_parameters` (only the default rotary type is implemented).

Fields some published `config.json` files carry that the published modeling code never reads (`score_function`,
`norm_topk_prob`, `moe_router_enable_expert_bias`, `router_dtype`, `rotary_dim`, `moe_shared_expert_intermediate_size`,
...) are kept; when one of them asks for something other than what that code does, `unsupported_fields` names it.
"""

from __future__ import annotations

from typing import Any, Optional

from transformers import PretrainedConfig
from transformers.activations import ACT2FN

LLADA2_MASK_TOKEN_ID = 156895  # <|mask|>, the published generate's mask_id default
LLADA2_EOS_TOKEN_ID = 156892  # <|endoftext|>, the published generate's eos_id default, also the checkpoints' pad id
#: The block size LLaDA2.x was trained (and its published generate runs) with.
LLADA2_TRAINED_BLOCK_LENGTH = 32

# Fields of published config.json files that the published modeling code ignores, with the value it behaves as.
_IMPLIED_BY_THE_PUBLISHED_CODE: dict[str, Any] = {
    "score_function": "sigmoid",
    "norm_topk_prob": True,
    "moe_router_enable_expert_bias": True,
    "router_dtype": "fp32",
    "use_rmsnorm": True,
    "using_split_qkv_in_self_attention": False,
    "num_nextn_predict_layers": 0,
}


class LLaDA2MoeConfig(PretrainedConfig):
    """Configuration of `LLaDA2MoeModelLM` (LLaDA2.x: a block-diffusion Mixture-of-Experts transformer).

    The network: RMSNorm pre-norm blocks; attention with one fused `query_key_value` projection, grouped-query heads
    (`num_key_value_heads`), RMSNorm on queries and keys (`use_qk_norm`), RoPE (`rope_theta`) on the first
    `partial_rotary_factor` of each head; a dense SwiGLU MLP (`intermediate_size`) in the first
    `first_k_dense_replace` layers, then Mixture-of-Experts layers: `num_experts` SwiGLU experts of width
    `moe_intermediate_size`, `num_experts_per_tok` chosen per token by sigmoid gate scores plus a per-expert bias
    within the `topk_group` best of `n_group` expert groups, weighted by the unbiased scores (normalised, times
    `routed_scaling_factor`), plus `num_shared_experts` always-on experts.

    Args:
        hidden_size / num_hidden_layers / num_attention_heads / num_key_value_heads / head_dim: the transformer's
            sizes (`num_key_value_heads` 0 = `num_attention_heads`; `head_dim` None = `hidden_size //
            num_attention_heads`).
        use_qkv_bias / use_bias: biases of `query_key_value` / of the attention output `dense`.
        partial_rotary_factor: the share of each head that RoPE rotates (its first channels).
        mask_token_id: the mask id (156895, not in the published config.json); pad_token_id: 156892 in the published
            config.json.

    Example:
        ```python
        >>> from hf_unmask.models.llada2 import LLaDA2MoeConfig
        >>> config = LLaDA2MoeConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
        ...                          intermediate_size=64, moe_intermediate_size=16, num_experts=8, n_group=4,
        ...                          topk_group=2, first_k_dense_replace=1)
        >>> config.head_dim, config.rotary_dimension(), config.mask_token_id, config.unsupported_fields()
        (8, 4, 156895, [])
        ```
    """

    model_type = "llada2_moe"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(
        self,
        vocab_size: int = 30592,
        hidden_size: int = 1024,
        intermediate_size: Optional[int] = None,
        num_hidden_layers: int = 24,
        num_attention_heads: int = 16,
        num_key_value_heads: Optional[int] = 0,
        hidden_act: str = "silu",
        use_qkv_bias: bool = False,
        use_qk_norm: bool = True,
        use_bias: bool = True,
        rms_norm_eps: float = 1e-05,
        norm_head: bool = False,
        tie_word_embeddings: bool = False,
        embedding_dropout: float = 0.1,
        attention_dropout: float = 0.1,
        output_dropout: float = 0.1,
        initializer_range: float = 0.02,
        max_position_embeddings: int = 16384,
        rope_theta: float = 10000.0,
        rope_parameters: Optional[dict[str, Any]] = None,
        use_cache: bool = True,
        use_sliding_window: bool = False,
        sliding_window: Optional[int] = 4096,
        max_window_layers: int = 28,
        pad_token_id: Optional[int] = 126081,
        num_experts: Optional[int] = 16,
        num_shared_experts: Optional[int] = 0,
        num_experts_per_tok: int = 2,
        n_group: int = 8,
        topk_group: int = 4,
        routed_scaling_factor: float = 2.5,
        moe_intermediate_size: Optional[int] = None,
        first_k_dense_replace: int = 0,
        head_dim: Optional[int] = None,
        output_router_logits: bool = False,
        partial_rotary_factor: float = 0.5,
        mask_token_id: Optional[int] = LLADA2_MASK_TOKEN_ID,
        **kwargs: Any,
    ) -> None:
        self.vocab_size, self.hidden_size, self.intermediate_size = vocab_size, hidden_size, intermediate_size
        self.num_hidden_layers, self.num_attention_heads = num_hidden_layers, num_attention_heads
        # LLaDA2.1's reading: 0 (or None) key-value heads means one per query head
        self.num_key_value_heads = num_key_value_heads or num_attention_heads
        self.hidden_act, self.use_qkv_bias, self.use_qk_norm = hidden_act, use_qkv_bias, use_qk_norm
        self.use_bias, self.rms_norm_eps, self.norm_head = use_bias, rms_norm_eps, norm_head
        self.embedding_dropout, self.attention_dropout = embedding_dropout, attention_dropout
        self.output_dropout, self.initializer_range = output_dropout, initializer_range
        self.max_position_embeddings, self.use_cache = max_position_embeddings, use_cache
        self.use_sliding_window, self.sliding_window = use_sliding_window, sliding_window
        self.max_window_layers = max_window_layers
        self.head_dim = head_dim or hidden_size // num_attention_heads
        self.num_experts, self.num_shared_experts = num_experts, num_shared_experts
        self.num_experts_per_tok, self.n_group, self.topk_group = num_experts_per_tok, n_group, topk_group
        self.routed_scaling_factor, self.moe_intermediate_size = routed_scaling_factor, moe_intermediate_size
        self.first_k_dense_replace, self.output_router_logits = first_k_dense_replace, output_router_logits
        self.partial_rotary_factor, self.mask_token_id = partial_rotary_factor, mask_token_id
        # transformers turns rope_theta / rope_scaling / partial_rotary_factor into `rope_parameters`
        self.rope_theta = rope_theta
        self.rope_parameters = rope_parameters
        # The checkpoint's `auto_map` points at its remote modeling files; this class replaces them, and a folder
        # saved from it holds no such files, so the key is not carried over.
        kwargs.pop("auto_map", None)
        super().__init__(pad_token_id=pad_token_id, tie_word_embeddings=tie_word_embeddings, **kwargs)

    def rotary_dimension(self) -> int:
        """Channels of each head that RoPE rotates, `int(head_dim * partial_rotary_factor)` (the first ones)."""
        return int(self.head_dim * self.partial_rotary_factor)

    def is_moe_layer(self, layer_idx: int) -> bool:
        """Whether layer `layer_idx` has the Mixture-of-Experts block (else the dense MLP), as published."""
        return self.num_experts is not None and layer_idx >= self.first_k_dense_replace

    def unsupported_fields(self) -> list[str]:
        """`field=value` for every setting the native model does not implement (empty for the published
        checkpoints)."""
        problems = []
        rope_type = (self.rope_parameters or {}).get("rope_type", "default")
        if rope_type != "default":
            problems.append(f"rope_scaling / rope_parameters rope_type={rope_type!r} (only the default RoPE)")
        if self.use_sliding_window:
            problems.append(
                "use_sliding_window=True (the published forward ignores it with its sdpa and eager attention, so a "
                "window's meaning is undefined; the native model attends to every allowed key)"
            )
        if self.norm_head:
            problems.append("norm_head=True (the published modeling code has no normalised head: lm_head is plain)")
        if self.hidden_act not in ACT2FN:
            problems.append(f"hidden_act={self.hidden_act!r} (not a transformers activation)")
        if self.num_attention_heads % self.num_key_value_heads:
            problems.append(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        rotary = self.rotary_dimension()
        if rotary <= 0 or rotary % 2 or rotary > self.head_dim:
            problems.append(
                f"partial_rotary_factor={self.partial_rotary_factor} (gives {rotary} rotary channels of "
                f"head_dim={self.head_dim}; they must be a positive even number)"
            )
        declared_rotary = getattr(self, "rotary_dim", None)
        if declared_rotary is not None and declared_rotary != rotary:
            problems.append(f"rotary_dim={declared_rotary} (the published code rotates {rotary} channels)")
        for name, implied in _IMPLIED_BY_THE_PUBLISHED_CODE.items():
            value = getattr(self, name, None)
            if value is not None and value != implied:
                problems.append(f"{name}={value!r} (the published modeling code always behaves as {implied!r})")
        layers = range(self.num_hidden_layers)
        if any(not self.is_moe_layer(i) for i in layers) and not self.intermediate_size:
            problems.append(f"intermediate_size={self.intermediate_size} (the dense layers need a width)")
        if any(self.is_moe_layer(i) for i in layers):
            problems += self._moe_problems()
        return problems

    def _moe_problems(self) -> list[str]:
        problems = []
        experts, groups = self.num_experts, self.n_group
        if not self.moe_intermediate_size:
            problems.append(f"moe_intermediate_size={self.moe_intermediate_size} (the experts need a width)")
        if groups <= 0 or experts % groups or experts // groups < 2:
            problems.append(
                f"n_group={groups} with num_experts={experts} (the groups must split the experts evenly, at least "
                "2 per group: a group is scored by its 2 best experts)"
            )
        elif not 0 < self.topk_group <= groups:
            problems.append(f"topk_group={self.topk_group} (between 1 and n_group={groups})")
        elif not 0 < self.num_experts_per_tok <= (kept := self.topk_group * (experts // groups)):
            problems.append(
                f"num_experts_per_tok={self.num_experts_per_tok} (between 1 and the {kept} experts of the kept groups)"
            )
        shared_width = getattr(self, "moe_shared_expert_intermediate_size", None)
        expected = (self.moe_intermediate_size or 0) * (self.num_shared_experts or 0)
        if shared_width is not None and shared_width != expected:
            problems.append(
                f"moe_shared_expert_intermediate_size={shared_width} (the published code sizes the shared experts "
                f"moe_intermediate_size x num_shared_experts = {expected})"
            )
        return problems
