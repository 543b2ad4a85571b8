"""First run on real weights: load LLaDA / Dream natively, check what comes out, time it, score GSM8K.

The native classes were verified on tiny random checkpoints with the published layouts (config fields, weight names
and shapes, shards, special ids) against an independent reference forward. This script is the check that needs
the real 8B weights and a GPU: it

1. loads the checkpoint with `hf_unmask.AutoDiffusionLM` (no remote code) and prints its class, dtype, size,
   special ids, load time and GPU memory;
2. runs one forward on a chat prompt followed by L masks and prints the five most likely tokens at the first
   masked position (a broken load shows up here as garbage or non-finite logits);
3. evaluates GSM8K (0-shot, chat template, math-verify) with LLaDA's reference decoding (top-k confidence, one
   token per step) and Fast-dLLM's threshold 0.9, semi-autoregressive, printing accuracy, NFE per row and
   generated tokens per second, next to the published numbers to compare with.

Usage (GPU, real weights):
    python -m benchmarks.real_checkpoint_check --model GSAI-ML/LLaDA-8B-Instruct
    python -m benchmarks.real_checkpoint_check --model Dream-org/Dream-v0-Instruct-7B --n 200
    python -m benchmarks.real_checkpoint_check --model path/to/checkpoint --dataset gsm8k_test.jsonl
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Optional

import torch

from hf_unmask import AutoDiffusionLM, load_tokenizer
from hf_unmask.evaluation import EvaluationData, evaluate_strategies

#: What the papers report for the heuristics this script runs (LLaDA-8B-Instruct, GSM8K, L = 256, BL = 32).
PUBLISHED = {
    "top_k_confidence": "~79% (Fast-dLLM paper, 5-shot, 256 steps)",
    "confidence_threshold": "~78.5% with a prefix cache (Fast-dLLM paper); 74.2% @ ~47 NFE (arXiv 2512.09106)",
}
QUESTION = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many "
QUESTION += "clips did Natalia sell altogether in April and May?"


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Hub id or folder of a LLaDA or Dream checkpoint.")
    parser.add_argument("--dataset", default="openai/gsm8k", help="GSM8K Hub id or a local .jsonl/.json file.")
    parser.add_argument("--dataset-config", default="main", help="dataset configuration (Hub datasets only).")
    parser.add_argument("--n", type=int, default=100, help="GSM8K test questions to score (default: 100).")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="L (default: 256).")
    parser.add_argument("--block-length", type=int, default=32, help="BL (default: 32).")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per generate call (default: 16).")
    parser.add_argument("--dtype", default="bfloat16", help="bfloat16 (default), float16 or float32.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def describe(model: Any, tokenizer: Any, seconds: float) -> None:
    config = model.generation_config
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {type(model).__name__} ({model.config.model_type}), {params / 1e9:.2f}B parameters, {model.dtype}")
    print(f"ids: mask {config.mask_token_id}, EOS {config.eos_token_id}, pad {config.pad_token_id}")
    print(f"tokenizer: {type(tokenizer).__name__}, chat template: {'yes' if tokenizer.chat_template else 'no'}")
    memory = f", GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if torch.cuda.is_available() else ""
    print(f"loaded in {seconds:.1f} s{memory}")


@torch.no_grad()
def first_prediction(model: Any, tokenizer: Any, gen_length: int) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")
    ids = prompt["input_ids"].to(model.device)
    canvas = torch.cat([ids, torch.full((1, gen_length), model.generation_config.mask_token_id, device=ids.device)], 1)
    logits, _ = model.diffusion_adapter.forward(canvas)
    first = logits[0, ids.shape[1]].float()
    finite = torch.isfinite(logits).float().mean().item()
    top = first.softmax(-1).topk(5)
    tokens = [f"{tokenizer.decode([i])!r} {p:.2f}" for p, i in zip(top.values.tolist(), top.indices.tolist())]
    print(f"finite logits: {finite:.1%}; first masked position, top 5: {', '.join(tokens)}")


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    tokenizer = load_tokenizer(args.model)
    model = AutoDiffusionLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype), tokenizer=tokenizer)
    model = model.to(args.device)
    describe(model, tokenizer, time.perf_counter() - start)
    first_prediction(model, tokenizer, args.max_new_tokens)

    data = EvaluationData.from_dataset(
        args.dataset,
        prompt_column="question",
        reference_column="answer",
        correctness="math_verify",
        n_examples=args.n,
        config_name=None if os.path.exists(args.dataset) else args.dataset_config,
        name="gsm8k",
    )
    steps = args.max_new_tokens
    result = evaluate_strategies(
        model,
        tokenizer,
        data,
        [f"top_k_confidence:steps={steps}", "confidence_threshold:threshold=0.9"],
        block_lengths=[args.block_length],
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        chat_template=True,
        model_name=str(args.model),
    )
    print(f"\nGSM8K, {len(data)} questions, L = {args.max_new_tokens}, BL = {args.block_length}, greedy tokens:")
    print(f"{'strategy':<22} {'accuracy':>9} {'NFE':>7} {'tokens/s':>9}  published (LLaDA-8B-Instruct)")
    for row in result.rows:
        family = row["strategy"]
        tokens_per_second = len(data) * args.max_new_tokens / max(row["wall_time_s"], 1e-9)
        print(
            f"{family:<22} {row['accuracy_mean']:>9.1%} {row['nfe_mean']:>7.1f} {tokens_per_second:>9.0f}  "
            f"{PUBLISHED.get(family, '')}"
        )


if __name__ == "__main__":
    main()
