"""How much faster is block-diffusion generation with the block cache? LLaDA2's shape, with and without the cache.

A native `LLaDA2MoeModelLM` with random (seeded) weights, generating L = 256 tokens in blocks of 32 after a
128-token prompt, for batch 1 and 16. Two greedy strategies, each run without and with `use_cache=True`:

* `TopKConfidence(steps=L)`: one token per step, so both runs make exactly L forward passes per row;
* `LLaDA2Decoder()`: LLaDA2's own decoder (threshold 0.95, at most 32 steps per block).

Without the cache, every step feeds the canvas from the start up to the end of the current block (the published
LLaDA2 generate's behaviour); with it, a step feeds the current block only, against the cached keys and values of
everything before it. Cached logits equal uncached ones by construction, so both runs must give the same sequences;
the benchmark checks that and says so. It prints the median wall time over `--repeats` runs, the NFE and the
positions run through the model per row, and the speed-up of each setting over the same strategy without the cache
(and over top-k without the cache), all measured in the same run. Times are reported, never asserted.

The model (`--model`) keeps LLaDA2.0-mini's structure: grouped-query attention with 4 query heads per key-value
head, RMSNorm on queries and keys, RoPE on half of each head (theta 600,000), a dense first layer, then
Mixture-of-Experts layers routing 8 experts per token within the 4 best of 8 expert groups, plus one shared expert.

* `mini`: LLaDA2.0-mini's real sizes (hidden 2048, 20 layers, 16 / 4 heads of 128, 256 experts of width 512, dense
  width 5120, vocabulary 157,184: about 16B parameters). GPU only; refused on a CPU unless `--force`.
* `small`: the same structure scaled down to run on a CPU (hidden 256, 4 layers, 8 / 2 heads of 32, 32 experts of
  width 64, dense width 640: 8.1M parameters, 6.0M without the embedding and head), with a vocabulary of 4,096 so that the output head's share of the
  work per position (~30%) stays about mini's; with the real vocabulary (`--vocab 157184`) the head would be ~95%
  of it, and a 128 + 256-token forward of 16 rows would return 4 GB of float32 logits.
* `tiny`: smaller still (hidden 32, 2 layers, 16 experts, vocabulary 512), for the tests.

With a vocabulary that holds them the real ids are used (mask 156895, EOS / pad 156892), else its last ids.

The default, `auto`, is `mini` on a GPU and `small` on a CPU. Weights are float32 on a CPU and bfloat16 on a GPU.
Random weights give flat predictions, under which LLaDA2's threshold never fires; the output head is drawn so that
the logits have a standard deviation of `--logit-std` (default 20: a model about as sure of itself as a trained one,
so the decoder commits several tokens in some steps). The cache speed-ups do not depend on it.

Prompts are random token ids (never the mask, EOS or pad id). For a batch of more than one row they are left-padded
to `--prompt-length` with real lengths between 3/4 of it and all of it (the first row full), so rows are aligned to
their own blocks.

Usage:
    python -m benchmarks.block_cache_speed                            # batch 1 and 16 (the batch-16 baseline is long)
    python -m benchmarks.block_cache_speed --batch-sizes 1 --repeats 1
    python -m benchmarks.block_cache_speed --model mini               # on a GPU
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch

from hf_unmask.models.llada2 import LLADA2_EOS_TOKEN_ID, LLADA2_MASK_TOKEN_ID, LLaDA2MoeConfig, LLaDA2MoeModelLM
from hf_unmask.strategies import LLaDA2Decoder, TopKConfidence

# LLaDA2.0-mini's published config.json, the fields that give the network's structure (all presets share them).
STRUCTURE: dict[str, Any] = {
    "first_k_dense_replace": 1,
    "num_shared_experts": 1,
    "num_experts_per_tok": 8,
    "n_group": 8,
    "topk_group": 4,
    "routed_scaling_factor": 2.5,
    "partial_rotary_factor": 0.5,
    "rope_theta": 600000,
    "rms_norm_eps": 1e-06,
    "use_qk_norm": True,
    "use_qkv_bias": False,
    "use_bias": False,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "max_position_embeddings": 32768,
    "attention_dropout": 0.0,
    "embedding_dropout": 0.0,
    "output_dropout": 0.0,
}
PRESETS: dict[str, dict[str, Any]] = {
    "mini": {
        "hidden_size": 2048, "num_hidden_layers": 20, "num_attention_heads": 16, "num_key_value_heads": 4,
        "head_dim": 128, "intermediate_size": 5120, "moe_intermediate_size": 512, "num_experts": 256,
        "vocab_size": 157184,
    },
    "small": {
        "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
        "head_dim": 32, "intermediate_size": 640, "moe_intermediate_size": 64, "num_experts": 32,
        "vocab_size": 4096,
    },
    "tiny": {
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1,
        "head_dim": 8, "intermediate_size": 80, "moe_intermediate_size": 8, "num_experts": 16,
        "vocab_size": 512,
    },
}  # fmt: skip


def strategies(gen_length: int) -> list[tuple[str, Any]]:
    """The two greedy strategies: one token per step (NFE = L), and LLaDA2's own decoder."""
    return [("top-k, 1 token/step", TopKConfidence(steps=gen_length)), ("LLaDA2Decoder 0.95", LLaDA2Decoder())]


