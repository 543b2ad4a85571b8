"""How much the diffusion loop costs on top of the dLLM's own forward passes, and against a naive loop.

Prints, for batch 1 and 16, semi-AR and full diffusion:
  (a) overhead = generate wall time / (number of forward passes x bare forward time)   target <= 1.05 at batch 16
  (a') loop share = generate wall time / time spent inside the model's forward during that same call (hooks):
       the same quantity measured without a second timing, so the machine's drift between two measurements
       (several % on a shared VM) cannot enter it
  (b) speed-up ratio = our top-k confidence generate time / naive LLaDA-style loop time  target <= 1.0
  (b') the same with the forward passes' time equalised: (forward + our loop's own work) / (forward + the naive
       loop's own work), each loop's own work = its wall time minus its time inside the model (hooks); the last
       two columns give that own work per step in ms
Both on the same model and inputs in the same run; the two loops must produce identical tokens.

    python -m benchmarks.generation_overhead [--model builtin|bert] [--vocab-size 32000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch
from transformers import BertConfig, BertForMaskedLM

import hf_unmask
from hf_unmask.strategies import TopKConfidence


def load_model(kind: str, vocab_size: int = 1000):
    if kind == "builtin":
        model, _ = hf_unmask.load_builtin_model("tiny-dllm")
        return model.eval()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        max_position_embeddings=512,
    )
    return hf_unmask.enable_diffusion_generate(BertForMaskedLM(config).eval(), mask_token_id=3)


@torch.no_grad()
def naive_llada_generate(model, prompt, mask_id, gen_length, block_length, steps):
    """A plain transcription of LLaDA's reference loop (greedy, low_confidence remasking, per-row top-k)."""
    x = torch.full((prompt.shape[0], prompt.shape[1] + gen_length), mask_id, dtype=torch.long)
    x[:, : prompt.shape[1]] = prompt
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    for b in range(num_blocks):
        start = prompt.shape[1] + b * block_length
        end = start + block_length
        block_mask = x[:, start:end] == mask_id
        counts = block_mask.sum(1, keepdim=True)
        base, rem = counts // steps_per_block, counts % steps_per_block
        schedule = base.repeat(1, steps_per_block)
        for j in range(schedule.shape[0]):
            schedule[j, : int(rem[j])] += 1
        for i in range(steps_per_block):
            mask_index = x == mask_id
            logits = model(input_ids=x).logits
            x0 = logits.argmax(-1)
            p = torch.softmax(logits.float(), dim=-1)
            x0_p = torch.gather(p, -1, x0.unsqueeze(-1)).squeeze(-1)
            x0_p[:, end:] = -float("inf")
            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, torch.tensor(-float("inf")))
            transfer = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(confidence.shape[0]):
                _, idx = torch.topk(confidence[j], k=int(schedule[j, i]))
                transfer[j, idx] = True
            x[transfer] = x0[transfer]
    return x


@torch.no_grad()
def interleaved_medians(fns, repeats):
    """Median wall time of each function over `repeats` rounds, measured round-robin so that a slow drift of the
    machine affects them alike."""
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def repeat_calls(fn, n):
    """Call `fn` n times in a row: the bare-forward baseline runs as many passes as one generation makes, so its
    occasional slow calls are counted as they are in the generation (a median of single calls would drop them)."""

    def run():
        for _ in range(n):
            fn()

    return run


def split_timing(fn, record: list, forward_calls: dict):
    """`fn` that also records (wall time, time inside the model's forward) of each call in `record`."""

    def run():
        forward_calls["inside"] = 0.0
        t0 = time.perf_counter()
        out = fn()
        record.append((time.perf_counter() - t0, forward_calls["inside"]))
        return out

    return run


