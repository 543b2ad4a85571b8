"""Run a diffusion LM on a built-in task and score it with the task's verifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch

from .._warnings import warn_at_caller
from ..generation import completion_eos_ids, completion_texts, encode_prompts, model_device
from .base import VerifiableTask


def decode_completion(tokenizer: Any, ids: Sequence[int], eos_token_ids: Optional[Sequence[int]] = None) -> str:
    """Deprecated: use `hf_unmask.generation.completion_texts(tokenizer, [ids], 0, eos_token_ids)[0]`."""
    warn_at_caller(
        "hf_unmask.tasks.evaluate.decode_completion is deprecated and will be removed in the next release; use "
        "hf_unmask.generation.completion_texts(tokenizer, [ids], 0, eos_token_ids)[0] instead.",
        FutureWarning,
    )
    eos = list(eos_token_ids) if eos_token_ids is not None else [tokenizer.eos_token_id]
    return completion_texts(tokenizer, [list(ids)], 0, eos)[0]


@torch.no_grad()
def generate_completions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    strategy: Any = None,
    batch_size: int = 256,
    **generate_kwargs: Any,
) -> list[str]:
    """Generate one completion per prompt with `model.generate(..., strategy=strategy, **generate_kwargs)`.

    Prompts are encoded, left-padded in batches of `batch_size`, and completions cut at the first EOS and decoded
    by `hf_unmask.generation.text_io` (the tokenizer is left as it was).

    Example:
        ```python
        >>> import hf_unmask
        >>> model, tok = hf_unmask.load_builtin_model("tiny-dllm")
        >>> generate_completions(model, tok, ["sort : 3 1 2", "cups : a | ab bc cd de ae ab bc cd de ae ab | run 5"])
        ['1 2 3', 'b c d e a ; answer : a']
        ```
    """
    eos = completion_eos_ids(model, tokenizer, eos_token_id=generate_kwargs.pop("eos_token_id", None))
    device = model_device(model)
    out: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = encode_prompts(tokenizer, list(prompts[start : start + batch_size]), device=device)
        sequences = model.generate(**batch.model_inputs(), strategy=strategy, eos_token_id=eos, **generate_kwargs)
        if not isinstance(sequences, torch.Tensor):
            sequences = sequences.sequences
        out.extend(completion_texts(tokenizer, sequences, batch.prompt_length, eos))
    return out


def task_accuracy(
    model: Any,
    tokenizer: Any,
    task: VerifiableTask,
    rows: Sequence[dict[str, str]],
    strategy: Any = None,
    batch_size: int = 256,
    **generate_kwargs: Any,
) -> float:
    """Fraction of `rows` (dicts with `prompt` and `reference`) that `task.is_correct` accepts.

    Example:
        ```python
        >>> import hf_unmask
        >>> from hf_unmask.tasks import get_task
        >>> model, tok = hf_unmask.load_builtin_model("tiny-dllm")
        >>> task = get_task("program_trace")
        >>> task_accuracy(model, tok, task, task.examples(32, seed=5), block_length=8, steps=16)
        1.0
        ```
    """
    if len(rows) == 0:
        raise ValueError("task_accuracy needs at least one example.")
    completions = generate_completions(
        model, tokenizer, [r["prompt"] for r in rows], strategy=strategy, batch_size=batch_size, **generate_kwargs
    )
    return sum(task.is_correct(c, r["reference"]) for c, r in zip(completions, rows)) / len(rows)
