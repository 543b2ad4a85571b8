"""Token choice: which token each position would take, and how confident the dLLM is in it."""

from __future__ import annotations

from typing import Optional

import torch


def filter_top_k(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep the `top_k` largest logits on the last axis, set the rest to -inf."""
    top_k = min(top_k, logits.shape[-1])
    kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def filter_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering on the last axis: keep the smallest set of tokens whose probability reaches `top_p`."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cum = torch.softmax(sorted_logits.float(), dim=-1).cumsum(dim=-1)
    # drop a token when the mass before it already reaches top_p; the first token is always kept
    drop_sorted = (cum - torch.softmax(sorted_logits.float(), dim=-1)) >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def choose_tokens(
    logits: torch.Tensor,
    temperature: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    rows: Optional[torch.Tensor] = None,
    batch_size: Optional[int] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Propose a token per position and return `(proposal, confidence)`.

    Greedy when `temperature` is 0/None: the most probable token under the float32 softmax (the lowest index
    among equal probabilities) and its probability. Otherwise Gumbel-max in float64 as LLaDA does:
    `argmax(exp(logits) / (-log U) ** temperature)`, i.e. a draw from `softmax(logits / temperature)`
    restricted by `top_k` / `top_p`. The confidence is the noiseless softmax probability of the proposed
    token under the unrestricted `logits`: top-k/top-p decide what may be drawn, not how sure the model is
    (with top_k=1 every position would otherwise look certain).

    Args:
        logits: `[..., V]` processed logits, e.g. `[B, L, V]` over the generated region.
        rows, batch_size: when `logits` `[b, L, V]` hold only the rows `rows` of a batch of `batch_size`, the noise
            is drawn for the whole batch and those rows taken, so a row's draw does not depend on which other rows
            are fed.
    """
    scores = logits.float()
    if temperature is None or temperature <= 0:
        # One reduction gives both: the most probable token and its probability. (Its index is the logits' argmax
        # except where two logits within ~1e-7 round to the same probability; then the lower index is taken.)
        confidence, proposal = torch.softmax(scores, dim=-1).max(dim=-1)
        return proposal, confidence
    restricted = logits
    if top_k is not None:
        restricted = filter_top_k(restricted, top_k)
    if top_p is not None:
        restricted = filter_top_p(restricted, top_p)
    logits64 = restricted.to(torch.float64)
    shape = logits64.shape if rows is None else (batch_size, *logits64.shape[1:])
    uniform = torch.rand(shape, generator=generator, device=logits.device, dtype=torch.float64)
    if rows is not None:
        uniform = uniform.index_select(0, rows)
    # exp(l) / (-log u)^T, taken in log space to avoid overflow; same argmax
    noisy = logits64 - temperature * torch.log(-torch.log(uniform.clamp_min(torch.finfo(torch.float64).tiny)))
    proposal = noisy.argmax(dim=-1)
    chosen = torch.gather(scores, -1, proposal.unsqueeze(-1)).squeeze(-1)
    return proposal, torch.exp(chosen - torch.logsumexp(scores, dim=-1))
