"""How much faster is a batch when rows that finished leave the forward batch? Old path vs new, in the same run.

A batched adaptive strategy (Fast-dLLM's threshold, a learned policy) finishes different rows after different
numbers of steps; the block goes on until its slowest row is done. With `drop_finished_rows=False` (the old path)
every row is fed at every step; with `True` (the default) a step feeds only the rows that still have something to
decide. Each setting runs both ways on the same inputs and checks that they give the same tokens and NFE.

Settings:

* a native `LLaDAModelLM` with random weights, shaped as in `benchmarks/kv_cache_speed.py` (d_model 384, 8 layers,
  vocabulary 32,000; the output head drawn with a larger std so the model is as sure of itself as a trained one),
  L = 256, BL = 32, a 128-token random prompt, threshold 0.9 without a cache and with the dual cache;
* the built-in `tiny-dllm-long` with its shipped full-diffusion policy on `trace_until` (L = 64, one block).

For batch 16 and 64 it prints generated tokens per second (batch x L / seconds) for the old and the new path, the
speed-up, and the ideal speed-up: the row-forwards the old path runs over those actually needed (sum of the rows'
NFE), i.e. the speed-up if a forward's cost were proportional to the rows it feeds.
Acceptance, at batch 16: >= 1.4x for threshold 0.9 without a cache and >= 1.2x with the dual cache.

Usage:
    python -m benchmarks.finished_rows_speed                      # batch 16 and 64 (a long run on CPU)
    python -m benchmarks.finished_rows_speed --batch-sizes 16 --threads 2
    python -m benchmarks.finished_rows_speed --batch-sizes 64 --only "dual cache" tiny-dllm-long
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from hf_unmask.evaluation import EvaluationData
from hf_unmask.evaluation.model_io import tokenize_batches
from hf_unmask.models import load_dllm

# the model and its arguments are the KV cache benchmark's
from .kv_cache_speed import add_model_arguments, build_model

LLADA_SETTINGS = [
    ("threshold 0.9, no cache", {}),
    ("threshold 0.9, dual cache", {"use_cache": True, "cache_implementation": "dual"}),
]
POLICY = "tiny-dllm-long-trace_until-full-alpha1"
POLICY_SETTING = f"{POLICY} (tiny-dllm-long, L = 64)"
TARGETS = {"threshold 0.9, no cache": 1.4, "threshold 0.9, dual cache": 1.2}
TARGET_BATCH = 16


class RowCounter:
    """Counts the rows fed to a model over all its forward calls (a forward pre-hook)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.rows = 0
        self.handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.rows += int(ids.shape[0])


def timed_pair(model: Any, inputs: dict[str, torch.Tensor], **kwargs: Any) -> dict[str, Any]:
    """Run the old path, then the new one, on the same inputs and seed; timings, rows fed, and their equality."""
    counter = RowCounter(model)
    runs = {}
    try:
        for path, drop in (("old", False), ("new", True)):
            counter.rows = 0
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = model.generate(**inputs, drop_finished_rows=drop, return_dict_in_generate=True, seed=0, **kwargs)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            runs[path] = (time.perf_counter() - start, counter.rows, out)
    finally:
        counter.handle.remove()
    (old_s, old_rows, old), (new_s, new_rows, new) = runs["old"], runs["new"]
    tokens = old.sequences.shape[0] * kwargs["max_new_tokens"]
    return {
        "old_tokens_per_s": tokens / old_s,
        "new_tokens_per_s": tokens / new_s,
        "speedup": old_s / new_s,
        "ideal_speedup": old_rows / int(new.nfe.sum()),
        "old_row_forwards": old_rows,
        "new_row_forwards": new_rows,
        "needed_row_forwards": int(new.nfe.sum()),
        "nfe_mean": new.nfe.float().mean().item(),
        "nfe_min": int(new.nfe.min()),
        "nfe_max": int(new.nfe.max()),
        "same_output": bool(torch.equal(old.sequences, new.sequences) and torch.equal(old.nfe, new.nfe)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    add_model_arguments(parser)
    parser.add_argument("--policy-gen-length", type=int, default=64)
    parser.add_argument("--no-policy", action="store_true", help="skip the built-in model's policy setting")
    parser.add_argument(
        "--only", nargs="+", metavar="TEXT", help="run only the settings whose label contains one of these texts"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="outputs/finished_rows_speed.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    llada = build_model(args).to(device)
    params = sum(p.numel() for p in llada.parameters()) / 1e6
    print(f"LLaDA-shaped model: {params:.1f}M parameters, {device}, {torch.get_num_threads()} threads")
    print(f"L = {args.gen_length}, BL = {args.block_length}, prompt {args.prompt_length}")
    if not args.no_policy:
        long_model, long_tokenizer = load_dllm("builtin:tiny-dllm-long", device=device)
        prompts = EvaluationData.from_task("trace_until", n_examples=max(args.batch_sizes)).prompts
    results = []
    header = f"{'setting':<48} {'batch':>5} {'NFE min-mean-max':>17} {'old tok/s':>10} {'new tok/s':>10}"
    print(f"\n{header} {'speed-up':>9} {'ideal':>7} {'same':>5}")
    for batch in args.batch_sizes:
        ids = torch.randint(0, args.vocab - 2, (batch, args.prompt_length), generator=torch.Generator().manual_seed(1))
        llada_inputs = {"input_ids": ids.to(device)}
        common = dict(max_new_tokens=args.gen_length, block_length=args.block_length, strategy="confidence_threshold")
        llada.generate(ids[:, :8].to(device), max_new_tokens=args.block_length, block_length=args.block_length)
        settings: list[tuple[str, Any, dict[str, Any], dict[str, Any]]] = [
            (label, llada, llada_inputs, {**common, **kwargs}) for label, kwargs in LLADA_SETTINGS
        ]
        if not args.no_policy:
            [(_, input_ids, attention_mask)] = tokenize_batches(long_tokenizer, prompts[:batch], batch)
            inputs = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
            L = args.policy_gen_length
            settings.append(
                (POLICY_SETTING, long_model, inputs, dict(max_new_tokens=L, block_length=L, strategy=POLICY))
            )
        if args.only:
            settings = [setting for setting in settings if any(text in setting[0] for text in args.only)]
        for label, model, inputs, kwargs in settings:
            row = {"setting": label, "batch": batch, **timed_pair(model, inputs, **kwargs)}
            results.append(row)
            nfe = f"{row['nfe_min']}-{row['nfe_mean']:.1f}-{row['nfe_max']}"
            print(
                f"{label:<48} {batch:>5} {nfe:>17} {row['old_tokens_per_s']:>10.1f} {row['new_tokens_per_s']:>10.1f} "
                f"{row['speedup']:>8.2f}x {row['ideal_speedup']:>6.2f}x {'yes' if row['same_output'] else 'NO':>5}"
            )
    verdicts = {
        f"batch {r['batch']}: {r['setting']} >= {TARGETS[r['setting']]}x": r["speedup"] >= TARGETS[r["setting"]]
        for r in results
        if r["setting"] in TARGETS and r["batch"] == TARGET_BATCH
    }
    verdicts["every setting gives the same tokens and NFE both ways"] = all(r["same_output"] for r in results)
    print("\nAcceptance:")
    for claim, ok in verdicts.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {claim}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"rows": results, "acceptance": verdicts, "args": vars(args)}, indent=2))
    print(f"written to {args.output}")
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
