"""Reference loops of the block-diffusion families' own decoders, written from the published algorithms (greedy),
for any model: `step(x, end)` runs the model on the canvas up to `end` as the published samplers do and returns
`(tokens, probs)` of the block ending there, with [MASK] excluded (hf_unmask never proposes it). Each loop returns
the generated ids through the first stop id, and counts which branch of the threshold rule decided
(`branches["threshold"]`, `branches["top_k"]`)."""

from __future__ import annotations

import collections
from collections.abc import Callable, Collection
from typing import Optional

import torch

Step = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


def cut(ids: list[int], stop_ids: Collection[int]) -> list[int]:
    """`ids` up to and including the first stop id."""
    for i, tok in enumerate(ids):
        if tok in stop_ids:
            return ids[: i + 1]
    return ids


def threshold_or_top(
    probs: torch.Tensor, active: torch.Tensor, threshold: float, k: int, branches: Optional[collections.Counter] = None
) -> torch.Tensor:
    """The active positions above `threshold` when at least `k` pass, else the `k` most confident."""
    conf = torch.where(active, probs, torch.tensor(float("-inf")))
    high = (conf > threshold) & active
    if int(high.sum()) >= k:
        if branches is not None:
            branches["threshold"] += 1
        return high
    if branches is not None:
        branches["top_k"] += 1
    chosen = torch.zeros_like(active)
    chosen[torch.topk(conf, min(k, int(active.sum()))).indices] = True
    return chosen


def schedule(block_length: int, steps: int) -> list[int]:
    return [block_length // steps + int(i < block_length % steps) for i in range(steps)]


def canvas(ids: torch.Tensor, gen_length: int, block_length: int, mask_id: int) -> tuple[torch.Tensor, int, int]:
    """`(canvas up to the end of the last block, prompt length, blocks)`: blocks counted from position 0."""
    P = ids.shape[1]
    blocks = -(-(P + gen_length) // block_length)
    x = torch.full((1, blocks * block_length), mask_id)
    x[:, :P] = ids
    return x, P, blocks


def reference_llada2(step: Step, ids, gen_length, block_length, steps, threshold, mask_id, eos_ids):
    """LLaDA2.0's `generate`: per block at most `steps` steps committing the masked positions above `threshold`,
    or the `k_s` most confident; stop after a block that holds an EOS. `(ids, nfe, branches)`."""
    BL = block_length
    x, P, blocks = canvas(ids, gen_length, BL, mask_id)
    counts, nfe, branches = schedule(BL, steps), 0, collections.Counter()
    for block in range(P // BL, blocks):
        end = (block + 1) * BL
        for s in range(steps):
            active = x[0, end - BL : end] == mask_id
            if not active.any():
                break
            tokens, probs = step(x, end)
            nfe += 1
            chosen = threshold_or_top(probs, active, threshold, counts[s], branches)
            x[0, end - BL : end][chosen] = tokens[chosen]
        if any((x[0, P:end] == e).any() for e in eos_ids):
            break
    return cut(x[0, P : P + gen_length].tolist(), eos_ids), nfe, branches


def reference_llada21(
    step: Step, ids, gen_length, block_length, threshold, edit_threshold, max_post, mask_id, eos_ids
):
    """LLaDA2.1's threshold decoding with token editing (at least one position per step): commit the masked
    positions above `threshold`, replace every generated decided token of the block whose prediction differs with
    probability above `edit_threshold`; once the block is full, editing steps go on while they change a token, at
    most `max_post`. `(ids, nfe, edits, branches)`."""
    BL = block_length
    x, P, blocks = canvas(ids, gen_length, BL, mask_id)
    nfe = edits = 0
    branches = collections.Counter()
    for block in range(P // BL, blocks):
        start, end = block * BL, (block + 1) * BL
        post = 0
        while True:
            old = x[0, start:end].clone()
            active = old == mask_id
            if not active.any():
                post += 1
            if post > max_post:
                break
            tokens, probs = step(x, end)
            nfe += 1
            chosen = threshold_or_top(probs, active, threshold, 1, branches) if active.any() else active & False
            editable = ~active & (torch.arange(start, end) >= P)
            edit = editable & (probs > edit_threshold) & (tokens != old)
            edits += int(edit.sum())
            x[0, start:end][chosen | edit] = tokens[chosen | edit]
            if not active.any() and not edit.any():
                break
    return cut(x[0, P : P + gen_length].tolist(), eos_ids), nfe, edits, branches


def reference_sdar(step: Step, ids, gen_length, block_length, steps, rule, threshold, mask_id, stop_ids):
    """SDAR's `block_diffusion_generate`, its prefix recomputed instead of cached (block-causal: the same logits):
    per block `steps` steps of `k_s` positions by `rule`, `k_s` kept to the masked positions; stop after a block
    that holds a stop id. `(ids, branches)`."""
    BL = block_length
    x, P, blocks = canvas(ids, gen_length, BL, mask_id)
    counts, branches = schedule(BL, steps), collections.Counter()
    for block in range(P // BL, blocks):
        end = (block + 1) * BL
        for s in range(steps + 1):
            active = x[0, end - BL : end] == mask_id
            if not active.any():
                break
            tokens, probs = step(x, end)
            k = min(counts[s], int(active.sum()))
            if rule == "low_confidence_dynamic":
                chosen = threshold_or_top(probs, active, threshold, k, branches)
            elif rule == "low_confidence_static":
                chosen = threshold_or_top(probs, active, 2.0, k)
            else:
                first = int(active.nonzero()[0])
                chosen = torch.zeros_like(active)
                chosen[first : first + k] = True
            x[0, end - BL : end][chosen] = tokens[chosen]
        if any((x[0, P:] == stop).any() for stop in stop_ids):
            break
    return cut(x[0, P : P + gen_length].tolist(), stop_ids), branches
