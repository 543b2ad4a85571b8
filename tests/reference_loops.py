"""Hand-written reference generation loops, one per original unmasking algorithm.

Each loop is written from the behaviour of the original implementation (LLaDA's `generate.py`, Dream's
`diffusion_generate`, Fast-dLLM's `get_transfer_index` / `get_transfer_index_dynamic`, the EB-Sampler), in the
originals' plain style: a Python loop over blocks and steps, per-row `topk`, no hf_unmask code. Only the model is
shared with the code under test. They serve as oracles for `tests/strategies/test_strategies.py`.

Conventions shared by every loop:
- `model(x).logits[:, i]` predicts token i (a BERT-like masked LM; no logit shift), greedy token choice
  (`argmax`, i.e. LLaDA/Fast-dLLM with temperature 0), equal-length prompts so no attention mask.
- The canvas is `[prompt | gen_length x mask_id]`, decoded in blocks of `block_length`, left to right.
- `nfe` is counted per row: the forward passes during which that row still had masked positions in the
  current block (the originals count forward passes of the whole batch; for a single row the two agree).
- Random loops draw one `[B, gen_length]` float32 uniform tensor per forward pass from the given generator
  (see each loop for how that relates to the original's draws).
"""

from __future__ import annotations

from collections import Counter
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F


def get_num_transfer_tokens(block_mask_index: torch.Tensor, steps: int) -> torch.Tensor:
    """LLaDA: tokens to unmask per step, the block's masked count split evenly, remainder to the first steps."""
    mask_num = block_mask_index.sum(dim=1, keepdim=True)
    base = mask_num // steps
    remainder = mask_num % steps
    num_transfer_tokens = torch.zeros(mask_num.size(0), steps, dtype=torch.int64) + base
    for i in range(mask_num.size(0)):
        num_transfer_tokens[i, : remainder[i]] += 1
    return num_transfer_tokens


def _margin(p: torch.Tensor) -> torch.Tensor:
    """Dream `topk_margin`: top-1 minus top-2 probability."""
    sorted_probs, _ = torch.sort(p, dim=-1, descending=True)
    return sorted_probs[..., 0] - sorted_probs[..., 1]


