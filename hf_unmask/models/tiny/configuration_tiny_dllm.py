"""`TinyDLLMConfig`: configuration of the built-in tiny masked-diffusion transformer."""

from __future__ import annotations

from typing import Any, Optional

from transformers import PretrainedConfig


class TinyDLLMConfig(PretrainedConfig):
    """Configuration of `TinyDLLMForMaskedDiffusion`, a small bidirectional transformer with RoPE.

    Args:
        vocab_size: number of tokens of the word-level tokenizer.
        hidden_size: model width d.
        num_hidden_layers: number of transformer blocks.
        num_attention_heads: attention heads per block (must divide `hidden_size`).
        intermediate_size: width of the GELU feed-forward layer.
        rope_theta: base of the rotary position embedding; RoPE lets the model run at any length.
        conv_kernel_size: width of the depthwise convolution each block applies before attention (a local
            "token shift" that lets a token see its neighbours; odd, 0 disables it). It is translation-invariant,
            so the model still runs at any length.
        max_position_embeddings: longest sequence (prompt + L) the model is meant for: seen in training, or up to
            `max_gen_length` when that is set (RoPE has no table: `generate` warns beyond it).
        trained_gen_length: the longest L (generated positions: answer, then EOS padding) the model was trained
            with; `generate` warns when asked for more (`None`: unknown), unless `max_gen_length` says more is fine.
        max_gen_length: the longest L the checkpoint was checked to generate correctly at (e.g. twice
            `trained_gen_length` for a model trained over a range of L); `generate` warns only beyond it.
        layer_norm_eps: epsilon of the pre-norm LayerNorms.
        initializer_range: std of the normal initialisation.
        mask_token_id / pad_token_id / eos_token_id / bos_token_id: special token ids of the tokenizer.

    Example:
        ```python
        >>> from hf_unmask.models.tiny import TinyDLLMConfig
        >>> config = TinyDLLMConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2)
        >>> config.model_type, config.head_dim
        ('hf_unmask_tiny', 32)
        ```
    """

    model_type = "hf_unmask_tiny"

    def __init__(
        self,
        vocab_size: int = 64,
        hidden_size: int = 128,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int = 512,
        rope_theta: float = 10000.0,
        conv_kernel_size: int = 0,
        max_position_embeddings: int = 128,
        trained_gen_length: Optional[int] = None,
        max_gen_length: Optional[int] = None,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        mask_token_id: int = 1,
        pad_token_id: int = 0,
        eos_token_id: int = 2,
        bos_token_id: int = 3,
        **kwargs: Any,
    ) -> None:
        if hidden_size % num_attention_heads != 0:
            raise ValueError(
                f"hidden_size={hidden_size} must be a multiple of num_attention_heads={num_attention_heads}."
            )
        if (hidden_size // num_attention_heads) % 2 != 0:
            raise ValueError("hidden_size / num_attention_heads must be even for RoPE.")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.rope_theta = rope_theta
        if conv_kernel_size < 0 or (conv_kernel_size > 0 and conv_kernel_size % 2 == 0):
            raise ValueError(f"conv_kernel_size must be 0 or an odd positive integer, got {conv_kernel_size}.")
        self.conv_kernel_size = conv_kernel_size
        self.max_position_embeddings = max_position_embeddings
        self.trained_gen_length = trained_gen_length
        self.max_gen_length = max_gen_length
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.mask_token_id = mask_token_id
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(pad_token_id=pad_token_id, eos_token_id=eos_token_id, bos_token_id=bos_token_id, **kwargs)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads
