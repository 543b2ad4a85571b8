"""Log-likelihood of a continuation under a masked dLLM: the Monte-Carlo estimate masked diffusion models are scored
with on multiple-choice tasks (the ELBO of LLaDA's evaluation).

A masked dLLM gives no left-to-right factorisation, so `log p(continuation | context)` is bounded below by an
expectation over random maskings: draw a masking ratio t, mask each continuation token with probability t, and sum
the cross-entropy of the masked tokens weighted by 1/t. The estimate averages `mc_num` such samples. The masked
counts of one forward pass of `b` samples are spread evenly over 1..T (T continuation tokens) from a random start,
which lowers the variance for the same number of samples; the context is never masked.

Which tokens each sample masks is drawn from a `torch.Generator` seeded by `request_seed(seed, context,
continuation)`, so a request's estimate depends only on the seed and its own text: not on the other requests, the
batch, the process or the device.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

__all__ = ["encode_pair", "greedy_continuation", "mc_loglikelihood", "request_seed", "sample_masks"]


def request_seed(seed: int, context: str, continuation: str) -> int:
    """The seed of one request's masks: a hash of the model's `seed` and the request's text (63 bits).

    Example:
        ```python
        >>> request_seed(0, "a b", " c") == request_seed(0, "a b", " c") != request_seed(1, "a b", " c")
        True
        ```
    """
    digest = hashlib.sha256(f"{seed}\0{context}\0{continuation}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def encode_pair(
    tokenizer: Any, context: str, continuation: str, add_special_tokens: bool = True
) -> tuple[list[int], list[int]]:
    """`(context ids, continuation ids)`: the whole text is encoded at once so the tokens at the boundary are the
    ones the model sees; whitespace that ends the context moves to the continuation (`"Answer: " + "4"` is encoded
    as `"Answer:"` + `" 4"`). A tokenizer that does not encode the context as a prefix of the whole text (one that
    appends special tokens) gets the continuation encoded on its own.

    Example:
        ```python
        >>> from hf_unmask.models import load_dllm
        >>> _, tokenizer = load_dllm("builtin")
        >>> encode_pair(tokenizer, "sort : 3 1 2 ", "1 2 3")
        ([3, 7, 89, 39, 37, 38], [37, 38, 39])
        ```
    """
    trailing = len(context) - len(context.rstrip())
    if trailing:
        context, continuation = context[:-trailing], context[-trailing:] + continuation
    context_ids = tokenizer(context, add_special_tokens=add_special_tokens)["input_ids"]
    whole = tokenizer(context + continuation, add_special_tokens=add_special_tokens)["input_ids"]
    if whole[: len(context_ids)] == context_ids:
        return list(context_ids), list(whole[len(context_ids) :])
    return list(context_ids), list(tokenizer(continuation, add_special_tokens=False)["input_ids"])


def sample_masks(num_tokens: int, rows: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass's masks: `(mask [rows, T] bool, masked count [rows])`.

    A start count k is drawn uniformly from 1..T; row i masks round(k + i * T / rows) tokens (wrapped into 1..T),
    chosen by a random permutation of the T positions (`randperm(T)`, one per row, in row order): position j is
    masked when its rank in the permutation is below the row's count.
    """
    T = num_tokens
    k = int(torch.randint(1, T + 1, (1,), generator=generator))
    counts = torch.round(torch.linspace(float(k), k + (rows - 1) * (T / rows), steps=rows)).long()
    counts = (counts - 1) % T + 1
    ranks = torch.stack([torch.randperm(T, generator=generator) for _ in range(rows)])
    return ranks < counts[:, None], counts


@torch.no_grad()
def mc_loglikelihood(
    adapter: Any,
    context_ids: list[int],
    continuation_ids: list[int],
    mask_id: int,
    mc_num: int,
    mc_batch_size: int,
    generator: torch.Generator,
    device: torch.device,
) -> float:
    """The Monte-Carlo estimate of `log p(continuation | context)` (see the module docstring), from `mc_num`
    samples in forward passes of `mc_batch_size`; `adapter` is the model's `DiffusionAdapter`, whose logits are
    aligned so position i predicts token i for every family (Dream predicts it at i - 1)."""
    T = len(continuation_ids)
    if T == 0:
        return 0.0
    P = len(context_ids)
    sequence = torch.tensor(context_ids + continuation_ids, dtype=torch.long)
    targets = sequence[P:].to(device)
    per_pass = []
    for _ in range(mc_num // mc_batch_size):
        mask, counts = sample_masks(T, mc_batch_size, generator)
        noisy = sequence.repeat(mc_batch_size, 1)
        noisy[:, P:][mask] = mask_id
        logits, _ = adapter.forward(noisy.to(device))
        log_probs = torch.log_softmax(logits[:, P:].float(), dim=-1)
        token_log_probs = log_probs.gather(-1, targets.expand(mc_batch_size, T)[..., None]).squeeze(-1)
        mask = mask.to(device)
        weight = T / counts.to(device=device, dtype=torch.float32)  # 1 / (masked fraction)
        nll = -(token_log_probs * mask).sum(-1) * weight
        per_pass.append(float(nll.mean()))
    return -sum(per_pass) / len(per_pass)


@torch.no_grad()
def greedy_continuation(model: Any, context_ids: list[int], num_tokens: int, device: torch.device) -> list[int]:
    """The continuation the model decodes greedily after the context: `num_tokens` masked positions, one unmasked
    per step, the most confident first (top-k confidence with one token per step, full diffusion)."""
    from ..strategies import TopKConfidence

    input_ids = torch.tensor([context_ids], dtype=torch.long, device=device)
    out = model.generate(
        input_ids,
        strategy=TopKConfidence(steps=num_tokens),
        max_new_tokens=num_tokens,
        block_length=num_tokens,
        temperature=0.0,
        stop_at_eos=False,
    )
    return out[0, len(context_ids) :].tolist()
