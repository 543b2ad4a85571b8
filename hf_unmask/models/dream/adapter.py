"""The diffusion adapter of Dream (model_type "Dream"): logits shifted by one, Dream's special ids.

What the original generation code does (DreamLM/Dream `generation_utils.py`): Dream is initialised from an
autoregressive LM and keeps its next-token head, so the output at position i-1 predicts token i and generation
shifts the logits right by one, `cat([l[:, :1], l[:, :-1]], dim=1)`; mask `<|mask|>` 151666; `<|endoftext|>`
151643 is both EOS and pad (the Instruct chat template ends a turn with `<|im_end|>` 151645). For a padded batch
Dream builds a 4-D boolean mask and position ids `keep.cumsum(-1) - 1`; the native `DreamModel` takes the 2-D mask
and the same positions (the default adapter behaviour), hiding padding keys from every query.
"""

from __future__ import annotations

from ...generation.adapter import DiffusionAdapter, register_adapter
from .configuration_dream import DREAM_END_OF_TURN_TOKEN_ID, DREAM_EOS_TOKEN_ID, DREAM_MASK_TOKEN_ID


@register_adapter("Dream", "dream")
class DreamAdapter(DiffusionAdapter):
    """Adapter for Dream checkpoints: shifts the logits by one so that `logits[:, i]` predicts token i.

    Default ids: mask 151666, EOS and pad 151643 (plus end-of-turn `<|im_end|>` 151645).

    Example:
        ```python
        >>> import torch
        >>> from types import SimpleNamespace
        >>> from hf_unmask.models import DreamAdapter
        >>> adapter = DreamAdapter(SimpleNamespace(config=SimpleNamespace(model_type="Dream")))
        >>> adapter.mask_token_id(), adapter.eos_token_ids(), adapter.pad_token_id()
        (151666, [151643, 151645], 151643)
        >>> adapter.align_logits(torch.arange(3.0).view(1, 3, 1)).flatten().tolist()
        [0.0, 0.0, 1.0]
        ```
    """

    default_mask_token_id = DREAM_MASK_TOKEN_ID
    default_eos_token_ids = (DREAM_EOS_TOKEN_ID,)
    default_pad_token_id = DREAM_EOS_TOKEN_ID
    end_of_turn_token_ids = (DREAM_END_OF_TURN_TOKEN_ID,)
    shift_logits = True
    supports_shadow_block = True
