"""`SDARConfig`: the configuration of SDAR checkpoints (JetLM/SDAR-1.7B-Chat, -4B-Chat, -8B-Chat, ...), native.

SDAR is Qwen3 trained as a block-diffusion LM, so its `config.json` holds Qwen3's field names (with an explicit
`head_dim`) plus a few fields of SDAR's training code (`fuse_cross_entropy`, `ep_size`, `use_deepep`, ...; kept as
they are, unused at inference) and, in some copies, `block_size` and `mask_token_id`. The defaults are
JetLM/SDAR-4B-Chat's values. `rope_theta` / `rope_scaling` are standardised into transformers' `rope_parameters`
(only the default rotary type is implemented).

The published `config.json` names `"attn_implementation": "flex_attention"`, the backend of SDAR's training; the
published inference code never reads it, and neither does this class: pick a backend with
`from_pretrained(..., attn_implementation=...)` (default SDPA).
"""

from __future__ import annotations

from typing import Any, Optional

from transformers import PretrainedConfig

SDAR_MASK_TOKEN_ID = 151669  # <|MASK|>
SDAR_EOS_TOKEN_ID = 151643  # <|endoftext|>, also the padding and the bos of config.json
SDAR_END_OF_TURN_TOKEN_ID = 151645  # <|im_end|>, ends a turn of the chat template
#: The block size SDAR was trained with (`block_size` of its training config; `block_length` of its generate).
SDAR_TRAINED_BLOCK_LENGTH = 4


class SDARConfig(PretrainedConfig):
    """Configuration of `SDARForCausalLM` (Qwen3 blocks: RMSNorm, per-head RMSNorm of queries and keys, grouped-query
    attention, SwiGLU, RoPE; attention causal across blocks of `block_size` tokens and bidirectional inside one;
    `logits[:, i]` predicts token i).

    Example:
        ```python
        >>> from hf_unmask.models.sdar import SDARConfig
        >>> config = SDARConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=32)
        >>> config.head_dim, config.rope_parameters["rope_theta"], config.mask_token_id, config.block_size
        (32, 1000000, 151669, 4)
        ```
    """

    model_type = "sdar"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(
        self,
        vocab_size: int = 151936,
        hidden_size: int = 2560,
        intermediate_size: int = 9728,
        num_hidden_layers: int = 36,
        num_attention_heads: int = 32,
        num_key_value_heads: Optional[int] = 8,
        head_dim: Optional[int] = 128,
        hidden_act: str = "silu",
        max_position_embeddings: int = 32768,
        initializer_range: float = 0.02,
        rms_norm_eps: float = 1e-6,
        use_cache: bool = False,
        tie_word_embeddings: bool = False,
        rope_theta: float = 1000000,
        rope_parameters: Optional[dict[str, Any]] = None,
        attention_bias: bool = False,
        use_sliding_window: bool = False,
        sliding_window: Optional[int] = None,
        max_window_layers: int = 36,
        attention_dropout: float = 0.0,
        block_size: Optional[int] = SDAR_TRAINED_BLOCK_LENGTH,
        mask_token_id: Optional[int] = SDAR_MASK_TOKEN_ID,
        pad_token_id: Optional[int] = None,
        bos_token_id: Optional[int] = SDAR_EOS_TOKEN_ID,
        eos_token_id: Optional[int] = SDAR_EOS_TOKEN_ID,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_attention_heads if num_key_value_heads is None else num_key_value_heads
        self.head_dim = hidden_size // num_attention_heads if head_dim is None else head_dim
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        self.attention_bias = attention_bias
        self.use_sliding_window = use_sliding_window
        self.sliding_window = sliding_window
        self.max_window_layers = max_window_layers
        self.attention_dropout = attention_dropout
        self.block_size = SDAR_TRAINED_BLOCK_LENGTH if block_size is None else block_size
        self.mask_token_id = mask_token_id
        # transformers turns rope_theta / rope_scaling (SDAR's config.json names) into `rope_parameters`
        self.rope_theta = rope_theta
        self.rope_parameters = rope_parameters
        kwargs.pop("auto_map", None)  # the checkpoint's remote modeling files are not used
        kwargs.pop("attn_implementation", None)  # SDAR's training backend, see the module docstring
        super().__init__(
            tie_word_embeddings=tie_word_embeddings,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            **kwargs,
        )

    def unsupported_fields(self) -> list[str]:
        """`field=value` for every setting the native model does not implement (empty for the published
        checkpoints)."""
        problems = []
        rope_type = (self.rope_parameters or {}).get("rope_type", "default")
        if rope_type != "default":
            problems.append(f"rope_scaling / rope_parameters rope_type={rope_type!r} (only the default RoPE)")
        if self.use_sliding_window:
            problems.append("use_sliding_window=True (SDAR attends to every earlier block)")
        if self.hidden_act != "silu":
            problems.append(f"hidden_act={self.hidden_act!r} (SDAR's MLP is SwiGLU, silu)")
        if self.num_attention_heads % self.num_key_value_heads:
            problems.append(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        if self.head_dim % 2:
            problems.append(f"head_dim={self.head_dim} (rotary embeddings need an even head dimension)")
        block = self.block_size
        if isinstance(block, bool) or not isinstance(block, int) or block <= 0:
            problems.append(f"block_size={block!r} (a positive number of tokens)")
        return problems
