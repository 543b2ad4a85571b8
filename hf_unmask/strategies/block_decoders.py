"""The decoders that block-diffusion families publish with their checkpoints, as strategies.

Each reproduces, step for step, the selection rule of the family's own `generate` (greedy token choice; the loop
never proposes [MASK], whose logit it sets to -inf before the softmax):

* `LLaDA2Decoder`: LLaDA2.0's (`LLaDA2MoeModelLM.generate` of inclusionAI/LLaDA2.0-mini): in each block, step s
  commits every masked position whose confidence exceeds `threshold` when there are at least `k_s` of them, else
  the `k_s` most confident, where `k_s` splits the block length evenly over `steps`; after a block that holds an
  EOS, generation stops.
* `LLaDA21Decoder`: LLaDA2.1's threshold decoding with token editing ("M2T + T2T"): commit the masked positions
  above `threshold` (at least `num_to_transfer`), and replace every decided, generated token of the block whose
  prediction differs with confidence above `editing_threshold`; after the block is full, editing steps go on
  while they change something, at most `max_post_steps`.
* `SDARDecoder`: SDAR's `block_diffusion_generate` (JetAstra/SDAR): `low_confidence_dynamic` (LLaDA2.0's rule with
  SDAR's threshold), `low_confidence_static` (the `k_s` most confident) or `sequential` (the `k_s` leftmost masked
  positions); generation stops after a block that holds a stop id (the EOS ids).
"""

from __future__ import annotations

import torch

from ..generation.state import DenoisingState
from ..generation.strategy import StrategyOutput
from ._utils import check_number
from .base import UnmaskingStrategy


def transfer_count(block_length: int, steps: int, step: int) -> int:
    """Positions step `step` of a block commits at least: `block_length` split evenly over `steps`, the remainder
    going to the first steps (0 past the last step).

    Example:
        ```python
        >>> [transfer_count(32, 10, s) for s in range(10)]
        [4, 4, 3, 3, 3, 3, 3, 3, 3, 3]
        ```
    """
    if step >= steps:
        return 0
    return block_length // steps + int(step < block_length % steps)


def _most_confident(state: DenoisingState, count: int) -> torch.Tensor:
    """`[B, L]` bool: the `count` most confident eligible positions of each row (fewer when fewer are eligible)."""
    score = state.confidence.float().masked_fill(~state.eligible, float("-inf"))
    k = min(count, score.shape[-1])
    if k <= 0:
        return torch.zeros_like(state.eligible)
    top = score.topk(k, dim=-1).indices
    return torch.zeros_like(state.eligible).scatter(-1, top, True) & state.eligible


def _threshold_or_top(state: DenoisingState, threshold: float, count: int) -> torch.Tensor:
    """The positions above `threshold` when there are at least `count` of them, else the `count` most confident."""
    above = state.eligible & (state.confidence.float() > threshold)
    enough = above.sum(-1, keepdim=True) >= count
    return torch.where(enough, above, _most_confident(state, count))


def _check_steps(owner: str, steps: object, name: str = "steps_per_block") -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {steps!r}.")
    return steps


