"""Small helpers shared by the heuristic strategies: hyper-parameter checks and per-position uncertainty scores."""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from ..generation.schedule import steps_per_block
from ..generation.state import DenoisingState


# ---- hyper-parameter validation ------------------------------------------------------------------------
def check_number(
    owner: str,
    name: str,
    value: Any,
    *,
    low: Optional[float] = None,
    high: Optional[float] = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    example: str,
) -> float:
    """Return `value` as a float after checking that it is a finite real number in the given range.

    Raises `ValueError` naming the strategy, the argument, the allowed range and a valid example.
    """
    left = "(-inf" if low is None else f"{'[' if low_inclusive else '('}{low}"
    right = "+inf)" if high is None else f"{high}{']' if high_inclusive else ')'}"
    interval = f"{left}, {right}"
    hint = f"{owner}: {name} must be a real number in {interval}, got {value!r}. Pass e.g. {owner}({example})."
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(hint)
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(hint)
    if low is not None and (value < low or (value == low and not low_inclusive)):
        raise ValueError(hint)
    if high is not None and (value > high or (value == high and not high_inclusive)):
        raise ValueError(hint)
    return value


def check_steps(owner: str, steps: Any) -> Optional[int]:
    """`steps` is `None` (use the generation config's) or a positive integer."""
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(
            f"{owner}: steps must be a positive integer (total denoising steps, split evenly over the blocks) or None "
            f"to use the generation config's `steps`; got {steps!r}. Pass e.g. {owner}(steps=32)."
        )
    return steps


def block_steps(state: DenoisingState, steps: Optional[int]) -> int:
    """Steps the current block gets: `steps` (else the config's, else L) split evenly over the blocks."""
    total = steps if steps is not None else state.config.steps
    if total is None:
        total = state.config.gen_length
    per_block = steps_per_block(total, state.config.num_blocks)
    block_len = state.config.effective_block_length
    if per_block > block_len:
        raise ValueError(
            f"steps={total} gives {per_block} steps per block but a block has only {block_len} tokens. "
            f"Use steps <= {block_len * state.config.num_blocks}."
        )
    return per_block


def uniform_like(state: DenoisingState) -> torch.Tensor:
    """`[B, L]` float32 uniforms in [0, 1) drawn from `state.generator` (the global RNG when it is `None`).

    Drawn on the generator's device and moved, so a CPU generator also drives a model on GPU. Drawn for the whole
    batch when the step feeds only some rows (`state.rows`), so a row's draws do not depend on which rows are fed.
    """
    reference = state.confidence
    generator = state.generator
    device = generator.device if generator is not None else reference.device
    rows = state.rows
    shape = reference.shape if rows is None else (state.full_batch_size, *reference.shape[1:])
    draws = torch.rand(shape, generator=generator, device=device, dtype=torch.float32)
    if rows is not None:
        draws = draws.index_select(0, rows.to(device))
    return draws.to(reference.device)


# ---- uncertainty scores over the current block ---------------------------------------------------------
def _block_log_probs(state: DenoisingState) -> torch.Tensor:
    """`[B, BL, V]` float32 log-softmax of the processed logits, over the current block only."""
    return torch.log_softmax(state.logits[:, state.block_start : state.block_end].float(), dim=-1)


def _scatter_block(state: DenoisingState, block_values: torch.Tensor, fill: float) -> torch.Tensor:
    """Place `[B, BL]` block values into a `[B, L]` tensor filled with `fill` elsewhere."""
    full = torch.full(state.confidence.shape, fill, dtype=block_values.dtype, device=block_values.device)
    full[:, state.block_start : state.block_end] = block_values
    return full


def block_entropy(state: DenoisingState, fill: float = float("inf")) -> torch.Tensor:
    """`[B, L]` Shannon entropy (nats) of each position's predictive distribution, `fill` outside the block.

    Zero-probability tokens (e.g. removed by `top_k`) contribute 0, as `torch.distributions.Categorical` does.
    """
    log_p = _block_log_probs(state)
    # 0 * log 0 = 0: clamp -inf to the most negative finite float so the product is an exact zero
    log_p_finite = log_p.clamp_min(torch.finfo(log_p.dtype).min)
    entropy = -(log_p.exp() * log_p_finite).sum(dim=-1)
    return _scatter_block(state, entropy, fill)


def block_margin(state: DenoisingState, fill: float = float("-inf")) -> torch.Tensor:
    """`[B, L]` top-1 minus top-2 probability of each position, `fill` outside the block."""
    log_p = _block_log_probs(state)
    k = min(2, log_p.shape[-1])
    top = log_p.topk(k, dim=-1).values.exp()
    margin = top[..., 0] - top[..., 1] if k == 2 else top[..., 0]
    return _scatter_block(state, margin, fill)
