"""Outputs of diffusion generation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from transformers.utils import ModelOutput


@dataclass
class DiffusionTrajectory(ModelOutput):
    """Per-step record of a generation, stacked over steps: what a learned policy is trained on.

    Every tensor has a leading step axis T: the steps the loop ran (at least the forward passes of the row that
    took most; rows finish blocks at different steps).
    `live[t, b]` is False for steps in which row b did not count a forward pass (its block was
    already done, or it stopped at EOS); those entries must be ignored by a loss.

    Attributes:
        confidence: `[T, B, L]` float32, dLLM confidence of the proposed token.
        masked: `[T, B, L]` bool, masked positions before the step.
        eligible: `[T, B, L]` bool, positions the strategy was allowed to pick.
        time: `[T, B]` float32, steps used so far / L at that step.
        action: `[T, B, L]` bool, the strategy's own selection (restricted to eligible positions), before
            any fallback or forced completion.
        unmasked: `[T, B, L]` bool, what the loop actually unmasked (action + fallback / forced positions).
        live: `[T, B]` bool, rows that counted a forward pass at that step.
        block: `[T]` long, block index of each step.
        log_prob: `[T, B]` float32, log-probability of `action` reported by the strategy, when it reports one.
        hidden_states: `[T, B, L, H]`, only for strategies that read hidden states.
        revisable / revised: `[T, B, L]` bool, for strategies that revise decided tokens: the decided positions they
            could revise (or re-mask), and those whose token they replaced.
        remask_action / remasked: `[T, B, L]` bool, for strategies that re-mask decided tokens: the strategy's own
            re-mask (restricted to `revisable`), and what the loop set back to `[MASK]` (the same, unless the step
            budget capped it).
        token_confidence / decided_time: `[T, B, L]` float32, for re-masking strategies: what the strategy saw (see
            `DenoisingState`).
        verification_confidence: `[T, B, L]` float32, for strategies with `requires_verification` (WINO): what the
            strategy saw (see `DenoisingState.verification_confidence`).

        padding_mask: `[T, B, L]` bool, on a block-diffusion canvas that runs past some rows' last block: the
            positions of each row's own canvas (see `DenoisingState.padding_mask`).

    On a block-diffusion model (LLaDA2.x, SDAR) L is the generated canvas: it runs past `max_new_tokens` to the end
    of the block holding the last generated position.
    """

    confidence: Optional[torch.Tensor] = None
    masked: Optional[torch.Tensor] = None
    eligible: Optional[torch.Tensor] = None
    time: Optional[torch.Tensor] = None
    action: Optional[torch.Tensor] = None
    unmasked: Optional[torch.Tensor] = None
    live: Optional[torch.Tensor] = None
    block: Optional[torch.Tensor] = None
    log_prob: Optional[torch.Tensor] = None
    hidden_states: Optional[torch.Tensor] = None
    revisable: Optional[torch.Tensor] = None
    revised: Optional[torch.Tensor] = None
    remask_action: Optional[torch.Tensor] = None
    remasked: Optional[torch.Tensor] = None
    token_confidence: Optional[torch.Tensor] = None
    decided_time: Optional[torch.Tensor] = None
    padding_mask: Optional[torch.Tensor] = None
    verification_confidence: Optional[torch.Tensor] = None

    @property
    def num_steps(self) -> int:
        return 0 if self.live is None else self.live.shape[0]


@dataclass
class DiffusionGenerateOutput(ModelOutput):
    """Result of `generate(..., return_dict_in_generate=True)`.

    Attributes:
        sequences: `[B, P + L]` prompt (left-padded as given) followed by the generated tokens.
        nfe: `[B]` long, dLLM forward passes each row used.
        trajectory: a `DiffusionTrajectory` when `output_trajectory=True`.
        history: `[T + 1, B, P + L]` the canvas before the first step and after each of the T steps the loop ran
            (a step feeds the rows still at work), when `output_history=True`. Each entry is taken after the step's
            EOS fill (`stop_at_eos`); a decoder that ends a row at the end of a block holding an EOS
            (`stops_after_block_with_eos`, e.g. `SDARDecoder`) fills its later blocks after the block's last step,
            which `sequences` shows and the last entry does not.
        stopped: `[B]` bool, rows that `callback_on_step_end` stopped before they were complete (their unfilled
            positions still hold the mask id), when a callback was given.
        forward_positions: `[B]` long, positions each row ran through the model, summed over its forward passes
            (its real prompt tokens plus L per full forward; the fed window per cached step), to compare the cost
            of cache modes at equal NFE.
    """

    sequences: Optional[torch.LongTensor] = None
    nfe: Optional[torch.LongTensor] = None
    trajectory: Optional[DiffusionTrajectory] = None
    history: Optional[torch.LongTensor] = None
    stopped: Optional[torch.BoolTensor] = None
    forward_positions: Optional[torch.LongTensor] = None


@dataclass
class DiffusionStep:
    """What `callback_on_step_end` receives after every denoising step (one forward pass).

    The callback returns `None` or `False` to go on, `True` to stop every row, or a `[B]` bool tensor to stop those
    rows. A stopped row takes no more forward passes (its NFE stops counting) and its positions not yet unmasked
    keep the mask id; `DiffusionGenerateOutput.stopped` reports it.

    Attributes:
        step: global step index (0-based), the same as `DenoisingState.step`.
        block: index of the current block; `block_step` the steps already spent in it before this one.
        sequences: `[B, P + L]` the canvas after this step (a copy: changing it changes nothing).
        unmasked: `[B, L]` bool, the positions this step wrote (the strategy's choice plus the loop's fallback).
        nfe: `[B]` long, forward passes per row so far, this one included.
        live: `[B]` bool, rows that took part in this step (and counted a forward pass).
        prompt_length: P, so `sequences[:, prompt_length:]` is the generated region.
        mask_token_id: the mask id of this call.
        state: the `DenoisingState` the strategy saw at this step (confidence, proposal, logits / probs, ...), over
            the rows fed at this step (`state.rows`: their indices in the batch, None when every row was fed).

    Example:
        ```python
        >>> import hf_unmask
        >>> model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
        >>> ids = tokenizer("trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6", return_tensors="pt").input_ids
        >>> seen = []
        >>> def watch(step):
        ...     seen.append(int(step.unmasked.sum()))
        ...     return step.step == 3  # stop after the fourth forward pass
        >>> out = model.generate(ids, callback_on_step_end=watch, return_dict_in_generate=True)
        >>> seen, out.nfe.tolist(), out.stopped.tolist()
        ([1, 1, 1, 1], [4], [True])
        ```
    """

    step: int
    block: int
    block_step: int
    sequences: torch.LongTensor
    unmasked: torch.BoolTensor
    nfe: torch.LongTensor
    live: torch.BoolTensor
    prompt_length: int
    mask_token_id: int
    state: Any = None

    @property
    def generated(self) -> torch.LongTensor:
        """`[B, L]` the generated region of `sequences`."""
        return self.sequences[:, self.prompt_length :]

    @property
    def masked(self) -> torch.BoolTensor:
        """`[B, L]` bool, generated positions still masked after this step."""
        return self.generated == self.mask_token_id
