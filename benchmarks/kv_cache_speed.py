"""How much faster is generation with the KV cache? Prefix and dual vs no cache on a LLaDA-architecture model.

A native `LLaDAModelLM` with random weights (default: d_model 384, 8 layers, 6 heads, SwiGLU 1024, vocabulary 32,000:
38.8M parameters), L = 256, BL = 32, a 128-token prompt. For batch 1 and 16, one timed `generate` per setting:

* top-k confidence, one token per step, without a cache: the baseline;
* the same with `use_cache=True`, `cache_implementation="prefix"` and `"dual"`;
* Fast-dLLM's threshold 0.9 without a cache and on top of the dual cache.

Prints wall time, NFE, positions run through the model, and the speed-up per generated token over the baseline.
Acceptance: prefix >= 2x, dual >= 3x, threshold 0.9 + dual >= 5x.

Random weights give flat predictions, under which a threshold never fires; the output head is drawn with a larger
standard deviation (`--head-std`, logits of std ~15) so that the model is as sure of itself as a trained one, and
the threshold's NFE is printed: its speed-up follows from it. The cache speed-ups do not depend on it.

Usage:
    python -m benchmarks.kv_cache_speed                       # batch 1 and 16 (the batch-16 baseline takes a while)
    python -m benchmarks.kv_cache_speed --batch-sizes 1 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hf_unmask import LLaDAConfig, LLaDAModelLM

SETTINGS = [
    ("top-k, no cache", "top_k_confidence", {}),
    ("top-k, prefix cache", "top_k_confidence", {"use_cache": True, "cache_implementation": "prefix"}),
    ("top-k, dual cache", "top_k_confidence", {"use_cache": True, "cache_implementation": "dual"}),
    ("threshold 0.9, no cache", "confidence_threshold", {}),
    ("threshold 0.9, dual cache", "confidence_threshold", {"use_cache": True, "cache_implementation": "dual"}),
]
TARGETS = {"top-k, prefix cache": 2.0, "top-k, dual cache": 3.0, "threshold 0.9, dual cache": 5.0}


def build_model(args: argparse.Namespace) -> LLaDAModelLM:
    config = LLaDAConfig(
        d_model=args.d_model, n_heads=args.heads, n_kv_heads=args.heads, n_layers=args.layers,
        mlp_hidden_size=args.mlp, vocab_size=args.vocab, embedding_size=args.vocab, max_sequence_length=4096,
        mask_token_id=args.vocab - 1, eos_token_id=args.vocab - 2, pad_token_id=args.vocab - 2,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LLaDAModelLM(config).eval()
    with torch.no_grad():
        model.model.transformer.ff_out.weight.normal_(0.0, args.head_std)
    return model


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's shape (L, BL, prompt) and the random LLaDA model's (`build_model`), with this benchmark's defaults."""
    parser.add_argument("--gen-length", type=int, default=256)
    parser.add_argument("--block-length", type=int, default=32)
    parser.add_argument("--prompt-length", type=int, default=128)
    parser.add_argument("--d-model", type=int, default=384)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--mlp", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--head-std", type=float, default=0.75, help="std of the output head's random weights")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    add_model_arguments(parser)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="outputs/kv_cache_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(args).to(device)
    params = sum(p.numel() for p in model.parameters())
    print(f"{type(model).__name__}: {params / 1e6:.1f}M parameters, {device}, {torch.get_num_threads()} threads")
    print(f"L = {args.gen_length}, BL = {args.block_length}, prompt {args.prompt_length}")
    results = []
    for batch in args.batch_sizes:
        ids = torch.randint(0, args.vocab - 2, (batch, args.prompt_length), generator=torch.Generator().manual_seed(1))
        ids = ids.to(device)
        common = dict(max_new_tokens=args.gen_length, block_length=args.block_length, return_dict_in_generate=True)
        model.generate(ids[:, :8], max_new_tokens=args.block_length, block_length=args.block_length)  # warm-up
        baseline = None
        print(f"\nbatch {batch}")
        print(f"{'setting':<28} {'seconds':>9} {'NFE':>6} {'positions/row':>14} {'ms/token':>9} {'speed-up':>9}")
        for label, strategy, kwargs in SETTINGS:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = model.generate(ids, strategy=strategy, **common, **kwargs)
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            per_token = seconds / (batch * args.gen_length)
            baseline = baseline or per_token
            row = {
                "batch": batch,
                "setting": label,
                "seconds": seconds,
                "nfe": out.nfe.float().mean().item(),
                "forward_positions": out.forward_positions.float().mean().item(),
                "ms_per_token": 1000 * per_token,
                "speedup": baseline / per_token,
            }
            results.append(row)
            print(
                f"{label:<28} {seconds:>9.1f} {row['nfe']:>6.1f} {row['forward_positions']:>14.0f} "
                f"{row['ms_per_token']:>9.2f} {row['speedup']:>8.2f}x"
            )
    verdicts = {
        f"batch {r['batch']}: {r['setting']} >= {TARGETS[r['setting']]}x": r["speedup"] >= TARGETS[r["setting"]]
        for r in results
        if r["setting"] in TARGETS
    }
    print("\nAcceptance:")
    for claim, ok in verdicts.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {claim}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"rows": results, "acceptance": verdicts, "args": vars(args)}, indent=2))
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
