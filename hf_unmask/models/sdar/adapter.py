"""The diffusion adapter of SDAR (model_type "sdar"): block-causal attention, trained block size 4, SDAR's ids.

What the original generation code does (JetAstra/SDAR `generate.py`): the canvas is the prompt followed by
`<|MASK|>` 151669 up to a whole number of blocks of `block_length` (default 4, the trained block size); blocks are
counted from position 0 and decoded left to right; the model sees a block-causal mask (a query sees its own block
and every earlier block) and its logits are aligned (`logits[:, i]` predicts token i). It stops at the ids of
generation_config.json, `<|im_end|>` 151645 (end of an assistant turn in the chat template) and `<|endoftext|>`
151643 (also the padding). Batches are not padded there (one prompt at a time); the native `SDARForCausalLM` takes
the 2-D mask and position ids counted from each row's first real token, so blocks start at each row's first real
token and a left-padded row computes what it computes alone.
"""

from __future__ import annotations

from ...generation.adapter import DiffusionAdapter, register_adapter, unwrap_model
from .configuration_sdar import (
    SDAR_END_OF_TURN_TOKEN_ID,
    SDAR_EOS_TOKEN_ID,
    SDAR_MASK_TOKEN_ID,
    SDAR_TRAINED_BLOCK_LENGTH,
)


@register_adapter("sdar")
class SDARAdapter(DiffusionAdapter):
    """Adapter for SDAR checkpoints: block-causal, trained with blocks of 4 tokens, logits aligned.

    Default ids: mask 151669, EOS and pad 151643 (plus end-of-turn `<|im_end|>` 151645).

    Example:
        ```python
        >>> from types import SimpleNamespace
        >>> from hf_unmask.models.sdar import SDARAdapter
        >>> adapter = SDARAdapter(SimpleNamespace(config=SimpleNamespace(model_type="sdar")))
        >>> adapter.mask_token_id(), adapter.eos_token_ids(), adapter.pad_token_id()
        (151669, [151643, 151645], 151643)
        >>> adapter.block_causal, adapter.trained_block_length, adapter.shift_logits
        (True, 4, False)
        ```
    """

    default_mask_token_id = SDAR_MASK_TOKEN_ID
    default_eos_token_ids = (SDAR_EOS_TOKEN_ID,)
    default_pad_token_id = SDAR_EOS_TOKEN_ID
    end_of_turn_token_ids = (SDAR_END_OF_TURN_TOKEN_ID,)
    block_causal = True
    supports_shadow_block = True

    @property
    def trained_block_length(self) -> int:  # type: ignore[override]
        """The config's `block_size` when it names one (the -b8 / -b16 / ... variants), else 4."""
        config = getattr(unwrap_model(self.model), "config", None)
        size = getattr(config, "block_size", None)
        return int(size) if size else SDAR_TRAINED_BLOCK_LENGTH
