"""An independent WINO decoder for one prompt, written from the published algorithm (Hong et al., 2025, "Wide-In,
Narrow-Out"): plain torch, the model called directly on `[prompt | canvas | shadow]` with a dense boolean attention
mask built by explicit loops. Shares no code with hf_unmask's loop, strategy or shadow block.

Per block: the shadow block is BL mask tokens after the sequence; shadow slot i has the position id of the block's
slot i; real rows attend to the real columns only; shadow row i attends to every shadow column and every real
column except the block's slot i. Per iteration: one forward; draft the masked slots of the block with confidence
> tau_1 (at most min(max(floor(0.7 |M|), 5), 20), the most confident), else the single most confident; then, if more
than one was drafted, re-mask the slots decided in earlier iterations whose shadow probability of their token is
< tau_2, at most (previous iteration's accepted count - 1) of them, the least verified (30 at a block's start).

Where the published code leaves a choice open or differs from hf_unmask's conventions, this follows hf_unmask so that
the two can be compared token for token: probabilities are float32 softmaxes with the mask id left out (thresholds
compared in float64), ties go to the lowest index, and a family with shifted logits (Dream) gets one more shadow slot
with positions one lower (slot i's verifier sits at slot i's position - 1). `block_causal=True` decodes a
block-diffusion model: blocks aligned to absolute positions, each forward over the prefix up to the block's end.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Optional

import torch


def dense_shadow_mask(real: list[bool], start: int, shadow: int, blocks: Optional[list[int]] = None) -> torch.Tensor:
    """`[T + S, T + S]` bool keep-mask of the verification forward, built entry by entry."""
    T = len(real)
    keep = torch.zeros(T + shadow, T + shadow, dtype=torch.bool)
    for q in range(T + shadow):
        for k in range(T + shadow):
            if q < T:  # a real row: real, non-padding keys (block-causal: its own and earlier blocks)
                keep[q, k] = k < T and real[k] and (blocks is None or blocks[k] <= blocks[q])
            elif k >= T:  # shadow row x shadow column
                keep[q, k] = True
            else:  # shadow row i: every real key but slot i (block-causal: up to slot i's block)
                i = q - T
                own = start + i
                visible = blocks is None or blocks[k] <= blocks[min(own, T - 1)]
                keep[q, k] = real[k] and k != own and visible
    return keep


def shadow_positions(positions: list[int], start: int, shadow: int, shift: int) -> list[int]:
    """Position ids of the shadow slots: slot i takes the position of the block's slot i - shift."""
    return [positions[max(start + i - shift, 0)] for i in range(shadow)]


def tiny_segments(real: list[bool], shadow: int) -> dict[str, torch.Tensor]:
    """The built-in tiny dLLM's extra input: `local_segments`, canvas 1, padding 0, shadow 2."""
    return {"local_segments": torch.tensor([[1 if r else 0 for r in real] + [2] * shadow])}


def _probabilities(logits: torch.Tensor, mask_id: int) -> torch.Tensor:
    scores = logits.float().clone()
    scores[..., mask_id] = float("-inf")
    return torch.softmax(scores, dim=-1)


def wino_reference(
    model: Any,
    prompt: list[int],
    gen_length: int,
    block_length: int,
    mask_id: int,
    threshold: float = 0.6,
    threshold_back: float = 0.9,
    shift: int = 0,
    block_causal: bool = False,
    extra_inputs: Optional[Callable[[list[bool], int], dict[str, Any]]] = None,
) -> tuple[list[int], int]:
    """`(the prompt followed by the gen_length generated tokens, forward passes)` for one unpadded prompt."""
    P = len(prompt)
    if block_causal:  # blocks of absolute positions; the canvas runs to the end of the last block
        total = -(-(P + gen_length) // block_length) * block_length
        first_block = P // block_length
    else:
        total, first_block = P + gen_length, 0
    x = list(prompt) + [mask_id] * (total - P)
    nfe = 0
    for k in range(first_block, total // block_length if block_causal else gen_length // block_length):
        start = k * block_length if block_causal else P + k * block_length
        end = start + block_length
        length = end if block_causal else total
        real = [True] * length
        blocks = [j // block_length for j in range(length)] if block_causal else None
        S = block_length + shift
        keep = dense_shadow_mask(real, start, S, blocks)
        positions = list(range(length))
        ids_positions = torch.tensor([positions + shadow_positions(positions, start, S, shift)])
        decided = [j for j in range(max(start, P), end) if x[j] != mask_id]
        last_accept = 30
        while any(x[j] == mask_id for j in range(max(start, P), end)):
            masked = [j for j in range(max(start, P), end) if x[j] == mask_id]
            cap = min(max(math.floor(0.7 * len(masked)), 5), 20)
            ids = torch.tensor([x[:length] + [mask_id] * S])
            extra = extra_inputs(real, S) if extra_inputs is not None else {}
            with torch.no_grad():
                raw = model(input_ids=ids, attention_mask=keep[None, None], position_ids=ids_positions, **extra).logits
            nfe += 1
            real_probs = _probabilities(raw[0, start - shift : end - shift], mask_id)  # aligned: slot j at j - shift
            shadow_probs = _probabilities(raw[0, length : length + block_length], mask_id)
            confidence, proposal = real_probs.max(-1)
            # wide in
            above = [j for j in masked if float(confidence[j - start]) > threshold]
            if len(above) > cap:
                above = sorted(above, key=lambda j: (-float(confidence[j - start]), j))[:cap]
            elif not above:
                above = [max(masked, key=lambda j: (float(confidence[j - start]), -j))]
            # narrow out, judged on the context before this iteration's drafts
            verified = {j: float(shadow_probs[j - start, x[j]]) for j in decided}
            remask: list[int] = []
            if len(above) > 1:
                remask = [j for j in decided if verified[j] < threshold_back]
                if len(remask) >= last_accept:
                    remask = sorted(remask, key=lambda j: (verified[j], j))[: last_accept - 1]
            for j in above:
                x[j] = int(proposal[j - start])
            for j in remask:
                x[j] = mask_id
            decided = sorted((set(decided) | set(above)) - set(remask))
            last_accept = len(above)
    return x[: P + gen_length], nfe