def resolve_preset(name: str, device: str, force: bool) -> str:
    """`auto` -> `mini` on a GPU, `small` on a CPU; `mini` on a CPU needs `force`."""
    if name == "auto":
        return "mini" if device == "cuda" else "small"
    if name == "mini" and device != "cuda" and not force:
        raise SystemExit(
            "--model mini is LLaDA2.0-mini's real size (about 16B parameters, 64 GB in float32): it is meant for a "
            "GPU and none is available. Use --model small (the default on a CPU), or pass --force to run it anyway."
        )
    return name


def special_ids(vocab: int) -> dict[str, int]:
    """LLaDA2's mask / EOS / pad ids when the vocabulary holds them, else the last ids of a smaller one."""
    if vocab > LLADA2_MASK_TOKEN_ID:
        return {
            "mask_token_id": LLADA2_MASK_TOKEN_ID,
            "eos_token_id": LLADA2_EOS_TOKEN_ID,
            "pad_token_id": LLADA2_EOS_TOKEN_ID,
        }
    return {"mask_token_id": vocab - 1, "eos_token_id": vocab - 2, "pad_token_id": vocab - 2}


def build_model(
    preset: str, device: str, attn_implementation: str, logit_std: float, vocab: Optional[int] = None
) -> LLaDA2MoeModelLM:
    """A random LLaDA2 of the preset's sizes (`vocab` overrides its vocabulary), built on `device` (float32 on a
    CPU, bfloat16 on a GPU), seeded."""
    sizes = dict(PRESETS[preset], vocab_size=vocab or PRESETS[preset]["vocab_size"])
    config = LLaDA2MoeConfig(**STRUCTURE, **sizes, **special_ids(sizes["vocab_size"]))
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = LLaDA2MoeModelLM._from_config(config, dtype=dtype, attn_implementation=attn_implementation)
    model.eval()
    with torch.no_grad():  # the final RMSNorm gives features of RMS ~1: logits' std = head std * sqrt(hidden)
        model.lm_head.weight.normal_(0.0, logit_std / math.sqrt(config.hidden_size))
    return model


