"""WINO (Wide-In, Narrow-Out): draft many tokens per step, verify the decided ones, re-mask the doubtful ones."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import torch

from ..generation.state import DenoisingState
from ..generation.strategy import StrategyOutput
from ._utils import check_number
from .base import UnmaskingStrategy


def _count(owner: str, name: str, value: Any, example: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}: {name} must be an integer >= {low}, got {value!r}. Pass e.g. {owner}({example}).")
    return value


def _ranks(score: torch.Tensor, descending: bool) -> torch.Tensor:
    """`[B, L]` long: each position's rank by `score` along the row (0 = first; ties: the lowest index first)."""
    order = score.argsort(dim=-1, descending=descending, stable=True)
    ranks = torch.empty_like(order)
    return ranks.scatter_(-1, order, torch.arange(score.shape[-1], device=score.device).expand_as(order))


class WINO(UnmaskingStrategy):
    """WINO, Wide-In Narrow-Out (Hong et al., 2025, arXiv 2507.18578): every step drafts all masked positions of the
    block whose confidence exceeds `threshold`, and in the same forward re-checks the tokens decided in earlier
    steps of the block; those the model no longer backs (`verify_threshold`) go back to `[MASK]`.

    Each step, per row (M = the masked positions of the current block):

    - draft ("wide in"): the eligible positions with confidence `> threshold`, at most
      `min(max(floor(draft_cap_fraction * |M|), draft_cap_min), draft_cap_max)` of them (the most confident; lowest
      index first on ties); if none passes, the single most confident one;
    - verify ("narrow out"), only when more than one position was drafted: the tokens decided in earlier steps of
      this block whose verification confidence (`state.verification_confidence`: the probability that a shadow
      copy of their position, their own token hidden, gives them, from the same forward) is `< verify_threshold`
      are re-masked; when the row's previous step accepted `a` tokens and at least `a` are doubtful, only the
      `a - 1` least verified are (`a` is `remask_limit_at_block_start` at a block's first step). A step that
      accepts one token re-masks nothing at the next, so a block of BL positions finishes within BL steps.

    The published settings (LLaDA-8B-Instruct, gen length 256, blocks of 128, greedy, `verify_threshold` 0.9) use
    `threshold` 0.6 on GSM8K (the default here), 0.7 on MATH500, HumanEval and Sudoku, 0.8 on MBPP and 0.5 on
    Countdown and ARC-e/ARC-c (their demo: 0.5). Needs a model family that runs the shadow-block forward (LLaDA,
    LLaDA-MoE, Dream, LLaDA2.x, SDAR, the built-in tiny dLLM) and no cache. The per-row step counts are kept on the
    instance between steps: do not share one instance between generate calls that run at the same time.

    Args:
        threshold: drafting threshold tau_1 in [0, 1].
        verify_threshold: verification threshold tau_2 in [0, 1].
        draft_cap_fraction: fraction of the block's masked positions a step may draft (None: no cap).
        draft_cap_min / draft_cap_max: bounds of that cap.
        remask_limit: cap the re-masks by the previous step's accepted count (False: re-mask every doubtful token).
        remask_limit_at_block_start: the "previous accepted count" at a block's first step.

    Example:
        ```python
        >>> import hf_unmask
        >>> from hf_unmask.strategies import WINO
        >>> model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
        >>> ids = tokenizer("trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6", return_tensors="pt").input_ids
        >>> out = model.generate(ids, max_new_tokens=16, strategy=WINO(threshold=0.6), return_dict_in_generate=True)
        >>> tokenizer.decode(out.sequences[0, ids.shape[1]:], skip_special_tokens=True), out.nfe.tolist()
        ('7 1 2 4 6 4 ; answer : 4', [7])
        ```
    """

    name = "wino"
    deterministic = True
    remasks_decided_tokens: ClassVar[bool] = True
    requires_verification: ClassVar[bool] = True

    def __init__(
        self,
        threshold: float = 0.6,
        verify_threshold: float = 0.9,
        draft_cap_fraction: Optional[float] = 0.7,
        draft_cap_min: int = 5,
        draft_cap_max: int = 20,
        remask_limit: bool = True,
        remask_limit_at_block_start: int = 30,
    ) -> None:
        owner = type(self).__name__
        self.threshold = check_number(owner, "threshold", threshold, low=0.0, high=1.0, example="threshold=0.6")
        self.verify_threshold = check_number(
            owner, "verify_threshold", verify_threshold, low=0.0, high=1.0, example="verify_threshold=0.9"
        )
        self.draft_cap_fraction = (
            None
            if draft_cap_fraction is None
            else check_number(
                owner, "draft_cap_fraction", draft_cap_fraction, low=0.0, high=1.0, example="draft_cap_fraction=0.7"
            )
        )
        self.draft_cap_min = _count(owner, "draft_cap_min", draft_cap_min, "draft_cap_min=5", low=1)
        self.draft_cap_max = _count(owner, "draft_cap_max", draft_cap_max, "draft_cap_max=20", low=1)
        if self.draft_cap_max < self.draft_cap_min:
            raise ValueError(f"{owner}: draft_cap_max ({draft_cap_max}) must be >= draft_cap_min ({draft_cap_min}).")
        if not isinstance(remask_limit, bool):
            raise ValueError(f"{owner}: remask_limit must be True or False, got {remask_limit!r}.")
        self.remask_limit = remask_limit
        self.remask_limit_at_block_start = _count(
            owner, "remask_limit_at_block_start", remask_limit_at_block_start, "remask_limit_at_block_start=30", 1
        )
        self._accepted: Optional[torch.Tensor] = None  # [full batch] tokens each row accepted at its last step
        self._block = -1  # the block `_accepted` belongs to

    def _previous_accepted(self, state: DenoisingState) -> torch.Tensor:
        """`[B]` the accepted count of each fed row's previous step in this block (the start value at a block's
        first step and at a new call)."""
        full = state.full_batch_size or state.batch_size
        kept = self._accepted
        new_block = state.step == 0 or state.block_step == 0 or state.block != self._block
        if new_block or kept is None or kept.shape[0] != full or kept.device != state.nfe.device:
            self._accepted = torch.full((full,), self.remask_limit_at_block_start, device=state.nfe.device)
            self._block = state.block
        return self._accepted if state.rows is None else self._accepted.index_select(0, state.rows)

    def draft(self, state: DenoisingState) -> torch.Tensor:
        """`[B, L]` bool: the positions drafted this step ("wide in")."""
        eligible = state.eligible
        score = state.confidence.double().masked_fill(~eligible, float("-inf"))
        above = eligible & (score > self.threshold)
        if self.draft_cap_fraction is not None:
            masked = eligible.sum(-1, keepdim=True).double()  # float64, as Python's 0.7 * n
            cap = torch.floor(masked * self.draft_cap_fraction).long()
            cap = cap.clamp(self.draft_cap_min, self.draft_cap_max)
            above = above & (_ranks(score, descending=True) < cap)
        best = torch.zeros_like(eligible).scatter_(-1, score.argmax(-1, keepdim=True), True) & eligible
        return torch.where(above.any(-1, keepdim=True), above, best)

    def verify(self, state: DenoisingState, drafted: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """`[B, L]` bool: the decided tokens re-masked this step ("narrow out")."""
        verified = state.verification_confidence
        if verified is None or state.revisable is None:
            raise ValueError(
                "WINO needs state.verification_confidence: run it through generate, which runs the shadow-block "
                "forward for strategies with requires_verification = True."
            )
        doubtful = state.revisable & (verified.double() < self.verify_threshold)
        doubtful &= (drafted.sum(-1) > 1).unsqueeze(-1)
        if self.remask_limit:
            limited = (doubtful.sum(-1) >= previous).unsqueeze(-1)
            score = verified.double().masked_fill(~doubtful, float("inf"))
            lowest = doubtful & (_ranks(score, descending=False) < (previous - 1).unsqueeze(-1))
            doubtful = torch.where(limited, lowest, doubtful)
        return doubtful

    def __call__(self, state: DenoisingState) -> StrategyOutput:
        previous = self._previous_accepted(state)
        drafted = self.draft(state)
        remask = self.verify(state, drafted, previous)
        live = state.eligible.any(-1)
        accepted = torch.where(live, drafted.sum(-1), previous)
        if state.rows is None:
            self._accepted = accepted
        else:
            self._accepted = self._accepted.index_copy(0, state.rows, accepted)
        return StrategyOutput(selection=drafted, remask=remask)
