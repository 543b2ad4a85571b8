"""The diffusion adapter of LLaDA-MoE (model_type "lladamoe"): its special ids; logits need no shift.

What the published sampling code does (inclusionAI's dInfer): the canvas is `[prompt | L x 156895]` (`<|mask|>`);
logits are aligned (`logits[:, i]` predicts token i); EOS is `<|endoftext|>` 156892, and generation stops there.
The Instruct chat template ends a turn with `<|role_end|>`; the published sampling code does not stop at it, so
neither does this adapter by default (name more ids with `generate(eos_token_id=[...])`).

The native `LLaDAMoEModelLM` takes `position_ids` and a 2-D `attention_mask`, so a padded row gets positions counted
from its first real token and never attends to padding (the default adapter behaviour).
"""

from __future__ import annotations

from ...generation.adapter import DiffusionAdapter, register_adapter
from .configuration_llada_moe import LLADA_MOE_EOS_TOKEN_ID, LLADA_MOE_MASK_TOKEN_ID


@register_adapter("lladamoe")
class LLaDAMoEAdapter(DiffusionAdapter):
    """Adapter for LLaDA-MoE checkpoints (the native `LLaDAMoEModelLM`).

    Ids come from the generation config / config when they name them, otherwise the real LLaDA-MoE ids:
    mask 156895, EOS and pad 156892.

    Example:
        ```python
        >>> from types import SimpleNamespace
        >>> from hf_unmask.models.llada_moe import LLaDAMoEAdapter
        >>> adapter = LLaDAMoEAdapter(SimpleNamespace(config=SimpleNamespace(model_type="lladamoe")))
        >>> adapter.mask_token_id(), adapter.eos_token_ids(), adapter.pad_token_id()
        (156895, [156892], 156892)
        ```
    """

    default_mask_token_id = LLADA_MOE_MASK_TOKEN_ID
    default_eos_token_ids = (LLADA_MOE_EOS_TOKEN_ID,)
    default_pad_token_id = LLADA_MOE_EOS_TOKEN_ID
    supports_shadow_block = True
