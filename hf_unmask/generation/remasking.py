"""Re-masking: the bookkeeping of a strategy that may set decided tokens back to `[MASK]` (WINO, ReMDM, a learned
re-masking policy).

A strategy opts in with `remasks_decided_tokens = True` and returns `StrategyOutput(remask=...)`. The loop then, at
every step:

- shows it `state.revisable` (the decided, generated positions of the current block of the rows still at work),
  `state.token_confidence` (the probability the model now gives the token in place there) and
  `state.decided_time` (the time, NFE / L, at which each position received its token);
- keeps the re-mask to `revisable` positions: never the prompt, never another block, never a position this step
  unmasks (a re-masked position is masked again and eligible from the next step);
- keeps the step budget: when blocks must finish (`finish_blocks`, the default) a step never leaves more masks
  than the remaining steps of the block can fill at the block's pace, so NFE stays within `max_steps` (the same
  bound as every strategy). Beyond that cap the re-masks of lowest `token_confidence` are kept (lowest index first
  on ties);
- counts nothing extra: a step that re-masks is one forward pass like any other, and the tokens it re-masks have to
  be decided again by later steps.

A row whose block has no mask left is done with the block: re-masking happens only in steps where the row still
has masked positions in the block.
"""

from __future__ import annotations

from typing import Any, Optional

import torch


class Remasking:
    """Per-call state of re-masking (None for a strategy that does not re-mask: see `for_strategy`).

    Example:
        ```python
        >>> import torch
        >>> remasking = Remasking(batch=1, length=4, device=torch.device("cpu"))
        >>> remasking.decided(torch.tensor([[True, True, False, False]]), torch.tensor([2]))
        >>> remasking.decided_nfe.tolist()
        [[2, 2, 0, 0]]
        ```
    """

    def __init__(self, batch: int, length: int, device: torch.device) -> None:
        #: [B, L] the row's NFE (forward passes before the step) when each position received its current token
        self.decided_nfe = torch.zeros(batch, length, dtype=torch.long, device=device)

    @staticmethod
    def for_strategy(strategy: Any, batch: int, length: int, device: torch.device) -> Optional[Remasking]:
        if not getattr(strategy, "remasks_decided_tokens", False):
            return None
        name = type(strategy).__name__
        if getattr(strategy, "reads_only_eligible", False):
            raise ValueError(
                f"{name} sets both remasks_decided_tokens and reads_only_eligible: a strategy that re-masks decided "
                "tokens reads their confidence, which reads_only_eligible leaves out. Set reads_only_eligible = False."
            )
        if getattr(strategy, "revises_decided_tokens", False):
            raise ValueError(
                f"{name} sets both remasks_decided_tokens and revises_decided_tokens: a strategy either replaces "
                "decided tokens by new proposals (token editing) or sets them back to [MASK] (re-masking), not both."
            )
        return Remasking(batch, length, device)

    @staticmethod
    def revisable(masked: torch.Tensor, in_block: Optional[torch.Tensor], live: torch.Tensor) -> torch.Tensor:
        """`[B, L]` bool: decided positions of the current block in the rows still at work (`live`, `[B]`)."""
        decided = ~masked if in_block is None else ~masked & in_block
        return decided & live.unsqueeze(-1)

    @staticmethod
    def token_confidence(logits: torch.Tensor, tokens: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """`[b, L]` float32: the probability the (processed) logits give the token in place, 0 at masked positions."""
        scores = logits.float()
        in_place = scores.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(scores, dim=-1)
        return torch.where(masked, torch.zeros_like(in_place), in_place.exp())

    @staticmethod
    def kept(remask: torch.Tensor, token_confidence: torch.Tensor, allowed: Optional[torch.Tensor]) -> torch.Tensor:
        """The re-masks kept when each row may re-mask at most `allowed` (`[b]`, None: no cap) positions: those of
        lowest `token_confidence`, lowest index first on ties."""
        if allowed is None or not bool((remask.sum(-1) > allowed).any()):
            return remask
        score = torch.where(
            remask, token_confidence.float(), torch.full_like(token_confidence, 2.0, dtype=torch.float)
        )
        order = score.argsort(dim=-1, stable=True)
        rank_ok = torch.arange(score.shape[-1], device=score.device).unsqueeze(0) < allowed.clamp_min(0).unsqueeze(-1)
        return torch.zeros_like(remask).scatter(-1, order, rank_ok) & remask

    def decided(self, unmasked: torch.Tensor, nfe: torch.Tensor) -> None:
        """Record that the positions `unmasked` (`[B, L]`) got their token at NFE `nfe` (`[B]`)."""
        self.decided_nfe = torch.where(unmasked, nfe.unsqueeze(-1), self.decided_nfe)
