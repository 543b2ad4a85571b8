"""LLaDA (GSAI-ML/LLaDA-8B-Base, GSAI-ML/LLaDA-8B-Instruct, ...): `model_type` "llada", remote code.

What the original code does (ML-GSAI/LLaDA `generate.py`, HF `modeling_llada.py`):

* the canvas is `[prompt | L x 126336]`; logits are aligned (`logits[:, i]` predicts token i);
* EOS is `<|endoftext|>` 126081 (also the padding the SFT data appends after an answer) and the Instruct chat
  template ends a turn with `<|eot_id|>` 126348;
* `LLaDAModelLM.forward(input_ids, inputs_embeds, attention_mask, attention_bias, ...)` has **no** `position_ids`
  argument: RoPE uses the absolute index 0..T-1 of the padded sequence. RoPE only depends on the offset between
  query and key, so once pad keys are masked a left-padded row sees exactly what it sees alone;
* batched generation passes the HF-style 2-D `attention_mask` (1 = token, 0 = pad), extended with ones over the
  generated region, and only when the batch is actually padded (`model(x, attention_mask=attention_mask)`); the
  model turns it into an additive key bias.

Caveat: early revisions of the Hub `modeling_llada.py` hard-code `attn_mask=None` in attention, so they accept
the mask but ignore it (ML-GSAI/LLaDA issues #89 and #90). With such a revision a padded row attends to its pad
tokens and batched results differ from unpadded ones; update the checkpoint's modeling code or batch prompts of
equal length.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from .adapters import DiffusionAdapter, register_adapter

LLADA_MASK_TOKEN_ID = 126336
LLADA_EOS_TOKEN_ID = 126081
LLADA_EOT_TOKEN_ID = 126348


@register_adapter("llada")
class LLaDAAdapter(DiffusionAdapter):
    """Adapter for LLaDA checkpoints (`trust_remote_code=True`, loaded through `AutoModel`).

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
    default_eos_token_ids = (LLADA_EOS_TOKEN_ID, LLADA_EOT_TOKEN_ID)
    default_pad_token_id = LLADA_EOS_TOKEN_ID
    end_of_turn_token_id = LLADA_EOT_TOKEN_ID

    def eos_token_ids(self) -> list[int]:
        ids = super().eos_token_ids()
        # The real vocabulary: a config naming only <|endoftext|> still ends Instruct turns with <|eot_id|>.
        if LLADA_EOS_TOKEN_ID in ids and self.end_of_turn_token_id not in ids:
            ids.append(self.end_of_turn_token_id)
        return ids

    def pad_token_id(self) -> Optional[int]:
        value = super().pad_token_id()
        return value if value is not None else self.default_pad_token_id

    def model_inputs(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> dict[str, Any]:
        """`input_ids`, plus the 2-D padding mask when the batch is padded; never `position_ids` (LLaDA takes none)."""
        inputs: dict[str, Any] = {"input_ids": input_ids}
        if attention_mask is not None:
            inputs["attention_mask"] = attention_mask.long()
        return inputs
