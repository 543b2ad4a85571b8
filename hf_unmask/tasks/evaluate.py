"""Run a diffusion LM on a built-in task and score it with the task's verifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch

from ..generation import cut_at_eos, eos_id_list
from .base import VerifiableTask


def decode_completion(tokenizer: Any, ids: Sequence[int], eos_token_ids: Optional[Sequence[int]] = None) -> str:
    """Decode generated ids up to (not including) the first EOS, dropping special tokens.

    Example:
        ```python
        >>> from hf_unmask.models.tiny import build_tokenizer
        >>> tok = build_tokenizer()
        >>> ids = tok("1 2 3", add_special_tokens=False).input_ids + [tok.eos_token_id, 7]
        >>> decode_completion(tok, ids)
        '1 2 3'
        ```
    """
    eos = set(eos_token_ids) if eos_token_ids is not None else {tokenizer.eos_token_id}
    return tokenizer.decode(cut_at_eos((int(i) for i in ids), eos), skip_special_tokens=True).strip()


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

    Prompts are left-padded in batches of `batch_size`; completions are cut at the first EOS.

    Example:
        ```python
        >>> import hf_unmask
        >>> model, tok = hf_unmask.load_builtin_model("tiny-dllm")
        >>> generate_completions(model, tok, ["sort : 3 1 2", "cups : a | ab bc cd de ae ab bc cd de ae ab | run 5"])
        ['1 2 3', 'b c d e a ; answer : a']
        ```
    """
    tokenizer.padding_side = "left"
    out: list[str] = []
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos_ids = None if eos is None else eos_id_list(eos)
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True)
        sequences = model.generate(
            batch["input_ids"], attention_mask=batch["attention_mask"], strategy=strategy, **generate_kwargs
        )
        if not isinstance(sequences, torch.Tensor):
            sequences = sequences.sequences
        P = batch["input_ids"].shape[1]
        out.extend(decode_completion(tokenizer, row[P:].tolist(), eos_ids) for row in sequences)
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
