"""Does the unmasking order matter? Accuracy of the built-in dLLMs on the built-in reasoning tasks under
top-k confidence (one token per step), all at once (one step per block) and random order (one token per step),
for semi-autoregressive blocks and full diffusion.

Usage:
    python -m benchmarks.task_order_matters                      # all shipped models, reasoning tasks, N = 500
    python -m benchmarks.task_order_matters --models tiny-dllm --n 200 --block_lengths 8 16 32
    python -m benchmarks.task_order_matters --models outputs/my-run --json results.json

The test examples are the held-out split of each task (`task.dataset(n_test=N, seed=0)["test"]`), which the
training script excludes from training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch

import hf_unmask
from hf_unmask.generation import DenoisingState, check_block_length
from hf_unmask.models.tiny import TinyDLLMForMaskedDiffusion, build_tokenizer, list_builtin_models
from hf_unmask.strategies import TopKConfidence
from hf_unmask.tasks import TASK_REGISTRY, get_task
from hf_unmask.tasks.evaluate import task_accuracy


class _OneRandomPosition:
    """Fallback random order: one uniformly random eligible position per step (drawn with `state.generator`)."""

    def __call__(self, state: DenoisingState) -> torch.Tensor:
        scores = torch.rand(state.eligible.shape, generator=state.generator, device=state.eligible.device)
        scores = scores.masked_fill(~state.eligible, -1.0)
        pick = scores.argmax(dim=-1, keepdim=True)
        return torch.zeros_like(state.eligible).scatter(-1, pick, True) & state.eligible


def random_order_strategy() -> Any:
    """`RandomTopK()` (one random position per step when steps = L), or a local fallback if it is missing."""
    try:
        from hf_unmask.strategies import RandomTopK
    except ImportError:  # pragma: no cover - older checkouts
        return _OneRandomPosition()
    return RandomTopK()


def load_model(name_or_path: str) -> tuple[Any, Any]:
    """A shipped model by name, or a folder written by `scripts/train_tiny_dllm.py` (checkpoints included)."""
    if name_or_path in list_builtin_models():
        return hf_unmask.load_builtin_model(name_or_path)
    model = TinyDLLMForMaskedDiffusion.from_pretrained(name_or_path).eval()
    tokenizer_file = Path(name_or_path) / "tokenizer.json"
    if tokenizer_file.is_file():
        from transformers import AutoTokenizer

        return model, AutoTokenizer.from_pretrained(name_or_path)
    return model, build_tokenizer()


def measure(
    model: Any,
    tokenizer: Any,
    task_name: str,
    n: int,
    block_lengths: list[int],
    seed: int = 0,
    batch_size: int = 250,
) -> list[dict[str, Any]]:
    """Accuracy of the three orders for one model and task, per block length (rows of the report)."""
    task = get_task(task_name)
    rows = list(task.dataset(n_train=0, n_test=n, seed=0)["test"])
    L = int(model.generation_config.max_new_tokens)
    results = []
    for BL in block_lengths:
        check_block_length(BL, L, name="block length", length_name="L")
        nb = L // BL
        common = dict(max_new_tokens=L, block_length=BL, batch_size=batch_size)
        start = time.perf_counter()
        top_k = task_accuracy(model, tokenizer, task, rows, strategy=TopKConfidence(), steps=L, **common)
        at_once = task_accuracy(model, tokenizer, task, rows, strategy=TopKConfidence(), steps=nb, **common)
        rand = task_accuracy(
            model, tokenizer, task, rows, strategy=random_order_strategy(), steps=L, seed=seed, **common
        )
        results.append(
            {
                "task": task_name,
                "block_length": BL,
                "mode": "full diffusion" if BL == L else "semi-AR",
                "n": len(rows),
                "top_k_confidence": top_k,
                "all_at_once": at_once,
                "random": rand,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    return results


def acceptance(row: dict[str, Any]) -> bool:
    """The tasks' design criterion: top-k >= 90%, all-at-once <= top-k / 2, random <= top-k - 20 points."""
    top = row["top_k_confidence"]
    return top >= 0.9 and row["all_at_once"] <= top / 2 and row["random"] <= top - 0.2


def main(argv: Optional[list[str]] = None) -> list[dict[str, Any]]:
    reasoning = sorted(name for name, cls in TASK_REGISTRY.items() if cls.reasoning)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=None, help="shipped model names or model folders (default: all)")
    p.add_argument("--tasks", nargs="+", default=reasoning, help="task names (default: the reasoning tasks)")
    p.add_argument("--n", type=int, default=500, help="test examples per task")
    p.add_argument("--block_lengths", type=int, nargs="+", default=None, help="default: 8, 16 and L")
    p.add_argument("--seed", type=int, default=0, help="seed of the random order")
    p.add_argument("--batch_size", type=int, default=250)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    all_rows = []
    print(
        f"{'model':<16} {'task':<14} {'mode':<15} {'BL':>3} {'n':>4}  {'top-k conf':>10} {'all-at-once':>11} "
        f"{'random':>7}  criterion"
    )
    for name in args.models or list_builtin_models():
        model, tokenizer = load_model(name)
        L = int(model.generation_config.max_new_tokens)
        block_lengths = args.block_lengths or [bl for bl in (8, 16) if bl < L] + [L]
        for task_name in args.tasks:
            for row in measure(model, tokenizer, task_name, args.n, block_lengths, args.seed, args.batch_size):
                row["model"] = name
                all_rows.append(row)
                ok = "pass" if acceptance(row) else "FAIL"
                print(
                    f"{Path(name).name:<16} {task_name:<14} {row['mode']:<15} {row['block_length']:>3} {row['n']:>4}  "
                    f"{row['top_k_confidence']:>10.1%} {row['all_at_once']:>11.1%} {row['random']:>7.1%}  {ok}",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(all_rows, indent=2) + "\n")
    return all_rows


if __name__ == "__main__":
    main(sys.argv[1:])