def _neg_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Dream `entropy`: the negative entropy of the predictive distribution."""
    return -torch.distributions.Categorical(logits=logits.float()).entropy()


@torch.no_grad()
def llada_generate(
    model,
    prompt: torch.Tensor,
    steps: int,
    gen_length: int,
    block_length: int,
    remasking: str = "low_confidence",
    mask_id: int = 3,
    generator: Optional[torch.Generator] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """LLaDA's `generate` (temperature 0, no CFG) with the remasking scores of LLaDA and Dream.

    `remasking`: `low_confidence` (softmax probability of the argmax token), `random` (uniform scores),
    `margin` (Dream `topk_margin`), `entropy` (Dream `entropy`, negative entropy). Every block gets
    `steps // num_blocks` steps; at step i each row unmasks `num_transfer_tokens[row, i]` positions with the
    highest score, scores outside the current block being -inf.

    For `random`, LLaDA draws `torch.rand((B, prompt + gen_length))` from the global RNG; here the draw covers
    the generated region only, `[B, gen_length]`, from `generator`. Prompt positions are never candidates, so the
    two choose the same way (a uniformly random k-subset); this form lets the test reproduce the exact draws.
    """
    B, P = prompt.shape
    x = torch.full((B, P + gen_length), mask_id, dtype=torch.long)
    x[:, :P] = prompt.clone()
    assert gen_length % block_length == 0
    num_blocks = gen_length // block_length
    assert steps % num_blocks == 0
    steps_per_block = steps // num_blocks
    nfe = torch.zeros(B, dtype=torch.long)

    for num_block in range(num_blocks):
        start, end = P + num_block * block_length, P + (num_block + 1) * block_length
        block_mask_index = x[:, start:end] == mask_id
        num_transfer_tokens = get_num_transfer_tokens(block_mask_index, steps_per_block)
        for i in range(steps_per_block):
            mask_index = x == mask_id
            nfe += mask_index[:, start:end].any(dim=1).long()
            logits = model(x).logits
            x0 = torch.argmax(logits, dim=-1)

            if remasking == "low_confidence":
                p = F.softmax(logits.to(torch.float64), dim=-1)
                x0_p = torch.squeeze(torch.gather(p, dim=-1, index=torch.unsqueeze(x0, -1)), -1)
            elif remasking == "random":
                x0_p = torch.full(x0.shape, -np.inf, dtype=torch.float64)
                x0_p[:, P:] = torch.rand((B, gen_length), generator=generator, dtype=torch.float32).double()
            elif remasking == "margin":
                x0_p = _margin(F.softmax(logits.to(torch.float64), dim=-1))
            elif remasking == "entropy":
                x0_p = _neg_entropy(logits).double()
            else:
                raise NotImplementedError(remasking)
            x0_p[:, end:] = -np.inf

            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, -np.inf)
            transfer_index = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(confidence.shape[0]):
                _, select_index = torch.topk(confidence[j], k=int(num_transfer_tokens[j, i]))
                transfer_index[j, select_index] = True
            x[transfer_index] = x0[transfer_index]
    return x, nfe


@torch.no_grad()
def dream_origin_generate(
    model,
    prompt: torch.Tensor,
    steps: int,
    gen_length: int,
    block_length: int,
    eps: float = 1e-3,
    mask_id: int = 3,
    generator: Optional[torch.Generator] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dream's `alg='origin'`, per block (as Fast-dLLM's Dream port does): time grid
    `t = linspace(1, eps, steps_per_block + 1)`; at block step i each masked position of the block is unmasked with
    probability `1 - t[i+1] / t[i]`, all remaining ones at the last step.

    Dream draws `torch.rand` over the masked positions only (flattened, global RNG); here one `[B, gen_length]`
    float32 draw per forward pass from `generator`, compared at the masked positions of the block: the same
    Bernoulli law, in a form the test can reproduce exactly.

    Where Dream lets a step pass with nothing unmasked, this loop (like hf_unmask's documented progress guarantee)
    unmasks the row's most confident masked position of the block instead.
    """
    B, P = prompt.shape
    x = torch.full((B, P + gen_length), mask_id, dtype=torch.long)
    x[:, :P] = prompt.clone()
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    timesteps = torch.linspace(1, eps, steps_per_block + 1)
    nfe = torch.zeros(B, dtype=torch.long)

    for num_block in range(num_blocks):
        start, end = P + num_block * block_length, P + (num_block + 1) * block_length
        i = 0
        while (x[:, start:end] == mask_id).any():
            mask_index = x == mask_id
            mask_index[:, end:] = False
            nfe += mask_index.any(dim=1).long()
            logits = model(x).logits
            probs = torch.softmax(logits.float(), dim=-1)
            confidence, x0 = probs.max(dim=-1)

            t, s = timesteps[i], timesteps[i + 1]
            p_transfer = 1 - s / t if i < steps_per_block - 1 else 1
            draws = torch.rand((B, gen_length), generator=generator, dtype=torch.float32)
            transfer_index = torch.zeros_like(mask_index)
            transfer_index[:, P:] = draws < p_transfer
            transfer_index &= mask_index
            for j in range(B):  # progress: a row with masks that drew nothing unmasks its most confident one
                if mask_index[j].any() and not transfer_index[j].any():
                    conf_j = torch.where(mask_index[j], confidence[j], -np.inf)
                    transfer_index[j, torch.argmax(conf_j)] = True
            x[transfer_index] = x0[transfer_index]
            i += 1
    return x, nfe


