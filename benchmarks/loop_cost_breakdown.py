"""Where the diffusion loop's own per-step work goes at small batch: the library vs two hand-written loops.

For the top-k confidence strategy on the built-in model, prints each loop's own work per step (wall time minus
time inside the model's forward, measured with forward hooks in the same call), median and lower quartile over
interleaved repeats:

  ours                   `model.generate(strategy=TopKConfidence(...))`
  same guarantees        the same computation written inline, with the loop's guarantees (per-block
                         eligibility, live rows and per-row NFE, the progress check, LLaDA's count schedule,
                         stable top-k) but no strategy object, state, adapter or config
  no guarantees          the inline loop without them: a fixed number of steps per block, no checks
  naive                  `generation_overhead.naive_llada_generate` (LLaDA's reference loop, per-row top-k)

All four must produce identical tokens. The difference between "same guarantees" and "no guarantees" is what
the guarantees cost; between "ours" and "same guarantees", what the strategy interface and the adapter cost.

    python -m benchmarks.loop_cost_breakdown [--batch 1] [--repeats 60] [--threads 1]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch

import hf_unmask
from hf_unmask.strategies import TopKConfidence

from .generation_overhead import naive_llada_generate


def _top_k_by_schedule(confidence, eligible, block_mask_count, steps_per_block, block_step, positions):
    k = torch.div(block_mask_count + (steps_per_block - 1 - block_step), steps_per_block, rounding_mode="floor")
    score = torch.where(eligible, confidence, float("-inf"))
    order = score.argsort(dim=-1, descending=True, stable=True)
    return torch.zeros_like(eligible).scatter(-1, order, positions < k.unsqueeze(-1)) & eligible


def _greedy(model, x, prompt_length, gen_length, mask_id):
    logits = model(input_ids=x).logits.narrow(1, prompt_length, gen_length)
    logits.select(-1, mask_id).fill_(float("-inf"))
    confidence, proposal = torch.softmax(logits, -1).max(-1)
    return proposal, confidence


def _blocks(prompt, mask_id, gen_length, block_length, steps):
    """The canvas `x`, and per block: its generated region `gen` (a view of `x`), its positions among the L, the
    masks it holds when it starts, and the steps it gets."""
    x = torch.cat([prompt, torch.full((prompt.shape[0], gen_length), mask_id)], dim=1)
    gen = x[:, prompt.shape[1] :]
    num_blocks = gen_length // block_length
    positions = torch.arange(gen_length)

    def each_block():
        for block in range(num_blocks):
            start, end = block * block_length, (block + 1) * block_length
            in_block = (positions >= start) & (positions < end)
            yield gen, positions, in_block, (gen[:, start:end] == mask_id).sum(-1), steps // num_blocks

    return x, each_block()


@torch.no_grad()
def inline_with_guarantees(model, prompt, mask_id, gen_length, block_length, steps):
    x, blocks = _blocks(prompt, mask_id, gen_length, block_length, steps)
    P = prompt.shape[1]
    nfe = torch.zeros(prompt.shape[0], dtype=torch.long)
    for gen, positions, in_block, block_mask_count, per_block in blocks:
        block_step = 0
        while True:
            eligible = (gen == mask_id) & in_block
            remaining = eligible.sum(-1)
            if not bool(remaining.any()):
                break
            live = remaining.clamp_max(1)
            proposal, confidence = _greedy(model, x, P, gen_length, mask_id)
            step_in_schedule = min(block_step, per_block - 1)
            selection = _top_k_by_schedule(
                confidence, eligible, block_mask_count, per_block, step_in_schedule, positions
            )
            if bool((selection.sum(-1) < live).any()):
                raise RuntimeError("the schedule left a live row without progress")
            torch.where(selection, proposal, gen, out=gen)
            nfe = nfe + live
            block_step += 1
    return x


@torch.no_grad()
def inline_without_guarantees(model, prompt, mask_id, gen_length, block_length, steps):
    x, blocks = _blocks(prompt, mask_id, gen_length, block_length, steps)
    P = prompt.shape[1]
    for gen, positions, in_block, block_mask_count, per_block in blocks:
        for block_step in range(per_block):
            eligible = (gen == mask_id) & in_block
            proposal, confidence = _greedy(model, x, P, gen_length, mask_id)
            selection = _top_k_by_schedule(confidence, eligible, block_mask_count, per_block, block_step, positions)
            torch.where(selection, proposal, gen, out=gen)
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--prompt-length", type=int, default=32)
    parser.add_argument("--gen-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = hf_unmask.load_builtin_model("tiny-dllm")
    mask_id = model.generation_config.mask_token_id
    L, steps = args.gen_length, args.gen_length // 2
    prompt = torch.randint(
        8, model.config.vocab_size, (args.batch, args.prompt_length), generator=torch.Generator().manual_seed(0)
    )
    inside = {"total": 0.0, "t0": 0.0}
    model.register_forward_pre_hook(lambda *_: inside.__setitem__("t0", time.perf_counter()))
    model.register_forward_hook(
        lambda *_: inside.__setitem__("total", inside["total"] + time.perf_counter() - inside["t0"])
    )
    print(
        f"built-in model, batch {args.batch}, prompt {args.prompt_length}, L={L}, {steps} steps, threads={args.threads}"
    )
    print(f"{'mode':>14} | own work per step, ms: median (lower quartile)")
    for mode, block_length in (("semi-AR BL=8", 8), ("full diffusion", L)):
        strategy = TopKConfidence(steps=steps)
        loops = {
            "ours": functools.partial(
                model.generate, prompt, max_new_tokens=L, block_length=block_length, strategy=strategy
            ),
            "same guarantees": functools.partial(
                inline_with_guarantees, model, prompt, mask_id, L, block_length, steps
            ),
            "no guarantees": functools.partial(
                inline_without_guarantees, model, prompt, mask_id, L, block_length, steps
            ),
            "naive": functools.partial(naive_llada_generate, model, prompt, mask_id, L, block_length, steps),
        }
        outputs = [fn() for fn in loops.values()]
        if not all(torch.equal(outputs[0], out) for out in outputs[1:]):
            raise SystemExit(f"{mode}: the loops produced different tokens")
        own: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(args.repeats):
            for name, fn in loops.items():
                inside["total"] = 0.0
                t0 = time.perf_counter()
                fn()
                own[name].append((time.perf_counter() - t0 - inside["total"]) / steps * 1e3)
        cells = [
            f"{name} {statistics.median(v):.3f} ({statistics.quantiles(v, n=4)[0]:.3f})" for name, v in own.items()
        ]
        print(f"{mode:>14} | " + ", ".join(cells))


if __name__ == "__main__":
    main()
