"""Checks of what the loop gets back at every step: the logits (after the processor), the strategy's selection, the
state it must leave untouched, and what `callback_on_step_end` returns. Each error names the culprit and the fix."""

from __future__ import annotations

from typing import Any, Optional

import torch

from .state import DenoisingState
from .strategy import StrategyOutput


def check_processed_scores(scores: Any, expected: tuple[int, ...]) -> None:
    """A logits processor must return the `[B, L, V]` float scores it was given (possibly changed)."""
    if not isinstance(scores, torch.Tensor):
        raise TypeError(
            f"logits_processor returned {type(scores).__name__}; it must return the scores tensor of shape [batch, "
            f"gen_length, vocab] = {list(expected)} (processors are called as processor(input_ids, scores) -> scores)."
        )
    if tuple(scores.shape) != expected:
        raise ValueError(
            f"logits_processor returned scores of shape {list(scores.shape)}; expected {list(expected)} ([batch, "
            "gen_length, vocab], the shape it was given). A processor may change values, not the shape."
        )
    if not scores.is_floating_point():
        raise TypeError(f"logits_processor returned scores of dtype {scores.dtype}; they must stay floating point.")


def raise_no_distribution(bad: torch.Tensor, step: int, rows: Optional[torch.Tensor] = None) -> None:
    """Raise for positions (`bad`, `[b, L]` bool over the rows `rows` of the batch, or every row) whose logits are
    NaN, +inf or all -inf."""
    where = bad.nonzero()
    row, col = (int(i) for i in where[0])
    if rows is not None:
        row = int(rows[row])
    more = f" (and {len(where) - 1} more positions)" if len(where) > 1 else ""
    raise ValueError(
        f"At step {step} the logits of row {row}, generated position {col}{more} give no distribution (NaN or +inf "
        "logits, or -inf for every token), so no token can be chosen. Check the model (half precision overflow? try dtype=torch.bfloat16 or "
        "float32), its inputs, and any logits_processor that sets scores to -inf."
    )


def normalise_selection(
    out: Any, batch: int, length: int, revises: bool = False, remasks: bool = False
) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
    """The strategy's `[B, L]` bool selection, its `[B]` log-probability (or None), its `[B, L]` revision and its
    `[B, L]` re-mask (or None each), checked. `revises` / `remasks`: the strategy declared
    `revises_decided_tokens` / `remasks_decided_tokens`."""
    log_prob = revision = remask = None
    if isinstance(out, StrategyOutput):
        out, log_prob, revision, remask = out.selection, out.log_prob, out.revision, out.remask
    for field, value, allowed, attribute, what in (
        ("revision", revision, revises, "revises_decided_tokens", "replace the decided token by state.proposal"),
        ("remask", remask, remasks, "remasks_decided_tokens", "set the decided token back to [MASK]"),
    ):
        if value is None:
            continue
        if not allowed:
            raise ValueError(
                f"The strategy returned a StrategyOutput with a {field}, but its class does not set "
                f"`{attribute} = True`. Changing decided tokens is opt-in: set that class attribute to let it "
                f"{what} at decided positions of the current block."
            )
        if not isinstance(value, torch.Tensor) or value.dtype != torch.bool or tuple(value.shape) != (batch, length):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(
                f"The strategy's {field} is {shape}; it must be a bool tensor of shape [batch, gen_length] = "
                f"[{batch}, {length}] (True = {what}), or None."
            )
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"The strategy returned {type(out).__name__}; it must return a bool tensor of shape [batch, gen_length] "
            f"= [{batch}, {length}] (or a StrategyOutput)."
        )
    if out.dtype != torch.bool:
        raise TypeError(
            f"The strategy returned a tensor of dtype {out.dtype}; it must be torch.bool (True = unmask). "
            "Convert with `selection.bool()` only if it really holds 0/1 decisions."
        )
    if tuple(out.shape) != (batch, length):
        raise ValueError(
            f"The strategy returned a selection of shape {tuple(out.shape)}; expected [batch, gen_length] = "
            f"[{batch}, {length}] over the generated positions only (not the prompt)."
        )
    if log_prob is not None and (
        not isinstance(log_prob, torch.Tensor) or not log_prob.is_floating_point() or tuple(log_prob.shape) != (batch,)
    ):
        shape = tuple(log_prob.shape) if isinstance(log_prob, torch.Tensor) else type(log_prob).__name__
        raise ValueError(
            f"The strategy returned a StrategyOutput whose log_prob is {shape}; it must be a float tensor of shape "
            f"[batch] = [{batch}] (the log-probability of each row's whole selection), or None."
        )
    return out, log_prob, revision, remask


def state_tensors(state: DenoisingState) -> dict[str, torch.Tensor]:
    """The state's tensors the loop reads again after the strategy (and the callback) ran."""
    return {
        "confidence": state.confidence,
        "proposal": state.proposal,
        "masked": state.masked,
        "eligible": state.eligible,
        "nfe": state.nfe,
        "block_mask_count": state.block_mask_count,
    }


def read_versions(tensors: dict[str, torch.Tensor]) -> list[int]:
    # A tensor's version counter grows with every in-place write: comparing two readings costs no kernel.
    return [t._version for t in tensors.values()]


def check_untouched(tensors: dict[str, torch.Tensor], before: list[int], who: str) -> None:
    changed = [name for (name, t), v in zip(tensors.items(), before) if t._version != v]
    if changed:
        raise ValueError(
            f"The {who} modified state.{changed[0]} in place. The DenoisingState is read-only: the loop uses these "
            "tensors after the call, so a change would break its guarantees. Compute on copies instead, e.g. "
            "`selection = state.eligible.clone()` or `state.eligible & (state.confidence > 0.9)`."
        )


def rows_to_stop(decision: Any, batch: int, device: torch.device) -> Optional[torch.Tensor]:
    """What `callback_on_step_end` returned, as a `[B]` bool tensor of rows to stop, or None to go on."""
    if decision is None or decision is False:
        return None
    if decision is True:
        return torch.ones(batch, dtype=torch.bool, device=device)
    if isinstance(decision, torch.Tensor) and decision.dtype == torch.bool and tuple(decision.shape) == (batch,):
        return decision.to(device)
    raise TypeError(
        f"callback_on_step_end returned {decision!r}; it must return None/False (go on), True (stop every row) or a "
        f"bool tensor of shape [batch] = [{batch}] (stop those rows)."
    )
