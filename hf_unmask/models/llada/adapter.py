"""The diffusion adapter of LLaDA (model_type "llada"): its special ids; logits need no shift.

What the original generation code does (ML-GSAI/LLaDA `generate.py`): the canvas is `[prompt | L x 126336]`;
logits are aligned (`logits[:, i]` predicts token i); EOS is `<|endoftext|>` 126081 (also the padding the SFT
data appends after an answer) and the Instruct chat template ends a turn with `<|eot_id|>` 126348; a padded batch
passes the HF-style 2-D `attention_mask`, extended with ones over the generated region.

The native `LLaDAModelLM` also takes `position_ids`, so a padded row gets positions counted from its first real
token (the default adapter behaviour). A model loaded from the checkpoint's own remote code takes none; RoPE then
runs over the absolute index, which only depends on the query-key offset once pad keys are hidden. (Early revisions
of the Hub `modeling_llada.py` accepted the mask but ignored it: with those, padded rows attend to their
padding.)
"""

from __future__ import annotations

from ...generation.adapter import DiffusionAdapter, register_adapter
from .configuration_llada import LLADA_EOS_TOKEN_ID, LLADA_EOT_TOKEN_ID, LLADA_MASK_TOKEN_ID


@register_adapter("llada")
class LLaDAAdapter(DiffusionAdapter):
    """Adapter for LLaDA checkpoints (the native `LLaDAModelLM`, or a model loaded from the remote code).

    Ids come from the generation config / config when they name them, otherwise the real LLaDA ids:
    mask 126336, EOS 126081 plus end-of-turn `<|eot_id|>` 126348, pad 126081.

    Example:
        ```python
        >>> from types import SimpleNamespace
        >>> from hf_unmask.models import LLaDAAdapter
        >>> adapter = LLaDAAdapter(SimpleNamespace(config=SimpleNamespace(model_type="llada")))
        >>> adapter.mask_token_id(), adapter.eos_token_ids()
        (126336, [126081, 126348])
        ```
    """

    default_mask_token_id = LLADA_MASK_TOKEN_ID
    default_eos_token_ids = (LLADA_EOS_TOKEN_ID,)
    default_pad_token_id = LLADA_EOS_TOKEN_ID
    end_of_turn_token_ids = (LLADA_EOT_TOKEN_ID,)
    supports_shadow_block = True