class LLaDA2Decoder(UnmaskingStrategy):
    """LLaDA2.0's own decoder: per block at most `steps_per_block` steps; commit the masked positions above
    `threshold`, or the most confident `k` when fewer pass (`k` = the block length split evenly over the steps);
    stop after a block that holds an EOS.

    Defaults are those of the published `generate` (threshold 0.95, 32 steps per block, minimal_topk 1, on
    blocks of 32; its `steps` argument counts steps per block, hence the name here, which is not the generation
    config's total `steps`). The steps are capped at `max_new_tokens // minimal_topk`, as there.

    Args:
        threshold: confidence a masked position must exceed to be committed in parallel.
        steps_per_block: steps per block (the schedule of `k`).
        minimal_topk: caps `steps_per_block` at `max_new_tokens // minimal_topk`.
        eos_early_stop: stop after a block that holds an EOS (the published decoder always does).

    Example:
        ```python
        >>> from hf_unmask.strategies import LLaDA2Decoder
        >>> LLaDA2Decoder()
        LLaDA2Decoder(threshold=0.95, steps_per_block=32, minimal_topk=1, eos_early_stop=True)
        ```
    """

    deterministic = True
    reads_only_eligible = True
    name = "llada2"

    def __init__(
        self, threshold: float = 0.95, steps_per_block: int = 32, minimal_topk: int = 1, eos_early_stop: bool = True
    ) -> None:
        owner = type(self).__name__
        self.threshold = check_number(owner, "threshold", threshold, low=0.0, high=1.0, example="threshold=0.95")
        self.steps_per_block = _check_steps(owner, steps_per_block)
        self.minimal_topk = _check_steps(owner, minimal_topk, "minimal_topk")
        self.eos_early_stop = bool(eos_early_stop)
        self.stops_after_block_with_eos = self.eos_early_stop

    def __call__(self, state: DenoisingState) -> torch.Tensor:
        steps = min(self.steps_per_block, max(1, state.config.gen_length // self.minimal_topk))
        count = transfer_count(state.config.effective_block_length, steps, state.block_step)
        return _threshold_or_top(state, self.threshold, count)


class LLaDA21Decoder(UnmaskingStrategy):
    """LLaDA2.1's decoder: threshold decoding plus token editing.

    Every step commits the masked positions of the block whose confidence exceeds `threshold` (when fewer than
    `num_to_transfer` do, the `num_to_transfer` most confident), and replaces each decided generated token of the
    block whose prediction differs from it with confidence above `editing_threshold`. Once the block has no mask
    left, editing steps go on while they change a token, at most `max_post_steps`. The prompt is never edited.

    Defaults are those of the published `generate` (threshold 0.95, editing_threshold 0.9, max_post_steps 16,
    num_to_transfer 1, eos_early_stop False, blocks of 32).

    Example:
        ```python
        >>> from hf_unmask.strategies import LLaDA21Decoder
        >>> LLaDA21Decoder(threshold=0.7, editing_threshold=0.5).max_revision_steps
        16
        ```
    """

    deterministic = True
    revises_decided_tokens = True
    name = "llada2.1"

    def __init__(
        self,
        threshold: float = 0.95,
        editing_threshold: float = 0.9,
        max_post_steps: int = 16,
        num_to_transfer: int = 1,
        eos_early_stop: bool = False,
    ) -> None:
        owner = type(self).__name__
        self.threshold = check_number(owner, "threshold", threshold, low=0.0, high=1.0, example="threshold=0.95")
        self.editing_threshold = check_number(
            owner, "editing_threshold", editing_threshold, low=0.0, high=1.0, example="editing_threshold=0.9"
        )
        if isinstance(max_post_steps, bool) or not isinstance(max_post_steps, int) or max_post_steps < 0:
            raise ValueError(f"{owner}: max_post_steps must be an integer >= 0, got {max_post_steps!r}.")
        self.max_post_steps = max_post_steps
        self.max_revision_steps = max_post_steps
        self.num_to_transfer = _check_steps(owner, num_to_transfer, "num_to_transfer")
        self.eos_early_stop = bool(eos_early_stop)
        self.stops_after_block_with_eos = self.eos_early_stop

    def __call__(self, state: DenoisingState) -> StrategyOutput:
        selection = _threshold_or_top(state, self.threshold, self.num_to_transfer)
        revision = state.revisable & (state.confidence.float() > self.editing_threshold)
        return StrategyOutput(selection=selection, revision=revision)


class SDARDecoder(UnmaskingStrategy):
    """SDAR's decoder (`block_diffusion_generate`): `denoising_steps` steps per block with the schedule `k` (the
    block length split evenly over them) and one of three rules:

    * `"low_confidence_dynamic"` (default): the masked positions above `confidence_threshold` when at least `k`
      pass, else the `k` most confident;
    * `"low_confidence_static"`: the `k` most confident;
    * `"sequential"`: the `k` leftmost masked positions.

    Generation stops after a block that holds an EOS (SDAR's `stopping_criteria_idx`). Defaults follow SDAR's
    `generate.py` (blocks of 4, 4 steps, threshold 0.85). Where SDAR's code asks for more positions than the block
    still has masked (its top-k then also picks decided positions, the prompt's tail included, and rewrites them),
    this decoder commits the masked ones only. SDAR's `entropy_bounded` rule is not offered: the published code
    sums entropies over the block instead of per position; `EBSampler` is the entropy-bounded rule as published
    by its authors.

    Example:
        ```python
        >>> from hf_unmask.strategies import SDARDecoder
        >>> SDARDecoder(remasking_strategy="sequential")
        SDARDecoder(remasking_strategy='sequential', confidence_threshold=0.85, denoising_steps=4)
        ```
    """

    deterministic = True
    reads_only_eligible = True
    stops_after_block_with_eos = True
    name = "sdar"
    RULES = ("low_confidence_dynamic", "low_confidence_static", "sequential")

    def __init__(
        self,
        remasking_strategy: str = "low_confidence_dynamic",
        confidence_threshold: float = 0.85,
        denoising_steps: int = 4,
    ) -> None:
        owner = type(self).__name__
        if remasking_strategy not in self.RULES:
            raise ValueError(
                f"{owner}: remasking_strategy must be one of {', '.join(self.RULES)}; got {remasking_strategy!r}."
            )
        self.remasking_strategy = remasking_strategy
        self.confidence_threshold = check_number(
            owner, "confidence_threshold", confidence_threshold, low=0.0, high=1.0, example="confidence_threshold=0.85"
        )
        self.denoising_steps = _check_steps(owner, denoising_steps, "denoising_steps")

    def __call__(self, state: DenoisingState) -> torch.Tensor:
        count = transfer_count(state.config.effective_block_length, self.denoising_steps, state.block_step)
        if self.remasking_strategy == "low_confidence_dynamic":
            return _threshold_or_top(state, self.confidence_threshold, count)
        if self.remasking_strategy == "low_confidence_static":
            return _most_confident(state, count)
        rank = state.eligible.long().cumsum(-1)  # 1 at the leftmost eligible position, 2 at the next, ...
        return state.eligible & (rank <= count)
