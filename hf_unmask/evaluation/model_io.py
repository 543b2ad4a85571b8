"""The evaluated model's inputs and outputs: prompts to left-padded token batches, generated ids to completions cut
at EOS, and the model facts they need (diffusion `generate`, device, generation length, EOS ids)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from ..generation import cut_at_eos, eos_id_list, model_device
from ..models import unwrap_model

__all__ = [
    "completion_eos_ids",
    "decode_completions",
    "default_gen_length",
    "ensure_diffusion_generate",
    "model_device",
    "tokenize_batches",
]


def ensure_diffusion_generate(model: Any, tokenizer: Any) -> Any:
    """Give the model a diffusion `generate` if it has none (in place)."""
    from ..generation import DiffusionGenerationMixin, enable_diffusion_generate

    if isinstance(unwrap_model(model), DiffusionGenerationMixin) or hasattr(model, "diffusion_adapter"):
        return model
    return enable_diffusion_generate(model, tokenizer=tokenizer)


def completion_eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """The ids that end a completion: the EOS ids of the model's generation config and the tokenizer's."""
    ids: set[int] = set()
    gen_config = getattr(unwrap_model(model), "generation_config", None)
    value = getattr(gen_config, "eos_token_id", None) if gen_config is not None else None
    ids.update(int(v) for v in eos_id_list(value))
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def default_gen_length(model: Any) -> int:
    """L, the number of generated positions, when the caller gives none: the model's generation config's."""
    from ..generation.config import resolve_generation_config

    return resolve_generation_config(model, None, {}).gen_length


def decode_completions(
    sequences: torch.Tensor, prompt_length: int, tokenizer: Any, eos_ids: Iterable[int]
) -> list[str]:
    """Decode the generated part of each row, cut at its first EOS (special tokens dropped).

    Example:
        ```python
        >>> from hf_unmask.models import load_dllm
        >>> model, tokenizer = load_dllm("builtin")
        >>> [(start, input_ids, attention_mask)] = tokenize_batches(tokenizer, ["sort : 3 1 2", "sort : 5 2 7 1"], 8)
        >>> out = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=16)
        >>> decode_completions(out, input_ids.shape[1], tokenizer, completion_eos_ids(model, tokenizer))
        ['1 2 3', '1 2 5 7']
        ```
    """
    eos = set(eos_ids)
    rows = sequences[:, prompt_length:].tolist()
    return [tokenizer.decode(cut_at_eos(row, eos), skip_special_tokens=True).strip() for row in rows]


def tokenize_batches(
    tokenizer: Any,
    prompts: Sequence[str],
    batch_size: int,
    chat_template: bool = False,
    add_special_tokens: bool = True,
) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """Left-padded `(start index, input_ids, attention_mask)` batches; the tokenizer is left as it was.

    `add_special_tokens=False` encodes prompts that already hold them (rendered by a chat template elsewhere)."""
    if chat_template:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("chat_template=True but the tokenizer has no chat template. Drop --chat-template.")
        texts = [
            tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
            for p in prompts
        ]
        add_special = False
    else:
        texts, add_special = list(prompts), add_special_tokens
    old_side, old_pad = tokenizer.padding_side, tokenizer.pad_token
    try:
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ValueError("The tokenizer has neither a pad nor an EOS token; set tokenizer.pad_token first.")
            tokenizer.pad_token = tokenizer.eos_token
        batches = []
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(
                texts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=add_special,
            )
            batches.append((start, enc["input_ids"], enc["attention_mask"]))
    finally:
        tokenizer.padding_side = old_side
        if old_pad is None:
            tokenizer.pad_token = None
    return batches
