"""The diffusion adapter of LLaDA2.x (model_type "llada2_moe"): block-causal, aligned logits, its special ids.

What the published generation code does (the `generate` of the modeling code the checkpoints ship): the canvas is
`[prompt | masks]` rounded up to whole blocks of `block_length` (32 by default, the trained size); blocks are
denoised left to right, each forward seeing the finished blocks and the current one through a block-causal 4-D mask
with positions `0..T-1`; logits are aligned (`logits[:, -block_length:]` are the current block's); the mask is
`<|mask|>` 156895 and EOS `<|endoftext|>` 156892, which the published config.json also names as the padding id.

The native `LLaDA2MoeModelLM` builds the same mask from a 2-D attention mask and `block_length=`, with blocks
counted from each row's first real token, so a left-padded row computes what it computes alone.
"""

from __future__ import annotations

from ...generation.adapter import DiffusionAdapter, register_adapter
from .configuration_llada2_moe import LLADA2_EOS_TOKEN_ID, LLADA2_MASK_TOKEN_ID, LLADA2_TRAINED_BLOCK_LENGTH


@register_adapter("llada2_moe")
class LLaDA2Adapter(DiffusionAdapter):
    """Adapter for LLaDA2.x checkpoints (the native `LLaDA2MoeModelLM`): block-causal attention, trained with
    blocks of 32, logits aligned.

    Ids come from the generation config / config when they name them, otherwise the published ones: mask 156895,
    EOS and pad 156892.

    Example:
        ```python
        >>> from types import SimpleNamespace
        >>> from hf_unmask.models.llada2 import LLaDA2Adapter
        >>> adapter = LLaDA2Adapter(SimpleNamespace(config=SimpleNamespace(model_type="llada2_moe")))
        >>> adapter.mask_token_id(), adapter.eos_token_ids(), adapter.block_causal, adapter.trained_block_length
        (156895, [156892], True, 32)
        ```
    """

    default_mask_token_id = LLADA2_MASK_TOKEN_ID
    default_eos_token_ids = (LLADA2_EOS_TOKEN_ID,)
    default_pad_token_id = LLADA2_EOS_TOKEN_ID
    block_causal = True
    trained_block_length = LLADA2_TRAINED_BLOCK_LENGTH
    supports_shadow_block = True