@torch.no_grad()
def fast_dllm_generate(
    model,
    prompt: torch.Tensor,
    gen_length: int,
    block_length: int,
    threshold: Optional[float] = None,
    factor: Optional[float] = None,
    mask_id: int = 3,
    stats: Optional[Counter] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fast-dLLM's `generate` (no cache, temperature 0, low_confidence) with its threshold or factor rule.

    Within the current block, until it has no masks:
    - threshold: rank the row's masked confidences (float64 softmax) in descending order; keep the first always,
      the others when their confidence is `>= threshold`.
    - factor: the rank-r entry (r = 1, 2, ...) passes when its confidence is `>= 1 - factor / (r + 1)`; accept the
      largest passing prefix, the first always.

    `stats` (optional) counts `forced` (steps where only the always-accepted first entry would pass) and
    `parallel` (steps with more than one position accepted), so tests can check that both paths ran.
    """
    assert (threshold is None) != (factor is None)
    B, P = prompt.shape
    x = torch.full((B, P + gen_length), mask_id, dtype=torch.long)
    x[:, :P] = prompt.clone()
    num_blocks = gen_length // block_length
    nfe = torch.zeros(B, dtype=torch.long)

    for num_block in range(num_blocks):
        start, end = P + num_block * block_length, P + (num_block + 1) * block_length
        while (x[:, start:end] == mask_id).sum() > 0:
            mask_index = x == mask_id
            mask_index[:, end:] = 0
            nfe += mask_index.any(dim=1).long()
            logits = model(x).logits
            x0 = torch.argmax(logits, dim=-1)
            p = F.softmax(logits.to(torch.float64), dim=-1)
            x0_p = torch.squeeze(torch.gather(p, dim=-1, index=torch.unsqueeze(x0, -1)), -1)
            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, -np.inf)

            transfer_index = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(B):
                n = int(mask_index[j].sum())
                if n == 0:
                    continue
                values, select_index = torch.topk(confidence[j], k=n)
                if threshold is not None:
                    accepted = 1
                    transfer_index[j, select_index[0]] = True
                    for k in range(1, n):
                        if values[k] >= threshold:
                            transfer_index[j, select_index[k]] = True
                            accepted += 1
                    forced = not bool(values[0] >= threshold)
                else:
                    accepted = 1  # rank 1 always
                    for k in range(1, n):
                        if values[k] < 1 - factor / (k + 2):  # 0-based k is rank k + 1
                            break
                        accepted += 1
                    transfer_index[j, select_index[:accepted]] = True
                    forced = accepted == 1 and n > 1
                if stats is not None:
                    stats["forced"] += int(forced)
                    stats["parallel"] += int(accepted > 1)
            x[transfer_index] = x0[transfer_index]
    return x, nfe


@torch.no_grad()
def eb_sampler_generate(
    model,
    prompt: torch.Tensor,
    gen_length: int,
    block_length: int,
    gamma: float,
    mask_id: int = 3,
    stats: Optional[Counter] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """EB-Sampler (greedy): sort the masked positions of the block by entropy, lowest first, and unmask the first
    k, k the number of prefixes whose cumulative entropy minus their running max entropy is `<= gamma`, at least 1.

    The original samples over the whole sequence (one block); semi-autoregressive mode applies it per block.
    `stats` counts `single` and `parallel` steps.
    """
    B, P = prompt.shape
    x = torch.full((B, P + gen_length), mask_id, dtype=torch.long)
    x[:, :P] = prompt.clone()
    num_blocks = gen_length // block_length
    nfe = torch.zeros(B, dtype=torch.long)

    for num_block in range(num_blocks):
        start, end = P + num_block * block_length, P + (num_block + 1) * block_length
        while (x[:, start:end] == mask_id).any():
            mask_index = x == mask_id
            mask_index[:, end:] = False
            nfe += mask_index.any(dim=1).long()
            logits = model(x).logits
            predicted_tokens = torch.argmax(logits, dim=-1)
            for j in range(B):
                if not mask_index[j].any():
                    continue
                masked_positions = mask_index[j].nonzero(as_tuple=True)[0]
                err_proxy = torch.distributions.Categorical(logits=logits[j, masked_positions].float()).entropy()
                sorted_err, order = torch.sort(err_proxy)
                acc_entropy = torch.cumsum(sorted_err, dim=0)
                cummax_entropy = torch.cummax(sorted_err, dim=0).values
                k = int((acc_entropy - cummax_entropy <= gamma).sum())
                k = max(1, min(k, len(masked_positions)))
                chosen = masked_positions[order[:k]]
                x[j, chosen] = predicted_tokens[j, chosen]
                if stats is not None:
                    stats["single"] += int(k == 1)
                    stats["parallel"] += int(k > 1)
    return x, nfe
