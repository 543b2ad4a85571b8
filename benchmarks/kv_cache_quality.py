"""Does the KV cache keep the accuracy? No cache vs prefix vs dual on the built-in tasks and dLLM.

For each built-in task, on its held-out test split: top-k confidence (one token per step), Fast-dLLM's threshold
0.9 and a shipped learned policy, semi-autoregressive (BL 8; the policy trained there) and full diffusion (BL = L;
the full-diffusion policy), each without a cache and with `use_cache=True` in both modes. Prints accuracy, NFE and
each cached run's accuracy difference to the uncached one with its paired standard error (same examples: the
error comes only from the examples whose answer changed, sqrt(sum (d_i - mean d)^2 / (n (n - 1))) over the
per-example differences d_i in {-1, 0, 1}).
Acceptance: every cached accuracy within 1 point of no cache.

Usage:
    python -m benchmarks.kv_cache_quality                    # 500 examples per task, seed 0
    python -m benchmarks.kv_cache_quality --n 100 --tasks program_trace
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

import hf_unmask
from hf_unmask.evaluation import evaluate_strategies

MODES = {"no cache": {}, "prefix": {"use_cache": True, "cache_implementation": "prefix"}}
MODES["dual"] = {"use_cache": True, "cache_implementation": "dual"}
PANELS = {
    "semi_ar": ("top_k_confidence", "confidence_threshold:threshold=0.9", "tiny-dllm-program_trace-bl8-alpha1"),
    "full_diffusion": (
        "top_k_confidence",
        "confidence_threshold:threshold=0.9",
        "tiny-dllm-program_trace-full-alpha1",
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-dllm")
    parser.add_argument("--tasks", nargs="+", default=["program_trace", "shell_game"])
    parser.add_argument("--n", type=int, default=500, help="test examples per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block-length", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="outputs/kv_cache_quality.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = hf_unmask.load_builtin_model(args.model)
    L = model.generation_config.max_new_tokens
    rows = []
    for task in args.tasks:
        for panel, specs in PANELS.items():
            block_length = args.block_length if panel == "semi_ar" else L
            for mode, kwargs in MODES.items():
                result = evaluate_strategies(
                    model, tokenizer, task, list(specs), block_lengths=[block_length], seeds=[args.seed],
                    n_examples=args.n, batch_size=args.batch_size, generation_kwargs=kwargs, progress=False,
                    keep_samples=True,
                )  # fmt: skip
                for row in result.rows:
                    correct = [s["correct"] for s in sorted(result.samples, key=lambda s: s["index"])
                               if s["strategy"] == row["strategy"]]  # fmt: skip
                    rows.append(
                        {
                            "task": task,
                            "panel": panel,
                            "strategy": row["strategy"],
                            "mode": mode,
                            "accuracy": row["accuracy_mean"],
                            "nfe": row["nfe_mean"],
                            "wall_time_s": row["wall_time_s"],
                            "correct": correct,
                        }
                    )
    print(
        f"{'task':<14} {'panel':<15} {'strategy':<38} {'mode':<9} {'accuracy':>8} {'NFE':>6} {'diff':>6} {'+-SE':>5} "
        f"{'changed':>7}"
    )
    worst = 0.0
    for row in rows:
        key = (row["task"], row["panel"], row["strategy"])
        base = next(r for r in rows if (r["task"], r["panel"], r["strategy"]) == key and r["mode"] == "no cache")
        diffs = [int(a) - int(b) for a, b in zip(row["correct"], base["correct"])]
        n = len(diffs)
        mean = sum(diffs) / n
        row["difference"] = row["accuracy"] - base["accuracy"]
        row["difference_se"] = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n * (n - 1))) if n > 1 else 0.0
        row["answers_changed"] = sum(1 for d in diffs if d)
        worst = max(worst, abs(row["difference"]))
        print(
            f"{row['task']:<14} {row['panel']:<15} {row['strategy']:<38} {row['mode']:<9} "
            f"{100 * row['accuracy']:>7.1f}% {row['nfe']:>6.2f} {100 * row['difference']:>+5.1f} "
            f"{100 * row['difference_se']:>5.1f} {row['answers_changed']:>7}"
        )
    for row in rows:
        row.pop("correct")
    verdict = worst <= 0.01 + 1e-9
    print(
        f"\nLargest accuracy difference to no cache: {100 * worst:.1f} points ({'PASS' if verdict else 'FAIL'}: <= 1)"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"rows": rows, "pass": verdict, "args": vars(args)}, indent=2))
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
