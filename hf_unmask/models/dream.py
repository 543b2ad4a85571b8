"""Dream (Dream-org/Dream-v0-Base-7B, Dream-org/Dream-v0-Instruct-7B): `model_type` "Dream", remote code.

What the original code does (DreamLM/Dream `generation_utils.py`, `modeling_dream.py`):

* Dream is initialised from an autoregressive LM and keeps its next-token head: the output at position i-1
  predicts token i, so its generation shifts the logits right by one, `cat([l[:, :1], l[:, :-1]], dim=1)`;
* mask `<|mask|>` 151666; `<|endoftext|>` 151643 is both EOS and pad;
* the model is called as `model(x, attention_mask, tok_idx)` (positional: `input_ids, attention_mask,
  position_ids`). When the batch is padded the 2-D mask is extended with ones over the generated region and
  turned into a 4-D **boolean** mask `[B, 1, N, N]` (`mask[b, 0, i, j] = keep[b, i] and keep[b, j]`), and the
  position ids are `keep.cumsum(-1) - 1` with pad positions set to 1. When nothing is padded Dream passes the
  string "full" and no position ids; its SDPA attention treats any non-tensor mask as "no mask", so we pass none.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from .adapters import DiffusionAdapter, register_adapter

DREAM_MASK_TOKEN_ID = 151666
DREAM_EOS_TOKEN_ID = 151643


def dream_attention_inputs(attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dream's padded-batch inputs from a 2-D keep mask: `(4-D bool attention mask [B, 1, N, N], position ids)`.

    Example:
        ```python
        >>> import torch
        >>> mask, pos = dream_attention_inputs(torch.tensor([[0, 1, 1]]))
        >>> pos.tolist(), mask.shape
        ([[1, 0, 1]], torch.Size([1, 1, 3, 3]))
        ```
    """
    keep = attention_mask.bool()
    position_ids = keep.long().cumsum(-1) - 1
    position_ids = position_ids.masked_fill(~keep, 1)
    mask_4d = keep[:, None, None, :] & keep[:, None, :, None]
    return mask_4d, position_ids


@register_adapter("Dream", "dream")
class DreamAdapter(DiffusionAdapter):
    """Adapter for Dream checkpoints (`trust_remote_code=True`, loaded through `AutoModel`).

    Shifts the logits by one so that `logits[:, i]` predicts token i, and builds Dream's 4-D boolean attention
    mask and position ids for padded batches. Default ids: mask 151666, EOS and pad 151643.

    Example:
        ```python
        >>> import torch
        >>> from types import SimpleNamespace
        >>> from hf_unmask.models import DreamAdapter
        >>> adapter = DreamAdapter(SimpleNamespace(config=SimpleNamespace(model_type="Dream")))
        >>> adapter.mask_token_id(), adapter.eos_token_ids(), adapter.pad_token_id()
        (151666, [151643], 151643)
        >>> adapter.align_logits(torch.arange(3.0).view(1, 3, 1)).flatten().tolist()
        [0.0, 0.0, 1.0]
        ```
    """

    default_mask_token_id = DREAM_MASK_TOKEN_ID
    default_eos_token_ids = (DREAM_EOS_TOKEN_ID,)
    default_pad_token_id = DREAM_EOS_TOKEN_ID
    shift_logits = True

    def pad_token_id(self) -> Optional[int]:
        value = super().pad_token_id()
        return value if value is not None else self.default_pad_token_id

    def model_inputs(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> dict[str, Any]:
        """`input_ids`, plus Dream's 4-D boolean mask and cumulative position ids when the batch is padded."""
        inputs: dict[str, Any] = {"input_ids": input_ids}
        if attention_mask is not None:
            inputs["attention_mask"], inputs["position_ids"] = dream_attention_inputs(attention_mask)
        return inputs
