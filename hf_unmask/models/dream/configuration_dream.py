"""`DreamConfig`: the configuration of Dream checkpoints (Dream-org/Dream-v0-Base-7B, -Instruct-7B, Dream-Coder),
native.

Dream is Qwen2.5 trained as a masked diffusion LM, so its `config.json` holds Qwen2's field names plus
`mask_token_id`. The defaults are Dream-v0-Instruct-7B's values. `rope_theta` / `rope_scaling` are standardised into
transformers' `rope_parameters` (only the default rotary type is implemented).
"""

from __future__ import annotations

from typing import Any, Optional

from transformers import PretrainedConfig

DREAM_MASK_TOKEN_ID = 151666  # <|mask|>
DREAM_EOS_TOKEN_ID = 151643  # <|endoftext|>, also the padding
DREAM_END_OF_TURN_TOKEN_ID = 151645  # <|im_end|>, ends a turn of the Instruct chat template


class DreamConfig(PretrainedConfig):
    """Configuration of `DreamModel` (a bidirectional Qwen2: RMSNorm, q/k/v biases, grouped-query attention,
    SwiGLU, RoPE, untied `lm_head` whose output at position i predicts token i + 1).

    Example:
        ```python
        >>> from hf_unmask.models.dream import DreamConfig
        >>> config = DreamConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2)
        >>> config.head_dim, config.rope_parameters["rope_theta"], config.mask_token_id
        (16, 1000000.0, 151666)
        ```
    """

    model_type = "Dream"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(
        self,
        vocab_size: int = 152064,
        hidden_size: int = 3584,
        intermediate_size: int = 18944,
        num_hidden_layers: int = 28,
        num_attention_heads: int = 28,
        num_key_value_heads: Optional[int] = 4,
        hidden_act: str = "silu",
        max_position_embeddings: int = 131072,
        initializer_range: float = 0.02,
        rms_norm_eps: float = 1e-6,
        use_cache: bool = False,
        tie_word_embeddings: bool = False,
        rope_theta: float = 1000000.0,
        rope_parameters: Optional[dict[str, Any]] = None,
        use_sliding_window: bool = False,
        sliding_window: Optional[int] = None,
        max_window_layers: int = 28,
        attention_dropout: float = 0.0,
        mask_token_id: Optional[int] = DREAM_MASK_TOKEN_ID,
        pad_token_id: Optional[int] = DREAM_EOS_TOKEN_ID,
        bos_token_id: Optional[int] = DREAM_EOS_TOKEN_ID,
        eos_token_id: Optional[int] = DREAM_EOS_TOKEN_ID,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_attention_heads if num_key_value_heads is None else num_key_value_heads
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        self.use_sliding_window = use_sliding_window
        self.sliding_window = sliding_window if use_sliding_window else None
        self.max_window_layers = max_window_layers
        self.attention_dropout = attention_dropout
        self.mask_token_id = mask_token_id
        # transformers turns rope_theta / rope_scaling (Dream's config.json names) into `rope_parameters`
        self.rope_theta = rope_theta
        self.rope_parameters = rope_parameters
        kwargs.pop("auto_map", None)  # the checkpoint's remote modeling files are not used (see LLaDAConfig)
        super().__init__(
            tie_word_embeddings=tie_word_embeddings,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            **kwargs,
        )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def unsupported_fields(self) -> list[str]:
        """`field=value` for every setting the native model does not implement (empty for the published
        checkpoints)."""
        problems = []
        rope_type = (self.rope_parameters or {}).get("rope_type", "default")
        if rope_type != "default":
            problems.append(f"rope_scaling / rope_parameters rope_type={rope_type!r} (only the default RoPE)")
        if self.use_sliding_window:
            problems.append("use_sliding_window=True (Dream attends to the whole sequence)")
        if self.hidden_size % self.num_attention_heads:
            problems.append(
                f"hidden_size={self.hidden_size} is not a multiple of num_attention_heads={self.num_attention_heads}"
            )
        elif self.num_attention_heads % self.num_key_value_heads:
            problems.append(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        return problems
