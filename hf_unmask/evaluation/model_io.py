"""The evaluated model's inputs and outputs: prompts to left-padded token batches and the model facts evaluation needs
(diffusion `generate`, generation length). Encoding, the EOS set and decoding are `hf_unmask.generation.text_io`'s,
the same as training's."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from .._warnings import warn_at_caller
from ..generation import completion_eos_ids as _completion_eos_ids
from ..generation import completion_texts, encode_prompts, model_device
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
    """Deprecated: use `hf_unmask.generation.completion_eos_ids(model, tokenizer)` (an ordered list)."""
    warn_at_caller(
        "hf_unmask.evaluation.model_io.completion_eos_ids is deprecated and will be removed in the next release; use "
        "hf_unmask.generation.completion_eos_ids(model, tokenizer) instead.",
        FutureWarning,
    )
    return set(_completion_eos_ids(model, tokenizer))


def default_gen_length(model: Any) -> int:
    """L, the number of generated positions, when the caller gives none: the model's generation config's."""
    from ..generation.config import resolve_generation_config

    return resolve_generation_config(model, None, {}).gen_length


def decode_completions(
    sequences: torch.Tensor, prompt_length: int, tokenizer: Any, eos_ids: Iterable[int]
) -> list[str]:
    """Deprecated: use `hf_unmask.generation.completion_texts(tokenizer, sequences, prompt_length, eos_ids)`."""
    warn_at_caller(
        "hf_unmask.evaluation.decode_completions(sequences, prompt_length, tokenizer, eos_ids) is deprecated and will "
        "be removed in the next release; use hf_unmask.generation.completion_texts(tokenizer, sequences, "
        "prompt_length, eos_ids) instead.",
        FutureWarning,
    )
    return completion_texts(tokenizer, sequences, prompt_length, eos_ids)


def tokenize_batches(
    tokenizer: Any,
    prompts: Sequence[str],
    batch_size: int,
    chat_template: bool = False,
    add_special_tokens: bool = True,
) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """Left-padded `(start index, input_ids, attention_mask)` batches of `batch_size` prompts, each encoded by
    `hf_unmask.generation.encode_prompts`; the tokenizer is left as it was.

    `chat_template=True` renders each prompt as a user message with the tokenizer's chat template;
    `add_special_tokens=False` encodes prompts that already hold them (rendered by a chat template elsewhere).

    Example:
        ```python
        >>> from hf_unmask.models.tiny import build_tokenizer
        >>> [(start, ids, mask), *rest] = tokenize_batches(build_tokenizer(), ["sort : 3 1 2", "sort : 1", "x"], 2)
        >>> start, ids.shape[0], len(rest)
        (0, 2, 1)
        ```
    """
    if chat_template and getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("chat_template=True but the tokenizer has no chat template. Drop --chat-template.")
    batches = []
    for start in range(0, len(prompts), batch_size):
        batch = encode_prompts(
            tokenizer,
            list(prompts[start : start + batch_size]),
            chat_template=chat_template,
            add_special_tokens=None if chat_template else add_special_tokens,
        )
        batches.append((start, batch.input_ids, batch.attention_mask))
    return batches