def measure_setting(model, prompt, L: int, block_length: int, forward_calls: dict, repeats: int) -> str:
    """One table row: the loop's overhead over its forward passes, ours against the naive loop."""
    batch, mask_id = prompt.shape[0], model.generation_config.mask_token_id
    steps = L // 2
    strategy = TopKConfidence(steps=steps)
    canvas = torch.cat([prompt, torch.full((batch, L), mask_id)], dim=1)
    ours_split, naive_split = [], []  # wall time and time spent inside the model's forward, per call
    ours = split_timing(
        functools.partial(model.generate, prompt, max_new_tokens=L, block_length=block_length, strategy=strategy),
        ours_split,
        forward_calls,
    )
    naive = split_timing(
        functools.partial(naive_llada_generate, model, prompt, mask_id, L, block_length, steps),
        naive_split,
        forward_calls,
    )
    forward = functools.partial(model, input_ids=canvas)
    forward_calls["n"] = 0
    ours_out = ours()
    passes = forward_calls["n"]
    t_passes, t_ours, t_naive = interleaved_medians([repeat_calls(forward, passes), ours, naive], repeats)
    t_forward = t_passes / passes
    naive_out = naive_llada_generate(model, prompt, mask_id, L, block_length, steps)
    same = "" if torch.equal(ours_out, naive_out) else "  (OUTPUTS DIFFER)"
    in_run = statistics.median(wall / inside for wall, inside in ours_split)
    # (b) with the forward passes' share equalised: both loops make the same passes on the same shapes, so
    # they differ only by their own work; the median forward time of all calls stands in for both.
    forward_share = statistics.median(inside for _, inside in ours_split + naive_split)
    own_ours = statistics.median(wall - inside for wall, inside in ours_split)
    own_naive = statistics.median(wall - inside for wall, inside in naive_split)
    b_in_run = (forward_share + own_ours) / (forward_share + own_naive)
    return (
        f"{t_forward * 1e3:>8.2f} {passes:>6} {t_ours / (passes * t_forward):>11.3f} "
        f"{in_run:>9.3f} {t_ours:>8.3f} {t_naive:>8.3f} {t_ours / t_naive:>8.3f} {b_in_run:>9.3f}"
        f" {own_ours * 1e3 / passes:>9.2f} {own_naive * 1e3 / passes:>9.2f}{same}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["builtin", "bert"], default="builtin")
    parser.add_argument("--prompt-length", type=int, default=32)
    parser.add_argument("--gen-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vocab-size", type=int, default=1000, help="vocabulary of the random BERT (--model bert)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, args.vocab_size)
    vocab = model.config.vocab_size
    L = args.gen_length
    print(
        f"model={args.model} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, vocab {vocab}), "
        f"prompt {args.prompt_length}, L={L}, threads={args.threads}"
    )
    print(
        f"{'batch':>5} {'mode':>14} {'fwd ms':>8} {'passes':>6} {'overhead(a)':>11} {'in-run(a)':>9} {'ours s':>8} "
        f"{'naive s':>8} {'ratio(b)':>8} {'in-run(b)':>9} {'ours ms/st':>9} {'naive ms/st':>9}"
    )
    forward_calls = {"n": 0, "inside": 0.0, "t0": 0.0}

    def before_forward(*_):
        forward_calls["t0"] = time.perf_counter()

    def after_forward(*_):
        forward_calls["n"] += 1
        forward_calls["inside"] += time.perf_counter() - forward_calls["t0"]

    model.register_forward_pre_hook(before_forward)
    model.register_forward_hook(after_forward)
    for batch in (1, 16):
        g = torch.Generator().manual_seed(0)
        # tokens away from the specials (ids < 8 are reserved in the built-in vocabularies)
        prompt = torch.randint(8, vocab, (batch, args.prompt_length), generator=g)
        for mode, block_length in (("semi-AR BL=8", 8), ("full diffusion", L)):
            row = measure_setting(model, prompt, L, block_length, forward_calls, args.repeats)
            print(f"{batch:>5} {mode:>14} {row}")


if __name__ == "__main__":
    main()
