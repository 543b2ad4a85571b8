"""Encoder masked LMs from transformers (BERT, RoBERTa, ModernBERT, ...) used as diffusion LMs.

`MaskedLMAdapter` (in `adapters.py`) already serves any `*ForMaskedLM` class. This module also registers the
common encoder `model_type`s, so that other heads of the same families (e.g. `BertLMHeadModel`, which has a
transformers `generate`) resolve too, and handles RoBERTa-style position ids.

The mask id is never hard-coded for these families: it comes from `generation_config.mask_token_id`, the model
config, or the tokenizer (`tokenizer.mask_token_id`) given to `AutoDiffusionLM` / `enable_diffusion_generate`.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from ..generation.adapter import ADAPTER_REGISTRY, MaskedLMAdapter, register_adapter, unwrap_model

#: Encoders whose absolute position ids start at 0: the default adapter (positions counted from the first real
#: token of a left-padded row) is right for them.
BERT_LIKE_MODEL_TYPES: tuple[str, ...] = (
    "albert",
    "bert",
    "big_bird",
    "convbert",
    "deberta",
    "deberta-v2",
    "distilbert",
    "electra",
    "ernie",
    "megatron-bert",
    "mobilebert",
    "modernbert",
    "mpnet",
    "nomic_bert",
    "roformer",
)

#: Encoders that number positions from `pad_token_id + 1` (fairseq convention).
ROBERTA_LIKE_MODEL_TYPES: tuple[str, ...] = (
    "camembert",
    "data2vec-text",
    "roberta",
    "roberta-prelayernorm",
    "xlm-roberta",
    "xlm-roberta-xl",
    "xmod",
)

for _model_type in BERT_LIKE_MODEL_TYPES:
    ADAPTER_REGISTRY.setdefault(_model_type, MaskedLMAdapter)


@register_adapter(*ROBERTA_LIKE_MODEL_TYPES)
class RobertaMaskedLMAdapter(MaskedLMAdapter):
    """RoBERTa-family masked LMs: position ids are `padding_idx + 1, padding_idx + 2, ...` over real tokens.

    RoBERTa derives positions from `input_ids != pad_token_id`; we derive them from the attention mask instead
    (the same numbers for a left-padded prompt), so the EOS/pad fill written into the canvas during generation
    never changes the positions of the tokens after it.

    Example:
        ```python
        >>> import torch
        >>> from types import SimpleNamespace
        >>> from hf_unmask.models import RobertaMaskedLMAdapter
        >>> model = SimpleNamespace(config=SimpleNamespace(model_type="roberta", pad_token_id=1), forward=lambda
        ...     input_ids, attention_mask=None, position_ids=None: None)
        >>> RobertaMaskedLMAdapter(model).model_inputs(torch.zeros(1, 3, dtype=torch.long),
        ...     torch.tensor([[0, 1, 1]]))["position_ids"].tolist()
        [[1, 2, 3]]
        ```
    """

    def model_inputs(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> dict[str, Any]:
        inputs: dict[str, Any] = {"input_ids": input_ids}
        keep = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
        if attention_mask is not None and self._accepts_attention_mask:
            inputs["attention_mask"] = keep
        if self._accepts_position_ids:
            padding_idx = getattr(getattr(unwrap_model(self.model), "config", None), "pad_token_id", None)
            padding_idx = 1 if padding_idx is None else int(padding_idx)
            inputs["position_ids"] = keep.cumsum(-1) * keep + padding_idx
        return inputs