def make_prompts(batch: int, prompt_length: int, vocab: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids below every special id, left-padded (with the pad id) to `prompt_length`; real lengths between 3/4
    of it and all of it, the first row full. Returns `(input_ids, attention_mask)`."""
    generator = torch.Generator().manual_seed(1)
    special = special_ids(vocab)
    top = min(special.values())
    ids = torch.randint(0, top, (batch, prompt_length), generator=generator)
    shortest = max(1, (3 * prompt_length) // 4)
    lengths = torch.randint(shortest, prompt_length + 1, (batch,), generator=generator)
    lengths[0] = prompt_length
    keep = torch.arange(prompt_length) >= (prompt_length - lengths).unsqueeze(1)
    ids = ids.masked_fill(~keep, special["pad_token_id"])
    return ids.to(device), keep.long().to(device)


def timed_generate(model: Any, inputs: dict[str, torch.Tensor], repeats: int, **kwargs: Any) -> tuple[float, Any]:
    """The median wall time of `repeats` identical `generate` calls, and the last call's output."""
    times, out = [], None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.generate(**inputs, return_dict_in_generate=True, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--gen-length", type=int, default=256)
    parser.add_argument("--block-length", type=int, default=32)
    parser.add_argument("--prompt-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (the median is reported)")
    parser.add_argument("--model", choices=["auto", *PRESETS], default="auto", help="size preset (auto: see above)")
    parser.add_argument("--force", action="store_true", help="run --model mini without a GPU")
    parser.add_argument("--vocab", type=int, default=None, help="override the preset's vocabulary size")
    parser.add_argument("--attn-implementation", default="sdpa")
    parser.add_argument("--logit-std", type=float, default=20.0, help="std of the random model's logits")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--output", default="outputs/block_cache_speed.json")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    preset = resolve_preset(args.model, device, args.force)
    model = build_model(preset, device, args.attn_implementation, args.logit_std, args.vocab)
    config = model.config
    params = sum(p.numel() for p in model.parameters())
    embedding = config.vocab_size * config.hidden_size * 2
    dtype = next(model.parameters()).dtype
    print(
        f"LLaDA2MoeModelLM, preset {preset!r}: {params / 1e6:,.2f}M parameters ({(params - embedding) / 1e6:,.2f}M "
        f"without the embedding and head), {str(dtype).removeprefix('torch.')}, {device}, "
        f"{torch.get_num_threads()} threads, attention {config._attn_implementation}"
    )
    print(
        f"hidden {config.hidden_size}, {config.num_hidden_layers} layers, {config.num_attention_heads} / "
        f"{config.num_key_value_heads} heads of {config.head_dim}, {config.num_experts} experts "
        f"({config.num_experts_per_tok} per token, groups {config.topk_group} of {config.n_group}, "
        f"{config.num_shared_experts} shared), vocabulary {config.vocab_size} (mask {config.mask_token_id}, "
        f"EOS / pad {config.eos_token_id})"
    )
    L, BL, P = args.gen_length, args.block_length, args.prompt_length
    print(f"L = {L}, block {BL}, prompt {P}, median of {args.repeats} run(s), greedy")
    rows, checks = [], {}
    for batch in args.batch_sizes:
        ids, keep = make_prompts(batch, P, config.vocab_size, device)
        inputs = {"input_ids": ids, "attention_mask": keep}
        common = {"max_new_tokens": L, "block_length": BL}
        lengths = keep.sum(-1).tolist()
        print(f"\nbatch {batch} (prompt real lengths {min(lengths)}..{max(lengths)})")
        header = f"{'strategy':<22} {'cache':<6} {'seconds':>9} {'NFE':>7} {'positions/row':>14} {'speed-up':>9}"
        print(f"{header} {'vs top-k no cache':>18}")
        reference = None
        for (label, strategy), (_, warm_up) in zip(strategies(L), strategies(BL)):
            for cached in (False, True):  # warm-up: one block after a short prompt, each code path
                model.generate(ids[:, -8:], attention_mask=keep[:, -8:], max_new_tokens=BL, block_length=BL,
                               strategy=warm_up, use_cache=cached)  # fmt: skip
            baseline = None
            sequences = {}
            for cached in (False, True):
                seconds, out = timed_generate(
                    model, inputs, args.repeats, strategy=strategy, use_cache=cached, **common
                )
                sequences[cached] = out.sequences
                baseline = baseline or seconds
                reference = reference or seconds
                row = {
                    "batch": batch,
                    "strategy": label,
                    "cache": cached,
                    "seconds": seconds,
                    "nfe": out.nfe.float().mean().item(),
                    "forward_positions": out.forward_positions.float().mean().item(),
                    "speedup": baseline / seconds,
                    "speedup_vs_top_k_no_cache": reference / seconds,
                }
                rows.append(row)
                print(
                    f"{label:<22} {'block' if cached else 'none':<6} {seconds:>9.2f} {row['nfe']:>7.1f} "
                    f"{row['forward_positions']:>14.0f} {row['speedup']:>8.2f}x {row['speedup_vs_top_k_no_cache']:>17.2f}x"
                )
            same = torch.equal(sequences[False], sequences[True])
            differing = int((sequences[False] != sequences[True]).sum())
            checks[f"batch {batch}: {label}"] = same
            print(
                f"{'':<22} cached and uncached sequences: "
                + ("identical" if same else f"DIFFER ({differing} of {sequences[True].numel()} tokens)")
            )
    all_same = all(checks.values())
    print(
        "\nSame sequences with and without the cache in every setting: "
        + ("yes" if all_same else "NO (" + ", ".join(k for k, v in checks.items() if not v) + ")")
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    report = {"preset": preset, "parameters": params, "device": device, "rows": rows, "same_sequences": checks}
    Path(args.output).write_text(json.dumps({**report, "args": vars(args)}, indent=2))
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
