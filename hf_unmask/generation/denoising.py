"""One call's denoising: `DenoisingLoop` walks the blocks of the canvas and runs each step as named stages (plan the
step, forward, propose tokens, ask the strategy, choose the positions, write, re-mask, count NFE and stop at EOS,
record the trajectory, report). `diffusion_generate` (loop.py) checks the arguments and builds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch

from .adapter import DiffusionAdapter
from .block_diffusion import stop_rows_with_eos
from .blocks import BlockLayout
from .canvas_forward import CanvasForward
from .config import DiffusionGenerationConfig
from .eos import fill_after_eos
from .outputs import DiffusionGenerateOutput, DiffusionStep, DiffusionTrajectory
from .remasking import Remasking
from .shadow_block import ShadowBlock
from .state import DenoisingState, row_picker, row_spreader
from .step_checks import (
    check_processed_scores,
    check_untouched,
    normalise_selection,
    raise_no_distribution,
    read_versions,
    rows_to_stop,
    state_tensors,
)
from .token_choice import choose_tokens
from .token_editing import TokenEditing

# Below this many logits per step ([B, L, V] elements) the full token choice costs no more than gathering the
# eligible positions and scattering the results back (a handful of extra small ops). Measured on CPU with
# benchmarks/generation_overhead.py: at 16 x 64 x 95 gathering saved ~0.05 ms per step in semi-AR and lost as much
# in full diffusion; at 16 x 64 x 1000 and above it clearly wins.
ELIGIBLE_TOKEN_CHOICE_MIN_LOGITS = 1 << 17


def _pace_can_bind(budget: int, block_length: int, fallback: bool, finish_blocks: bool = True) -> bool:
    """Whether the pace rule (finish the block within `budget` steps) can ever ask a row for more than the
    fallback's one position per step. Not with a budget of BL steps and the fallback on: a block holds at most BL
    masks and each step unmasks at least one, so the rule's count never exceeds one (the loop then skips it). Never
    without `finish_blocks`: a block then just ends after its budget."""
    return finish_blocks and (budget < block_length or not fallback)


def _top_up(
    selection: torch.Tensor, eligible: torch.Tensor, confidence: torch.Tensor, need: torch.Tensor
) -> torch.Tensor:
    """Add the most confident eligible, unselected positions until each row has `need` selected."""
    selected = selection.sum(-1)
    if not bool((selected < need).any()):
        return selection
    missing = (need - selected).clamp_min(0)
    candidates = eligible & ~selection
    score = torch.where(candidates, confidence.float(), torch.full_like(confidence, -1.0, dtype=torch.float))
    order = score.argsort(dim=-1, descending=True, stable=True)
    rank_ok = torch.arange(score.shape[-1], device=score.device).unsqueeze(0) < missing.unsqueeze(-1)
    extra = torch.zeros_like(selection).scatter(-1, order, rank_ok) & candidates
    return selection | extra


@dataclass
class _Block:
    """The block being decoded: its index and bounds, its masks at the start, and the steps spent in it."""

    index: int
    start: int
    end: int
    in_block: Optional[torch.Tensor]  # [B, L] bool positions of the block, None when one block holds everything
    window_start: int
    mask_count: torch.Tensor  # [B] masks of the block at its start
    pace: Optional[torch.Tensor] = None  # [B] positions per step that finish the block within its budget
    step: int = 0


@dataclass
class _Step:
    """One denoising step, filled stage by stage. `*_fed` tensors cover the rows fed (`rows`; all when None), the
    others the whole batch."""

    masked: torch.Tensor  # [B, L] bool before the step
    eligible: torch.Tensor  # [B, L] bool positions the strategy may unmask
    remaining: torch.Tensor  # [B] eligible positions left
    live_count: torch.Tensor  # [B] 1 for a row at work, else 0
    revisable: Optional[torch.Tensor]  # [B, L] decided positions a reviser / re-masker may change
    rows: Optional[torch.Tensor]  # indices of the rows fed, None: every row
    pick: Callable[[torch.Tensor], torch.Tensor]  # a batch tensor's rows fed
    logits: Any = None
    hidden: Optional[torch.Tensor] = None
    fed: Any = None  # [b] positions run through the model per row fed
    gen_fed: Any = None
    masked_fed: Any = None
    eligible_fed: Any = None
    proposal: Any = None
    confidence: Any = None
    token_confidence: Optional[torch.Tensor] = None
    decided_time: Optional[torch.Tensor] = None
    verification: Optional[torch.Tensor] = None
    state: Any = None
    guarded: Any = None  # the state's tensors the strategy and the callback must leave untouched
    versions: Any = None
    selection: Any = None
    log_prob: Optional[torch.Tensor] = None
    revision: Optional[torch.Tensor] = None
    remask: Optional[torch.Tensor] = None
    action: Any = None  # the strategy's selection, restricted to eligible positions
    unmask: Any = None  # the action plus the pace / fallback top-up
    revised: Optional[torch.Tensor] = None  # [B, L] token edits, over the batch
    remask_action: Optional[torch.Tensor] = None
    remasked: Optional[torch.Tensor] = None
    time_before: Optional[torch.Tensor] = None


class DenoisingLoop:
    """The denoising loop of one `generate` call over `canvas` = `[prompt | L x MASK]`, written in place.

    `run` walks the blocks; a block runs steps until it has nothing left to decide or its step budget is spent. The
    per-call invariants (model family, strategy, config, special ids, the canvas and its masks) are set here once;
    each stage of a step is a method reading and filling a `_Step`.
    """

    def __init__(
        self,
        *,
        adapter: DiffusionAdapter,
        strategy: Any,
        config: DiffusionGenerationConfig,
        canvas: torch.Tensor,
        attention_mask: Optional[torch.Tensor],
        token_type_ids: Optional[torch.Tensor],
        prompt_length: int,
        mask_id: int,
        eos_ids: list[int],
        fill_id: Optional[int],
        logits_processor: Any,
        streamer: Any,
        generator: Optional[torch.Generator],
        callback: Any,
        budget: int,
        layout: BlockLayout,
        cache_implementation: Optional[str] = None,
    ) -> None:
        self.adapter, self.strategy, self.config = adapter, strategy, config
        self.cache_implementation = cache_implementation  # resolved and checked: None = no cache
        self.x, self.attn, self.token_types = canvas, attention_mask, token_type_ids
        self.P, self.mask_id, self.eos_ids, self.fill_id = prompt_length, mask_id, eos_ids, fill_id
        self.logits_processor, self.streamer, self.generator = logits_processor, streamer, generator
        self.callback, self.budget, self.layout = callback, budget, layout
        self.B, self.device = canvas.shape[0], canvas.device
        self.L, self.BL = layout.canvas_length, layout.block_length
        self.out_length = prompt_length + config.gen_length  # block-diffusion canvases run past L
        self.gen = canvas[:, prompt_length:]  # a view: writing into it writes the canvas
        self._set_up_forward()
        self._set_up_step_rules()
        self._set_up_outputs()

    # ---- set-up ------------------------------------------------------------------------------------------------
    def _set_up_forward(self) -> None:
        adapter, strategy, x, attn = self.adapter, self.strategy, self.x, self.attn
        P, L, BL = self.P, self.L, self.BL
        wants_hidden = bool(getattr(strategy, "requires_hidden_states", False))
        real_lengths = attn.sum(-1) if attn is not None else torch.full((self.B,), x.shape[1], device=self.device)
        # verification (see shadow_block.py): every forward also runs a shadow block of the current block's positions
        shadow = None
        if getattr(strategy, "requires_verification", False):
            shadow = ShadowBlock(adapter, P, BL, self.mask_id)
        self.shadow = shadow
        block_causal = adapter.block_causal
        self.canvas_forward = CanvasForward(
            adapter,
            x,
            self._model_inputs,
            P,
            L,
            BL,
            real_lengths,
            wants_hidden,
            self.cache_implementation,
            block_causal=block_causal,
            shadow=shadow,
        )

    def _set_up_step_rules(self) -> None:
        config, strategy = self.config, self.strategy
        self.record = config.output_trajectory
        self.temperature = config.sampling_temperature
        greedy = self.temperature is None
        # Token choice at eligible positions only, for strategies that read nothing else (most positions of a
        # semi-AR canvas are outside the current block, and decided ones need no new token). Not when sampling (the
        # Gumbel noise drawn for all L positions keeps a seed's tokens the same whatever the strategy) nor when
        # recording (a policy trained on the trajectory reads the confidence of every position).
        self.eligible_token_choice = (
            greedy and not self.record and bool(getattr(strategy, "reads_only_eligible", False))
        )
        self.fallback, self.finish_blocks = config.progress_fallback, config.finish_blocks
        self.pace_can_bind = _pace_can_bind(self.budget, self.BL, self.fallback, self.finish_blocks)
        # token editing (see token_editing.py): its steps after a block is full count against max_steps when it is set
        self.editing = TokenEditing.for_strategy(strategy)
        self.step_limit = self.budget
        if self.editing is not None and config.max_steps is None:
            self.step_limit += self.editing.bound
        self.stops_at_eos = bool(getattr(strategy, "stops_after_block_with_eos", False))
        # re-masking (see remasking.py): re-masks are capped so that the block still finishes within its budget
        self.remasking = Remasking.for_strategy(strategy, self.B, self.L, self.device)
        self.caps_remasks = self.remasking is not None and self.finish_blocks
        self.padding_mask = self.layout.padding_mask

    def _set_up_outputs(self) -> None:
        B, device = self.B, self.device
        self.step = 0
        self.nfe = torch.zeros(B, dtype=torch.long, device=device)
        self.forward_positions = torch.zeros(B, dtype=torch.long, device=device)
        self.eos_tensor = None
        if self.config.stop_at_eos:
            self.eos_tensor = torch.tensor(self.eos_ids, dtype=torch.long, device=device)
        self.trajectory: dict[str, list[torch.Tensor]] = {k: [] for k in DiffusionTrajectory.__dataclass_fields__}
        self.history = [self.x[:, : self.out_length].clone()] if self.config.output_history else None
        self.stopped = torch.zeros(B, dtype=torch.bool, device=device) if self.callback is not None else None

    def _model_inputs(self, rows: Optional[torch.Tensor]) -> dict[str, Any]:
        """The forward's inputs over every row (`rows` None) or over the rows `rows` only."""
        if rows is None:
            inputs = self.adapter.model_inputs(self.x, self.attn)
            if self.token_types is not None:
                inputs["token_type_ids"] = self.token_types
        else:
            attn = None if self.attn is None else self.attn.index_select(0, rows)
            inputs = self.adapter.model_inputs(self.x.index_select(0, rows), attn)
            if self.token_types is not None:
                inputs["token_type_ids"] = self.token_types.index_select(0, rows)
        if self.adapter.block_causal:
            inputs["block_length"] = self.BL
        return inputs

    # ---- blocks ------------------------------------------------------------------------------------------------
    def run(self) -> Union[torch.LongTensor, DiffusionGenerateOutput]:
        """Decode every block, then return the sequences (or the `DiffusionGenerateOutput`)."""
        for index in range(self.layout.num_blocks):
            self._run_block(self._start_block(index))
        return self._finish()

    def _start_block(self, index: int) -> _Block:
        start, end = self.layout.bounds(index)
        in_block = self.layout.in_block(index)
        if in_block is None:
            mask_count = (self.gen[:, start:end] == self.mask_id).sum(-1)
        else:
            mask_count = ((self.gen == self.mask_id) & in_block).sum(-1)
        block = _Block(index, start, end, in_block, self.layout.window_start(index), mask_count)
        if self.pace_can_bind or self.caps_remasks:  # positions per step that finish the block in time
            block.pace = torch.div(mask_count + (self.budget - 1), self.budget, rounding_mode="floor")
        if self.editing is not None:
            self.editing.start_block(self.B, self.device)
        return block

    def _run_block(self, block: _Block) -> None:
        while (step := self._plan_step(block)) is not None:
            self._logits(block=block, step=step)
            self._propose(step)
            self._ask_strategy(block=block, step=step)
            self._choose_positions(block=block, step=step)
            self._write(step)
            self._remask(block=block, step=step)
            self._count(step)
            self._record(block=block, step=step)
            self._report(block=block, step=step)
            block.step += 1
            self.step += 1
        if self.stops_at_eos and self.eos_ids:
            fill = self.fill_id if self.fill_id is not None else self.eos_ids[0]
            stop_rows_with_eos(self.gen, self.mask_id, self.eos_ids, fill, block.end)

    def _finish(self) -> Union[torch.LongTensor, DiffusionGenerateOutput]:
        if self.streamer is not None:
            self.streamer.end()
        x = self.x[:, : self.out_length]
        if not self.config.return_dict_in_generate:
            return x
        trajectory = None
        if self.record:
            trajectory = DiffusionTrajectory(**{k: torch.stack(v) for k, v in self.trajectory.items() if v})
        return DiffusionGenerateOutput(
            sequences=x,
            nfe=self.nfe,
            trajectory=trajectory,
            history=torch.stack(self.history) if self.history is not None else None,
            stopped=self.stopped,
            forward_positions=self.forward_positions,
        )

    # ---- the stages of a step ----------------------------------------------------------------------------------
    def _plan_step(self, block: _Block) -> Optional[_Step]:
        """The rows and positions at work in this step; None when the block is done."""
        masked = self.gen == self.mask_id
        eligible = masked if block.in_block is None else masked & block.in_block
        if self.stopped is not None:
            eligible = eligible & ~self.stopped.unsqueeze(-1)
        remaining = eligible.sum(-1)
        live_count = remaining.clamp_max(1)  # 1 for a live row, else 0
        editing_rows = None
        if self.editing is not None:  # rows whose block is full go on while they revise, within the bound
            editing_rows = self.editing.rows_editing(remaining, block.mask_count, self.stopped)
            live_count = live_count | editing_rows.long()
        if block.step >= self.budget:  # the block's budget is spent: what is still masked stays [MASK]
            if self.finish_blocks and bool((remaining > 0).any()):  # cannot happen: the pace rule empties the block
                raise RuntimeError("internal error: block step budget exceeded")
            if editing_rows is None or block.step >= self.step_limit:
                return None
            # past the budget only the editing steps of full blocks go on
            live_count, eligible = editing_rows.long(), torch.zeros_like(eligible)
            remaining = torch.zeros_like(remaining)
        revisable = None
        if self.editing is not None:
            revisable = self.editing.revisable(masked, block.in_block, live_count.bool())
        elif self.remasking is not None:
            revisable = Remasking.revisable(masked, block.in_block, live_count.bool())
        live_rows = int(live_count.sum())  # one device read: is the block done, and does every row go on?
        if live_rows == 0:
            return None
        # Rows with nothing left to decide in this block are not fed: the step runs over the live rows only
        # (`rows`, their indices) and its results are written back into the whole batch.
        rows = None
        if self.config.drop_finished_rows and live_rows < self.B:
            rows = live_count.nonzero().squeeze(-1)
        return _Step(masked, eligible, remaining, live_count, revisable, rows, row_picker(rows))

    def _logits(self, *, block: _Block, step: _Step) -> None:
        """The forward pass: the logits of the generated positions of the rows fed, processed, `[MASK]` excluded."""
        logits, step.hidden, step.fed = self.canvas_forward(
            block.start, block.end, block.step, step.rows, block.window_start, block.in_block
        )
        if self.mask_id >= logits.shape[-1]:
            raise ValueError(
                f"mask_token_id={self.mask_id} is outside the model's {logits.shape[-1]} logits. Pass the id the "
                "model's tokenizer uses (tokenizer.mask_token_id)."
            )
        pick = step.pick
        step.gen_fed, step.masked_fed, step.eligible_fed = pick(self.gen), pick(step.masked), pick(step.eligible)
        if self.logits_processor is not None:
            shape = tuple(logits.shape)
            # with a cache the logits tensor lives for the whole block: a processor gets its own copy
            logits = self.logits_processor(
                pick(self.x), logits.clone() if self.canvas_forward.keeps_logits else logits
            )
            check_processed_scores(logits, shape)
        # [MASK] is never a valid answer: a position that "decided" it would stay masked forever. (In place: the
        # logits are this call's own fresh tensor, and a copy of [B, L, V] per step is measurable.)
        logits.select(-1, self.mask_id).fill_(float("-inf"))
        step.logits = logits

    def _propose(self, step: _Step) -> None:
        """Token choice: the token each position would take, and the model's confidence in it."""
        if self.eligible_token_choice and step.logits.numel() >= ELIGIBLE_TOKEN_CHOICE_MIN_LOGITS:
            proposal, confidence = _choose_tokens_at(step.logits, step.gen_fed, step.eligible_fed)
        else:
            config = self.config
            proposal, confidence = choose_tokens(
                step.logits, self.temperature, self.generator, config.top_k, config.top_p, step.rows, self.B
            )
        # NaN, +inf or all -inf logits give a NaN softmax; the minimum is NaN then (one reduction per step)
        if not float(confidence.amin()) >= 0.0:
            raise_no_distribution(confidence.isnan(), self.step, step.rows)
        step.proposal, step.confidence = proposal, confidence

    def _strategy_state(self, *, block: _Block, step: _Step) -> DenoisingState:
        """What the strategy sees: the step's tensors over the rows fed, plus what its opt-ins ask for."""
        pick = step.pick
        if self.shadow is not None:  # decided positions of the current block: the shadow's view of their token
            decided = step.revisable
            if decided is None:
                decided = Remasking.revisable(step.masked, block.in_block, step.live_count > 0)
            step.verification = self.shadow.confidence(step.gen_fed, pick(decided))
        if self.remasking is not None:
            step.token_confidence = Remasking.token_confidence(step.logits, step.gen_fed, step.masked_fed)
            step.decided_time = pick(self.remasking.decided_nfe).to(torch.float32) / self.config.gen_length
        return DenoisingState(
            confidence=step.confidence,
            proposal=step.proposal,
            masked=step.masked_fed,
            eligible=step.eligible_fed,
            nfe=pick(self.nfe),
            step=self.step,
            block=block.index,
            block_start=block.start,
            block_end=block.end,
            block_step=block.step,
            block_mask_count=pick(block.mask_count),
            config=self.config,
            generator=self.generator,
            hidden_states=step.hidden,
            rows=step.rows,
            full_batch_size=None if step.rows is None else self.B,
            revisable=None if step.revisable is None else pick(step.revisable),
            revision_steps=pick(self.editing.steps) if self.editing is not None else None,
            padding_mask=None if self.padding_mask is None else pick(self.padding_mask),
            token_confidence=step.token_confidence,
            decided_time=step.decided_time,
            verification_confidence=step.verification,
            _logits=step.logits,
        )

    def _ask_strategy(self, *, block: _Block, step: _Step) -> None:
        """Call the strategy on a read-only state and check what it returns."""
        state = self._strategy_state(block=block, step=step)
        step.state, step.guarded = state, state_tensors(state)
        step.versions = read_versions(step.guarded)
        step.selection, step.log_prob, step.revision, step.remask = normalise_selection(
            self.strategy(state), state.batch_size, self.L, self.editing is not None, self.remasking is not None
        )
        check_untouched(step.guarded, step.versions, "strategy")

    def _choose_positions(self, *, block: _Block, step: _Step) -> None:
        """The positions to unmask: the strategy's eligible ones, topped up to keep every row on pace to finish the
        block within its step budget, and (unless disabled) to at least one position per live row."""
        pick = step.pick
        step.action = step.selection & step.eligible_fed
        # (need never exceeds `remaining`: both terms of the maximum are at most `remaining`)
        if self.pace_can_bind:
            need = torch.add(pick(step.remaining), pick(block.pace), alpha=-(self.budget - block.step - 1))
            need = torch.maximum(need, pick(step.live_count)) if self.fallback else need.clamp_min(0)
            step.unmask = _top_up(step.action, step.eligible_fed, step.confidence, need)
        elif self.fallback:
            step.unmask = _top_up(step.action, step.eligible_fed, step.confidence, pick(step.live_count))
        else:
            step.unmask = step.action

    def _write(self, step: _Step) -> None:
        """Write the proposals at the unmasked (and revised) positions into the canvas."""
        written = step.unmask
        if self.editing is not None:
            editing_step = (step.remaining == 0) & step.live_count.bool()
            revised, step.revised = self.editing.revised(
                step.state.revisable, step.revision, step.proposal, step.gen_fed, row_spreader(step.rows, self.B),
                editing_step,
            )  # fmt: skip
            written = step.unmask | revised
        if step.rows is None:
            torch.where(written, step.proposal, self.gen, out=self.gen)
            self.forward_positions += step.fed * step.live_count
        else:
            self.gen.index_copy_(0, step.rows, torch.where(written, step.proposal, step.gen_fed))
            self.forward_positions.index_add_(0, step.rows, step.fed)

    def _remask(self, *, block: _Block, step: _Step) -> None:
        """Set the strategy's re-masks back to `[MASK]`, capped so that the block still finishes in time."""
        if self.remasking is None:
            return
        remask_action = torch.zeros_like(step.unmask) if step.remask is None else step.remask & step.state.revisable
        allowed = None
        if self.caps_remasks:  # leave no more masks than the block's remaining steps fill at its pace
            left_after = step.pick(step.remaining) - step.unmask.sum(-1)
            allowed = step.pick(block.pace) * (self.budget - block.step - 1) - left_after
        step.remask_action = remask_action
        step.remasked = Remasking.kept(remask_action & ~step.unmask, step.token_confidence, allowed)
        self.gen.masked_fill_(row_spreader(step.rows, self.B)(step.remasked), self.mask_id)

    def _count(self, step: _Step) -> None:
        """Count the forward pass, fill after a finished row's EOS, and date the positions decided."""
        if self.record:
            step.time_before = self.nfe.to(torch.float32) / self.config.gen_length
        self.nfe = self.nfe + step.live_count  # a new tensor: the state handed to the strategy keeps its own
        if self.config.stop_at_eos:
            fill_after_eos(self.gen, self.mask_id, self.eos_tensor, self.fill_id)
        if self.remasking is not None:  # every position that got a token this step (strategy, fallback or EOS fill)
            self.remasking.decided(step.masked & (self.gen != self.mask_id), self.nfe - step.live_count)

    def _record(self, *, block: _Block, step: _Step) -> None:
        """Append the step to the trajectory (`output_trajectory`), over the whole batch."""
        if not self.record:
            return
        traj, spread = self.trajectory, row_spreader(step.rows, self.B)
        traj["confidence"].append(spread(step.confidence.float()))
        traj["masked"].append(step.masked)
        traj["eligible"].append(step.eligible)
        traj["time"].append(step.time_before)
        traj["action"].append(spread(step.action))
        traj["unmasked"].append(spread(step.unmask))
        traj["live"].append(step.live_count > 0)
        traj["block"].append(torch.tensor(block.index, device=self.device))
        if self.padding_mask is not None:
            traj["padding_mask"].append(self.padding_mask)
        if self.editing is not None:
            traj["revisable"].append(step.revisable)
            traj["revised"].append(step.revised)
        if self.remasking is not None:
            traj["revisable"].append(step.revisable)
            traj["remask_action"].append(spread(step.remask_action))
            traj["remasked"].append(spread(step.remasked))
            traj["token_confidence"].append(spread(step.token_confidence))
            traj["decided_time"].append(spread(step.decided_time))
        if step.verification is not None:
            traj["verification_confidence"].append(spread(step.verification))
        if step.log_prob is not None:
            traj["log_prob"].append(spread(step.log_prob.float()))
        if step.hidden is not None:
            traj["hidden_states"].append(spread(step.hidden))

    def _report(self, *, block: _Block, step: _Step) -> None:
        """The canvas after the step to the history, the streamer and `callback_on_step_end` (which may stop rows)."""
        if self.history is not None:
            self.history.append(self.x[:, : self.out_length].clone())
        if self.streamer is not None:
            self.streamer.put(self.gen[:, : self.config.gen_length].clone())
        if self.callback is None:
            return
        still_masked = self.gen == self.mask_id
        info = DiffusionStep(
            step=self.step,
            block=block.index,
            block_step=block.step,
            sequences=self.x[:, : self.out_length].clone(),
            unmasked=(step.masked & ~still_masked)[:, : self.config.gen_length],
            nfe=self.nfe.clone(),
            live=step.live_count > 0,
            prompt_length=self.P,
            mask_token_id=self.mask_id,
            state=step.state,
        )
        stop = rows_to_stop(self.callback(info), self.B, self.device)
        check_untouched(step.guarded, step.versions, "callback_on_step_end")
        if stop is not None:  # only rows with work left count as stopped
            self.stopped |= stop & still_masked.any(-1)


def _choose_tokens_at(
    gen_logits: torch.Tensor, gen: torch.Tensor, where: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy proposal and confidence at the positions `where` is True; elsewhere the canvas token and 0."""
    rows, cols = where.nonzero(as_tuple=True)
    chosen, chosen_confidence = choose_tokens(gen_logits[rows, cols])
    proposal = gen.index_put((rows, cols), chosen)  # out of place: a copy of the canvas
    confidence = torch.zeros(gen.shape, dtype=chosen_confidence.dtype, device=gen.device)
    return proposal, confidence.index_put_((rows, cols), chosen_confidence)
