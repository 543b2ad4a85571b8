"""The diffusion adapter of the built-in tiny dLLM."""

from __future__ import annotations

from typing import Any, Optional

import torch

from ...generation.adapter import DiffusionAdapter, LengthLimit, register_adapter


@register_adapter("hf_unmask_tiny")
class TinyDLLMAdapter(DiffusionAdapter):
    """Adapter of `TinyDLLMForMaskedDiffusion`: unshifted logits; mask/EOS ids from the config (these defaults
    match the built-in tokenizer: `[MASK]` = 1, `[EOS]` = 2).

    Example:
        ```python
        >>> import hf_unmask
        >>> from hf_unmask.models import get_adapter
        >>> model, _ = hf_unmask.load_builtin_model("tiny-dllm-small")
        >>> adapter = get_adapter(model)
        >>> type(adapter).__name__, adapter.mask_token_id(), adapter.eos_token_ids()
        ('TinyDLLMAdapter', 1, [2])
        ```
    """

    default_mask_token_id = 1
    default_eos_token_ids = (2,)
    supports_shadow_block = True

    def trained_generation_length(self) -> Optional[LengthLimit]:
        """`config.trained_gen_length`: the longest L the checkpoint was trained with (None: unknown)."""
        return self._config_length("trained_gen_length")

    def max_generation_length(self) -> Optional[LengthLimit]:
        """`config.max_gen_length`: the longest L the checkpoint was checked to generate at (None: not stated)."""
        return self._config_length("max_gen_length")

    def verification_inputs(self, inputs: dict[str, Any], real: torch.Tensor, shadow_length: int) -> dict[str, Any]:
        """The local mixer convolves the shadow block on its own (`local_segments`: 1 = canvas, 2 = shadow,
        0 = padding), so the shadow never mixes with the canvas's last positions."""
        shadow = torch.full((real.shape[0], shadow_length), 2, dtype=torch.long, device=real.device)
        return {**inputs, "local_segments": torch.cat([real.long(), shadow], dim=1)}
