"""Giving models a diffusion `generate`: a mixin for our own classes, a binder for already-loaded models."""

from __future__ import annotations

import functools
from typing import Any, Optional, Union

from transformers import GenerationMixin

from .adapter import DiffusionAdapter, get_adapter, unwrap_model
from .inputs import normalize_generate_arguments
from .loop import diffusion_generate
from .text_io import completion_eos_ids


class DiffusionGenerationMixin(GenerationMixin):
    """Mix into a `PreTrainedModel` to make `model.generate(..., strategy=...)` the diffusion generator.

    `generate` takes its arguments the way transformers' `generate` does (positional `inputs`, `input_ids=`,
    `**tokenizer(...)`, `**tokenizer.apply_chat_template(..., return_dict=True)`) plus the diffusion options of
    `diffusion_generate`.

    Example:
        ```python
        >>> import hf_unmask
        >>> model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
        >>> batch = tokenizer(["trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6"], return_tensors="pt")
        >>> model.generate(**batch, max_new_tokens=16, block_length=8).shape[1] == batch["input_ids"].shape[1] + 16
        True
        ```
    """

    def generate(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Diffusion generation; see `hf_unmask.diffusion_generate` for the arguments."""
        return diffusion_generate(self, **normalize_generate_arguments(args, kwargs))

    @classmethod
    def can_generate(cls) -> bool:
        return True


def enable_diffusion_generate(
    model: Any,
    tokenizer: Any = None,
    adapter: Optional[Union[type[DiffusionAdapter], DiffusionAdapter]] = None,
    mask_token_id: Optional[int] = None,
) -> Any:
    """Give an already-loaded model (transformers, remote-code or `PeftModel`) a diffusion `generate`.

    The model family is recognised from `config.model_type` (see `hf_unmask.models.ADAPTER_REGISTRY`). The mask
    and pad ids are taken, in order, from the arguments, the model's generation config, its config and the
    tokenizer; the EOS ids are `hf_unmask.generation.completion_eos_ids` (the family's, then the tokenizer's). Returns the same model object, with `model.generate` replaced for this instance only.

    Example:
        ```python
        >>> import torch
        >>> from transformers import BertConfig, BertForMaskedLM
        >>> config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        ...                     intermediate_size=64)
        >>> bert = BertForMaskedLM(config)  # e.g. AutoModelForMaskedLM.from_pretrained(...), then tokenizer=...
        >>> model = enable_diffusion_generate(bert, mask_token_id=3)
        >>> model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=4, strategy="confidence_threshold").shape
        torch.Size([1, 7])
        ```
    """
    adapter_obj = get_adapter(model, adapter)
    from .config import DiffusionGenerationConfig
    from .loop import resolve_generation_config

    base = unwrap_model(model)
    gen_config = resolve_generation_config(base, getattr(base, "generation_config", None), {})
    ids = {
        "mask_token_id": mask_token_id,
        "eos_token_id": None,
        "pad_token_id": None,
    }
    if ids["mask_token_id"] is None:
        ids["mask_token_id"] = (
            gen_config.mask_token_id if gen_config.mask_token_id is not None else adapter_obj.mask_token_id()
        )
    if ids["mask_token_id"] is None and tokenizer is not None:
        ids["mask_token_id"] = getattr(tokenizer, "mask_token_id", None)
    # EOS: the ids that end a completion everywhere (the family's, e.g. LLaDA's <|eot_id|> next to <|endoftext|>,
    # then the tokenizer's), stored so that every later `generate` call reads the same set.
    eos = completion_eos_ids(model, tokenizer, adapter=adapter_obj)
    ids["eos_token_id"] = (eos[0] if len(eos) == 1 else eos) if eos else None
    if gen_config.pad_token_id is None:
        pad = adapter_obj.pad_token_id()
        if pad is None and tokenizer is not None:
            pad = getattr(tokenizer, "pad_token_id", None)
        ids["pad_token_id"] = pad
    for key, value in ids.items():
        if value is not None:
            setattr(gen_config, key, value)
    if not isinstance(gen_config, DiffusionGenerationConfig):  # pragma: no cover - resolve always converts
        gen_config = DiffusionGenerationConfig(**gen_config.to_dict())
    base.generation_config = gen_config

    @functools.wraps(diffusion_generate)
    def generate(*args: Any, **kwargs: Any) -> Any:
        kwargs = normalize_generate_arguments(args, kwargs)
        kwargs.setdefault("adapter", adapter_obj)
        return diffusion_generate(model, **kwargs)

    model.generate = generate
    model.diffusion_adapter = adapter_obj
    return model
