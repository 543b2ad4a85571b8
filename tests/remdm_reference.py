"""Reference loops for ReMDM, written from the published algorithms and the generation loop's documented rules, in
plain torch on the model's own forward (no hf_unmask generation code).

* `published_llada`: ReMDM's LLaDA recipe as published (re-mask before the forward pass, commit after it), with
  the loop window taken as fractions of the block's steps and greedy token choice.
* `denoise`: the generation loop's rules around a per-step rule (`remdm_rule`, `llada_rule`): blocks, the
  progress fallback, the pace rule and the re-mask cap of `finish_blocks`, a row done once its block has no mask,
  and the EOS stop after a block. The decision confidence of a position is recorded when it is committed.

The forward is the canvas's full forward, or with `cache_mode` Fast-dLLM's cache: a full forward at each block's
first step, then the window (the current block and all after it for "prefix", the block only for "dual", widened
by the model's cache margin) against the cached keys and values; the other positions keep the block's first logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import torch

from hf_unmask.generation import DiffusionKVCache


class Forward:
    """Logits `[B, L, V]` (float32, [MASK] at -inf) of the generated positions at step `step` of block `block`."""

    def __init__(self, model, ids, attention_mask, L, BL, mask_id, cache_mode=None, scale=None):
        self.model, self.P, self.L, self.BL, self.mask_id = model, ids.shape[1], L, BL, mask_id
        self.cache_mode = cache_mode
        self.scale = scale  # logits multiplied by it (a flatter distribution) before [MASK] is excluded
        self.kwargs = {}
        if attention_mask is not None and not bool(attention_mask.bool().all()):
            full = torch.cat([attention_mask.long(), torch.ones(ids.shape[0], L, dtype=torch.long)], dim=1)
            self.kwargs = {"attention_mask": full, "position_ids": (full.cumsum(-1) - 1).clamp_min(0)}
        self.margin = model.config.conv_kernel_size // 2
        self.logits = None

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, block: int, step: int) -> torch.Tensor:
        P, L = self.P, self.L
        if self.cache_mode is None:
            logits = self.model(input_ids=x, **self.kwargs).logits[:, P:].float()
        elif step == 0:
            self.cache = DiffusionKVCache()
            self.logits = self.model(input_ids=x, cache=self.cache, **self.kwargs).logits[:, P:].float()
            logits = self.logits
        else:
            start = P + block * self.BL
            end = P + ((block + 1) * self.BL if self.cache_mode == "dual" and self.BL < L else L)
            lo, hi = max(start - self.margin, 0), min(end + self.margin, P + L)
            self.cache.window = (lo, hi)
            kwargs = {k: (v[:, lo:hi] if k == "position_ids" else v) for k, v in self.kwargs.items()}
            raw = self.model(input_ids=x[:, lo:hi], cache=self.cache, **kwargs).logits.float()
            self.logits[:, start - P : end - P] = raw[:, start - lo : end - lo]
            logits = self.logits
        logits = logits.clone() if self.scale is None else logits * self.scale
        logits[..., self.mask_id] = float("-inf")
        return logits


def top(score: torch.Tensor, among: torch.Tensor, count: torch.Tensor, largest: bool = True) -> torch.Tensor:
    """Per row the `count` positions of `among` with the largest (smallest) `score`, lowest index first on ties."""
    out = torch.zeros_like(among)
    for b in range(score.shape[0]):
        idx = among[b].nonzero().squeeze(-1).tolist()
        idx.sort(key=lambda j: (-score[b, j].item() if largest else score[b, j].item(), j))
        out[b, idx[: max(0, int(count[b]))]] = True
    return out


@dataclass
class Step:
    """What a per-step rule sees."""

    block_step: int
    eligible: torch.Tensor
    revisable: torch.Tensor
    confidence: torch.Tensor
    decided_confidence: torch.Tensor  # confidence when each position was committed
    block_mask_count: torch.Tensor


Rule = Callable[[Step], tuple[torch.Tensor, torch.Tensor]]


def denoise(model, ids, attention_mask, L, BL, budget, rule: Rule, mask_id, *, cache_mode=None, finish_blocks=True,
            fallback=True, eos_id: Optional[int] = None, scale: Optional[float] = None):  # fmt: skip
    """The loop's rules around `rule(step) -> (unmask, remask)`; `(sequences, nfe)`."""
    B, P = ids.shape
    x = torch.cat([ids, torch.full((B, L), mask_id)], dim=1)
    gen = x[:, P:]
    forward = Forward(model, ids, attention_mask, L, BL, mask_id, cache_mode, scale)
    nfe = torch.zeros(B, dtype=torch.long)
    decided_confidence = torch.zeros(B, L)
    for block in range(L // BL):
        in_block = torch.zeros(L, dtype=torch.bool)
        in_block[block * BL : (block + 1) * BL] = True
        count = (gen[:, in_block] == mask_id).sum(-1)
        pace = (count + budget - 1) // budget
        for step in range(budget):
            masked = gen == mask_id
            eligible = masked & in_block
            remaining = eligible.sum(-1)
            live = remaining > 0
            if not live.any():
                break
            logits = forward(x, block, step)
            probs = torch.softmax(logits, dim=-1)
            confidence, proposal = probs.max(-1)
            in_place = logits.gather(-1, gen.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
            token_confidence = torch.where(masked, 0.0, in_place.exp())
            revisable = ~masked & in_block & live.unsqueeze(-1)
            unmask, remask = rule(Step(step, eligible, revisable, confidence, decided_confidence.clone(), count))
            unmask = unmask & eligible
            if finish_blocks and (budget < BL or not fallback):
                need = remaining - pace * (budget - step - 1)
                need = torch.maximum(need, live.long()) if fallback else need.clamp_min(0)
            else:
                need = live.long() if fallback else torch.zeros(B, dtype=torch.long)
            missing = (need - unmask.sum(-1)).clamp_min(0)
            unmask = unmask | top(confidence, eligible & ~unmask, missing)
            gen[unmask] = proposal[unmask]
            decided_confidence[unmask] = confidence[unmask]
            remask = remask & revisable & ~unmask
            if finish_blocks:
                allowed = pace * (budget - step - 1) - (remaining - unmask.sum(-1))
                remask = top(token_confidence, remask, allowed.clamp_min(0), largest=False)
            gen[remask] = mask_id
            nfe += live.long()
        if eos_id is not None:
            done = (gen[:, : (block + 1) * BL] == eos_id).any(-1)
            gen[done.unsqueeze(-1) & (gen == mask_id)] = eos_id
    return x, nfe


# ------------------------------------------------------------------------------------------ ReMDM (MDLM sampler)
def remdm_rates(schedule, i, T, eta=None, t_on=None, t_off=None, alpha_on=None):
    """`(alpha_t, alpha_s, sigma)` of step i of T from t = 1 - i dt to s = t - dt, dt = (1 - 1e-5) / T (the last step
    to s = 0); for "conf", sigma is sigma_max."""
    dt = (1 - 1e-5) / T
    t = 1 - i * dt
    s = 0.0 if i == T - 1 else t - dt
    if schedule == "loop":
        if t > t_on:
            # alpha_s is the same formula at s, kept at alpha_on (hf_unmask's documented cap for coarse grids)
            a_t, a_s, sigma = alpha_on * (1 - t) / (1 - t_on), min(alpha_on, alpha_on * (1 - s) / (1 - t_on)), 0.0
        elif t > t_off:
            a_t, a_s, sigma = alpha_on, alpha_on, eta
        else:
            a_t, a_s, sigma = 1 - (1 - alpha_on) * t / t_off, 1 - (1 - alpha_on) * s / t_off, 0.0
        if i == T - 1:
            a_s, sigma = 1.0, 0.0
        return a_t, a_s, sigma
    a_t, a_s = 1 - t, 1 - s
    bound = (1 - a_s) / a_t if a_t > 0 else None
    if schedule == "cap":
        sigma = eta if bound is None else min(eta, bound)
    else:
        sigma_max = 1.0 if bound is None else min(1.0, bound)
        sigma = sigma_max if schedule == "conf" else eta * sigma_max
    return a_t, a_s, sigma


def remdm_rule(schedule, T, generator, **params) -> Rule:
    """ReMDM's step: one [B, L] uniform; masked eligible positions unmask with probability
    (a_s - (1 - sigma) a_t) / (1 - a_t), decided ones re-mask with probability sigma ("conf": sigma_max times the
    softmax of minus the decision confidences over the row's decided block positions; masked ones then use
    sigma = 0)."""

    def rule(step: Step):
        a_t, a_s, sigma = remdm_rates(schedule, step.block_step, T, **params)
        u = torch.rand(step.eligible.shape, generator=generator).double()
        if schedule == "conf":
            weight = torch.where(step.revisable, torch.exp(-step.decided_confidence.double()), 0.0)
            total = weight.sum(-1, keepdim=True)
            sigma_i = sigma * torch.where(total > 0, weight / total.clamp_min(1e-300), 0.0)
            q = (a_s - a_t) / (1 - a_t)
        else:
            sigma_i = torch.full(u.shape, sigma, dtype=torch.float64)
            q = (a_s - (1 - sigma) * a_t) / (1 - a_t)
        return step.eligible & (u < min(1.0, max(0.0, q))), step.revisable & (u < sigma_i)

    return rule


# ------------------------------------------------------------------------------------------------ ReMDM-LLaDA
def llada_phases(T, r, alpha_on, loop_fraction):
    loop = math.floor(loop_fraction * T) if r > 0 else 0
    plain = T - loop
    before = math.floor(alpha_on * plain)
    return before, loop, plain


def plain_count(mask_count: torch.Tensor, plain: int, k: int) -> torch.Tensor:
    """LLaDA's schedule: the block's masks split over `plain` steps, remainder first; entry k."""
    return mask_count // plain + (k < mask_count % plain).long()


def llada_rule(T, r, alpha_on=0.875, loop_fraction=0.5) -> Rule:
    """The recipe as one step per forward: commit (k plain, r in the loop) the most confident masked positions, then,
    when the next step is a loop step, pick its r re-masks (lowest decision confidence among the decided block
    positions and the ones just committed): a just-committed one among them is left masked."""
    before, loop, plain = llada_phases(T, r, alpha_on, loop_fraction)
    in_loop = lambda j: before <= j < before + loop  # noqa: E731

    def rule(step: Step):
        i, eligible = step.block_step, step.eligible
        left = eligible.sum(-1)
        k = i if i < before else i - loop
        if in_loop(i):
            count = left.clamp_max(r)
        else:
            count = plain_count(step.block_mask_count, plain, k) if k < plain else left
        commit = top(step.confidence, eligible, count)
        if not in_loop(i + 1):
            return commit, torch.zeros_like(commit)
        pool = step.revisable | commit
        score = torch.where(commit, step.confidence, step.decided_confidence)
        lowest = top(score, pool, pool.sum(-1).clamp_max(r), largest=False)
        return commit & ~lowest, lowest & ~commit

    return rule


def published_llada(model, ids, attention_mask, L, BL, T, r, mask_id, eos_id, alpha_on=0.875, loop_fraction=0.5):
    """ReMDM-LLaDA as published, greedy: per block T iterations, one forward each; loop iterations first re-mask
    the r decided block tokens of lowest cached confidence (before the forward pass), then commit the r most
    confident masked positions; plain iterations commit LLaDA's k. The cache holds a token's confidence at commit
    time (+inf elsewhere, reset per block). Stops after a block holding an EOS. `(sequences, nfe)`."""
    B, P = ids.shape
    x = torch.cat([ids, torch.full((B, L), mask_id)], dim=1)
    gen = x[:, P:]
    forward = Forward(model, ids, attention_mask, L, BL, mask_id)
    before, loop, plain = llada_phases(T, r, alpha_on, loop_fraction)
    nfe = torch.zeros(B, dtype=torch.long)
    for block in range(L // BL):
        lo, hi = block * BL, (block + 1) * BL
        cache = torch.full((B, L), float("inf"))
        count = (gen[:, lo:hi] == mask_id).sum(-1)
        for i in range(T):
            if not (gen[:, lo:hi] == mask_id).any():
                break
            looping = before <= i < before + loop
            if looping:
                decided = torch.isfinite(cache)
                chosen = top(cache, decided, decided.sum(-1).clamp_max(r), largest=False)
                gen[chosen] = mask_id
                cache[chosen] = float("inf")
            eligible = torch.zeros_like(gen, dtype=torch.bool)
            eligible[:, lo:hi] = gen[:, lo:hi] == mask_id
            probs = torch.softmax(forward(x, block, i), dim=-1)
            confidence, proposal = probs.max(-1)
            nfe += eligible.any(-1).long()
            k = i if i < before else i - loop
            n = eligible.sum(-1).clamp_max(r) if looping else plain_count(count, plain, k)
            commit = top(confidence, eligible, n)
            gen[commit] = proposal[commit]
            cache[commit] = confidence[commit]
        done = (gen[:, :hi] == eos_id).any(-1)
        gen[done.unsqueeze(-1) & (gen == mask_id)] = eos_id
    return x, nfe
