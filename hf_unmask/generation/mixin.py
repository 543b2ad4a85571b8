"""Giving models a diffusion `generate`: a mixin for our own classes, a binder for already-loaded models."""

from __future__ import annotations

import functools
from typing import Any, Optional, Union

import torch
from transformers import GenerationMixin

from ..models.adapters import DiffusionAdapter, get_adapter, unwrap_model
from .loop import diffusion_generate


class DiffusionGenerationMixin(GenerationMixin):
    """Mix into a `PreTrainedModel` to make `model.generate(..., strategy=...)` the diffusion generator.

    Example:
        ```python
        >>> from hf_unmask import AutoDiffusionLM
        >>> model = AutoDiffusionLM.from_pretrained("hf-unmask/tiny-dllm")  # doctest: +SKIP
        >>> out = model.generate(input_ids, max_new_tokens=32, block_length=8)  # doctest: +SKIP
        ```
    """

    def generate(  # type: ignore[override]
        self,
        inputs: Optional[torch.Tensor] = None,
        generation_config: Any = None,
        logits_processor: Any = None,
        streamer: Any = None,
        strategy: Any = None,
        **kwargs: Any,
    ) -> Any:
        kwargs.pop("trust_remote_code", None)
        if "custom_generate" in kwargs:
            raise ValueError(f"{type(self).__name__} already generates by diffusion; drop custom_generate=...")
        return diffusion_generate(
            self,
            inputs=inputs,
            generation_config=generation_config,
            logits_processor=logits_processor,
            streamer=streamer,
            strategy=strategy,
            **kwargs,
        )

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

    The model family is recognised from `config.model_type` (see `hf_unmask.models.ADAPTER_REGISTRY`). The mask,
    EOS and pad ids are taken, in order, from the arguments, the model's generation config, its config and the
    tokenizer. Returns the same model object, with `model.generate` replaced for this instance only.

    Example:
        ```python
        >>> from transformers import AutoModelForMaskedLM, AutoTokenizer  # doctest: +SKIP
        >>> model = enable_diffusion_generate(AutoModelForMaskedLM.from_pretrained(path), tokenizer=tok)  # doctest: +SKIP
        >>> model.generate(input_ids, max_new_tokens=16, strategy="confidence_threshold")  # doctest: +SKIP
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
    # EOS: the configured ids plus the family's own end tokens (e.g. LLaDA's <|eot_id|> next to <|endoftext|>).
    configured = gen_config.eos_token_id
    eos = [] if configured is None else list(configured) if isinstance(configured, (list, tuple)) else [configured]
    eos += [e for e in adapter_obj.eos_token_ids() if e not in eos]
    if not eos and tokenizer is not None and getattr(tokenizer, "eos_token_id", None) is not None:
        eos = [tokenizer.eos_token_id]
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
    def generate(inputs: Optional[torch.Tensor] = None, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("trust_remote_code", None)
        kwargs.setdefault("adapter", adapter_obj)
        return diffusion_generate(model, inputs, *args, **kwargs)

    model.generate = generate
    model.diffusion_adapter = adapter_obj
    return model
