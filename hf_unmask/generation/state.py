"""What a strategy sees at one denoising step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import torch

if TYPE_CHECKING:
    from .config import DiffusionGenerationConfig


def spread_rows(values: torch.Tensor, rows: torch.Tensor, batch_size: int) -> torch.Tensor:
    """`values` `[b, ...]` of the rows `rows` put into a `[batch_size, ...]` tensor, zeros (False) elsewhere.

    Example:
        ```python
        >>> import torch
        >>> spread_rows(torch.tensor([[1, 2]]), torch.tensor([2]), 3).tolist()
        [[0, 0], [0, 0], [1, 2]]
        ```
    """
    return values.new_zeros((batch_size, *values.shape[1:])).index_copy_(0, rows, values)


def row_picker(rows: Optional[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Take the rows `rows` of a batch tensor (a copy), or the tensor itself when `rows` is None."""
    if rows is None:
        return lambda t: t
    return lambda t: t.index_select(0, rows)


def row_spreader(rows: Optional[torch.Tensor], batch: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Put a tensor over the rows `rows` back into the whole batch (zeros / False in the other rows)."""
    if rows is None:
        return lambda t: t
    return lambda t: spread_rows(t, rows, batch)


@dataclass
class DenoisingState:
    """Read-only view of one denoising step, over the L generated positions of the rows fed at this step.

    All `[B, L]` tensors cover the generated region only (the prompt is excluded). B counts the rows fed: rows with
    nothing left to decide in the current block are left out of the step (`rows` says which rows of the batch are
    here; None: every row, in order). A strategy returns a
    boolean `[B, L]` selection; the loop intersects it with `eligible`, applies the progress fallback and
    writes `proposal` at the selected positions. A strategy must never modify these tensors: the loop checks their
    version counters after the call and raises a `ValueError` if one was written in place.

    Attributes:
        confidence: `[B, L]` float, probability of the proposed token under the (processed) dLLM distribution.
            For a strategy with `reads_only_eligible = True` under greedy decoding, only eligible positions carry
            it (0 elsewhere).
        proposal: `[B, L]` long, the token each position would take if unmasked now (under the same condition,
            the canvas token at positions that are not eligible).
        masked: `[B, L]` bool, positions still `[MASK]`.
        eligible: `[B, L]` bool, masked positions of the current block in rows that are still live.
        nfe: `[B]` long, forward passes each row has used so far, this one excluded.
        step: global step index (0-based) of this forward pass.
        block: index of the current block; `block_start`/`block_end` are its bounds in `[0, L)`.
        block_step: forward passes already spent in the current block (same for all live rows).
        block_mask_count: `[B]` long, masked positions of the current block when the block started.
        config: the `DiffusionGenerationConfig` of this call (gen length, block length, steps...).
        generator: the `torch.Generator` of this call, for strategies that draw random numbers.
        logits / probs: `[B, L, V]` processed logits of the generated region and their softmax (lazy).
        hidden_states: `[B, L, H]` last hidden states of the generated region, only when the strategy sets
            `requires_hidden_states = True`.
        rows: `[B]` long, the indices in the whole batch of the rows this state covers, or None when every row of
            the batch is here.
        full_batch_size: the size of the whole batch (when `rows` is set).
        revisable: `[B, L]` bool, decided generated positions of the current block that a strategy with
            `revises_decided_tokens` or `remasks_decided_tokens` may revise or re-mask this step (None for others).
        revision_steps: `[B]` long, steps each row has run since its block had no mask left (token editing only).
        token_confidence: `[B, L]` float, re-masking strategies only: the probability the (processed) dLLM
            distribution now gives the token in place at decided positions (0 at masked ones).
        decided_time: `[B, L]` float, re-masking strategies only: the time (NFE / L, as `time`) at which each
            decided position received its token; `time - decided_time` is how long ago it was decided.
        verification_confidence: `[B, L]` float, strategies with `requires_verification` only (WINO): at each
            position decided in an earlier step of the current block (`revisable`), the probability that the
            step's shadow block (see `generation/shadow_block.py`: the slot's position, its own token hidden,
            computed in the same forward) gives the token in place; 0 elsewhere.
        padding_mask: `[B, L]` bool on a block-diffusion canvas that runs past some rows' last block: True at the
            positions of the row's own canvas, False past it (never decided; a learned policy ignores them, so a row
            is decoded as alone). None when every position belongs to every row.

    Example:
        ```python
        >>> import torch
        >>> def most_confident_two(state):
        ...     score = state.confidence.masked_fill(~state.eligible, -1.0)
        ...     top = score.topk(2, dim=-1).indices
        ...     return torch.zeros_like(state.eligible).scatter(1, top, True)
        ```
    """

    confidence: torch.Tensor
    proposal: torch.Tensor
    masked: torch.Tensor
    eligible: torch.Tensor
    nfe: torch.Tensor
    step: int
    block: int
    block_start: int
    block_end: int
    block_step: int
    block_mask_count: torch.Tensor
    config: DiffusionGenerationConfig
    generator: Optional[torch.Generator] = None
    hidden_states: Optional[torch.Tensor] = None
    rows: Optional[torch.Tensor] = None
    full_batch_size: Optional[int] = None
    revisable: Optional[torch.Tensor] = None
    revision_steps: Optional[torch.Tensor] = None
    padding_mask: Optional[torch.Tensor] = None
    token_confidence: Optional[torch.Tensor] = None
    decided_time: Optional[torch.Tensor] = None
    verification_confidence: Optional[torch.Tensor] = None
    _logits: Optional[torch.Tensor] = field(default=None, repr=False)
    _probs: Optional[torch.Tensor] = field(default=None, repr=False)

    @property
    def gen_length(self) -> int:
        return self.confidence.shape[-1]

    @property
    def batch_size(self) -> int:
        return self.confidence.shape[0]

    @property
    def time(self) -> torch.Tensor:
        """`[B]` float: steps used so far / L (the policy's time input; L = `max_new_tokens`, also on a
        block-diffusion canvas that runs past it)."""
        return self.nfe.to(torch.float32) / self.config.gen_length

    @property
    def live(self) -> torch.Tensor:
        """`[B]` bool: rows that still have masked positions in the current block (a row whose block is full but
        that a token-editing strategy still revises is fed and not live)."""
        return self.eligible.any(dim=-1)

    @property
    def logits(self) -> torch.Tensor:
        if self._logits is None:
            raise RuntimeError("This DenoisingState was built without logits.")
        return self._logits

    @property
    def probs(self) -> torch.Tensor:
        """`[B, L, V]` float32 softmax of the processed logits, computed on first access."""
        if self._probs is None:
            self._probs = torch.softmax(self.logits.float(), dim=-1)
        return self._probs

    def over_full_batch(self) -> DenoisingState:
        """This state over every row of the batch: itself when every row is here, else a copy in which the rows
        left out of the step have nothing eligible, nothing masked, zero confidence and proposal (and no logits).

        For strategies that draw random numbers: drawing for the whole batch and keeping the rows fed makes each
        row's draws independent of which other rows finished early (the same draws as a step that fed every row).
        """
        if self.rows is None:
            return self
        B, rows = self.full_batch_size, self.rows

        def spread(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            return None if t is None else spread_rows(t, rows, B)

        return DenoisingState(
            confidence=spread(self.confidence),
            proposal=spread(self.proposal),
            masked=spread(self.masked),
            eligible=spread(self.eligible),
            nfe=spread(self.nfe),
            step=self.step,
            block=self.block,
            block_start=self.block_start,
            block_end=self.block_end,
            block_step=self.block_step,
            block_mask_count=spread(self.block_mask_count),
            config=self.config,
            generator=self.generator,
            hidden_states=spread(self.hidden_states),
            revisable=spread(self.revisable),
            revision_steps=spread(self.revision_steps),
            padding_mask=spread(self.padding_mask),
            token_confidence=spread(self.token_confidence),
            decided_time=spread(self.decided_time),
            verification_confidence=spread(self.verification_confidence),
        )
