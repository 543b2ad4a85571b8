"""The diffusion generation loop shared by every model family and every strategy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional, Union

import torch
from transformers import GenerationConfig

from .adapter import DiffusionAdapter, get_adapter, unwrap_model
from .block_diffusion import apply_block_defaults, stop_rows_with_eos
from .blocks import BlockLayout
from .canvas_forward import CanvasForward
from .config import DiffusionGenerationConfig, resolve_generation_config
from .eos import eos_id_list, fill_after_eos
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
from .strategy import as_strategy
from .streamers import prepare_streamer
from .token_choice import choose_tokens
from .token_editing import TokenEditing
from .validation import (
    as_token_id,
    check_cache_support,
    check_callback,
    check_lengths,
    check_prompt,
    check_token_ids,
    check_verification_support,
    token_type_ids_to_pass,
    vocabulary_size,
)

__all__ = ["ELIGIBLE_TOKEN_CHOICE_MIN_LOGITS", "diffusion_generate", "resolve_generation_config"]

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


@torch.no_grad()
def diffusion_generate(
    model: Any,
    input_ids: Optional[torch.Tensor] = None,
    attention_mask: Optional[torch.Tensor] = None,
    strategy: Any = None,
    generation_config: Optional[GenerationConfig] = None,
    logits_processor: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    streamer: Any = None,
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
    adapter: Optional[Union[type[DiffusionAdapter], DiffusionAdapter]] = None,
    inputs: Optional[torch.Tensor] = None,
    token_type_ids: Optional[torch.Tensor] = None,
    callback_on_step_end: Optional[Callable[[DiffusionStep], Any]] = None,
    tokenizer: Any = None,
    allow_mask_in_prompt: bool = False,
    **kwargs: Any,
) -> Union[torch.LongTensor, DiffusionGenerateOutput]:
    """Generate with a masked diffusion LM: start from `[prompt | L x MASK]` and let `strategy` choose which
    masked positions to fill at every step. See `DiffusionGenerationConfig` for the options.

    Args:
        input_ids / inputs: `[B, P]` prompt ids, left-padded; `attention_mask` `[B, P]` of 0/1.
        token_type_ids: a tokenizer's segment ids; all zeros (one text per row) is ignored, other values reach
            models with segment embeddings, generated positions taking the last prompt position's segment.
        callback_on_step_end: called after every step with a `DiffusionStep`; return True (or a `[B]` bool tensor)
            to stop (those) rows. Stopped rows keep the mask id where nothing was decided.
        tokenizer: only used for the mask id when neither the config nor the model family names one.
        allow_mask_in_prompt: accept the mask id inside the prompt (it is never filled: only the L generated
            positions are); refused by default because a literal "[MASK]" in a prompt is usually a mistake.
        streamer, logits_processor, generator / seed, strategy: see the README; **kwargs override the config.

    Every argument is checked before the first forward pass. Returns the sequences `[B, P + L]`, or a
    `DiffusionGenerateOutput` with `return_dict_in_generate=True`.
    """
    if inputs is not None and input_ids is not None:
        raise ValueError("Pass the prompt once: either `inputs` or `input_ids`, not both.")
    input_ids = inputs if input_ids is None else input_ids
    if generator is not None and seed is not None:
        raise ValueError("Pass either `generator` or `seed`, not both (seed builds a generator for you).")
    check_prompt(input_ids, attention_mask)
    pad_given = kwargs.get("pad_token_id") is not None
    config = resolve_generation_config(model, generation_config, dict(kwargs))
    strategy = as_strategy(strategy)
    adapter = get_adapter(model, adapter)
    vocab = vocabulary_size(model)
    if adapter.block_causal:
        apply_block_defaults(config, adapter)

    mask_id = config.mask_token_id if config.mask_token_id is not None else adapter.mask_token_id()
    if mask_id is None and tokenizer is not None:
        mask_id = getattr(tokenizer, "mask_token_id", None)
    if mask_id is None:
        raise ValueError(
            f"No mask token id is known for {type(unwrap_model(model)).__name__}. Pass mask_token_id=..., set "
            "model.generation_config.mask_token_id, or load the model with hf_unmask.AutoDiffusionLM / "
            "enable_diffusion_generate(model, tokenizer=...) so it is read from the tokenizer."
        )
    mask_id = as_token_id("mask_token_id", mask_id, vocab)
    eos = config.eos_token_id if config.eos_token_id is not None else adapter.eos_token_ids()
    eos_ids = [as_token_id("eos_token_id", e, vocab) for e in eos_id_list(eos)]
    if config.stop_at_eos and not eos_ids:
        raise ValueError(
            "stop_at_eos=True needs an EOS token id: pass eos_token_id=... or set it in the model config."
        )
    # The pad id only fills the tail under stop_at_eos: a model config's unused pad id (e.g. -1) is not an error.
    pad_id = (
        as_token_id("pad_token_id", config.pad_token_id, vocab)
        if config.pad_token_id is not None and (pad_given or config.stop_at_eos)
        else None
    )
    fill_id = (pad_id if pad_id is not None else eos_ids[0]) if config.stop_at_eos else None
    check_token_ids(input_ids, attention_mask, vocab, mask_id, eos_ids, fill_id, allow_mask_in_prompt)
    token_types = token_type_ids_to_pass(token_type_ids, input_ids, model)
    L = config.gen_length
    check_lengths(model, input_ids, attention_mask, L, vocab)
    check_callback(callback_on_step_end)
    check_verification_support(adapter, strategy, config.use_cache)
    if config.use_cache:
        check_cache_support(adapter, strategy, token_types)
    streamer = prepare_streamer(streamer, input_ids, eos_ids)

    device = input_ids.device
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(int(seed))
    B, P = input_ids.shape
    if adapter.block_causal:
        prompt_lengths = attention_mask.long().sum(-1) if attention_mask is not None else torch.full((B,), P)
        layout = BlockLayout.aligned(prompt_lengths.to(device), L, config.effective_block_length)
    else:
        layout = BlockLayout.relative(L, config.effective_block_length, device)
    remasks = bool(getattr(strategy, "remasks_decided_tokens", False))
    budget = layout.step_budget(config.block_step_budget(remasks), config.max_steps)
    Lc = layout.canvas_length  # L, or up to the end of the last block for a block-diffusion model
    # Normal (not inference) tensors even under the caller's torch.inference_mode: the read-only check of the state
    # handed to strategies relies on version counters, which inference tensors lack. (inference_mode(False) turns
    # grad mode back on, hence the no_grad inside it.)
    with torch.inference_mode(False), torch.no_grad():
        x = torch.cat([input_ids.long(), torch.full((B, Lc), mask_id, dtype=torch.long, device=device)], dim=1)
        attn = None
        if attention_mask is not None and not bool(attention_mask.bool().all()):
            attn = torch.cat([attention_mask.long(), torch.ones(B, Lc, dtype=torch.long, device=device)], dim=1)
        if token_types is not None:
            token_types = torch.cat([token_types, token_types[:, -1:].expand(B, Lc)], dim=1).long()
        return _denoise(
            model, adapter, strategy, config, x, attn, token_types, P, mask_id, eos_ids, fill_id, logits_processor,
            streamer, generator, callback_on_step_end, budget, layout,
        )  # fmt: skip


def _denoise(
    model: Any,
    adapter: DiffusionAdapter,
    strategy: Any,
    config: DiffusionGenerationConfig,
    x: torch.Tensor,
    attn: Optional[torch.Tensor],
    token_types: Optional[torch.Tensor],
    P: int,
    mask_id: int,
    eos_ids: list[int],
    fill_id: Optional[int],
    logits_processor: Any,
    streamer: Any,
    generator: Optional[torch.Generator],
    callback: Any,
    budget: int,
    layout: BlockLayout,
) -> Union[torch.LongTensor, DiffusionGenerateOutput]:
    """The denoising loop over blocks and steps, on the canvas `x` = `[prompt | L x MASK]` (written in place)."""
    B, device = x.shape[0], x.device
    L, BL, nb = layout.canvas_length, layout.block_length, layout.num_blocks
    out_length = P + config.gen_length  # block-diffusion canvases run past L to the end of the last block
    gen = x[:, P:]  # a view: writing into it writes the canvas
    block_causal = adapter.block_causal

    def build_model_inputs(rows: Optional[torch.Tensor]) -> dict[str, Any]:
        """The forward's inputs over every row (`rows` None) or over the rows `rows` only."""
        if rows is None:
            inputs = adapter.model_inputs(x, attn)
            if token_types is not None:
                inputs["token_type_ids"] = token_types
        else:
            inputs = adapter.model_inputs(
                x.index_select(0, rows), None if attn is None else attn.index_select(0, rows)
            )
            if token_types is not None:
                inputs["token_type_ids"] = token_types.index_select(0, rows)
        if block_causal:
            inputs["block_length"] = BL
        return inputs

    wants_hidden = bool(getattr(strategy, "requires_hidden_states", False))
    real_lengths = attn.sum(-1) if attn is not None else torch.full((B,), x.shape[1], device=device)
    # verification (see shadow_block.py): every forward also runs a shadow block of the current block's positions
    shadow = ShadowBlock(adapter, P, BL, mask_id) if getattr(strategy, "requires_verification", False) else None
    forward = CanvasForward(
        adapter,
        x,
        build_model_inputs,
        P,
        L,
        BL,
        real_lengths,
        wants_hidden,
        config.cache_mode if config.use_cache else None,
        block_causal=block_causal,
        shadow=shadow,
    )
    nfe = torch.zeros(B, dtype=torch.long, device=device)
    forward_positions = torch.zeros(B, dtype=torch.long, device=device)
    eos_tensor = torch.tensor(eos_ids, dtype=torch.long, device=device) if config.stop_at_eos else None
    record = config.output_trajectory
    temperature = config.temperature if config.do_sample else None
    greedy = temperature is None or temperature <= 0
    # Token choice at eligible positions only, for strategies that read nothing else (most positions of a
    # semi-AR canvas are outside the current block, and decided ones need no new token). Not when sampling (the
    # Gumbel noise drawn for all L positions keeps a seed's tokens the same whatever the strategy) nor when
    # recording (a policy trained on the trajectory reads the confidence of every position).
    eligible_token_choice = greedy and not record and bool(getattr(strategy, "reads_only_eligible", False))
    traj: dict[str, list[torch.Tensor]] = {k: [] for k in DiffusionTrajectory.__dataclass_fields__}
    history = [x[:, :out_length].clone()] if config.output_history else None
    stopped = torch.zeros(B, dtype=torch.bool, device=device) if callback is not None else None

    fallback = config.progress_fallback
    drop_finished = config.drop_finished_rows
    finish_blocks = config.finish_blocks
    pace_can_bind = _pace_can_bind(budget, BL, fallback, finish_blocks)
    top_k, top_p = config.top_k, config.top_p
    # token editing (see token_editing.py): its steps after a block is full count against max_steps when it is set
    editing = TokenEditing.for_strategy(strategy)
    revises = editing is not None
    step_limit = budget + (editing.bound if revises and config.max_steps is None else 0)
    stops_at_eos = bool(getattr(strategy, "stops_after_block_with_eos", False))
    # re-masking (see remasking.py): re-masks are capped so that the block still finishes within its budget
    remasking = Remasking.for_strategy(strategy, B, L, device)
    remasks = remasking is not None
    caps_remasks = remasks and finish_blocks

    padding_mask = layout.padding_mask
    step = 0
    for block in range(nb):
        start, end = layout.bounds(block)
        in_block, window_start = layout.in_block(block), layout.window_start(block)
        if in_block is None:
            block_mask_count = (gen[:, start:end] == mask_id).sum(-1)
        else:
            block_mask_count = ((gen == mask_id) & in_block).sum(-1)
        if pace_can_bind or caps_remasks:  # positions per step that finish the block in time
            pace = torch.div(block_mask_count + (budget - 1), budget, rounding_mode="floor")
        if revises:
            editing.start_block(B, device)
        block_step = 0
        while True:
            masked = gen == mask_id
            eligible = masked if in_block is None else masked & in_block
            if stopped is not None:
                eligible = eligible & ~stopped.unsqueeze(-1)
            remaining = eligible.sum(-1)
            live_count = remaining.clamp_max(1)  # 1 for a live row, else 0
            editing_rows = None
            if revises:  # rows whose block is full go on while they revise, within the bound
                editing_rows = editing.rows_editing(remaining, block_mask_count, stopped)
                live_count = live_count | editing_rows.long()
            if block_step >= budget:  # the block's budget is spent: what is still masked stays [MASK]
                if finish_blocks and bool((remaining > 0).any()):  # cannot happen: the pace rule empties the block
                    raise RuntimeError("internal error: block step budget exceeded")
                if editing_rows is None or block_step >= step_limit:
                    break
                # past the budget only the editing steps of full blocks go on
                live_count, eligible = editing_rows.long(), torch.zeros_like(eligible)
                remaining = torch.zeros_like(remaining)
            revisable = None
            if revises:
                revisable = editing.revisable(masked, in_block, live_count.bool())
            elif remasks:
                revisable = Remasking.revisable(masked, in_block, live_count.bool())
            live_rows = int(live_count.sum())  # one device read: is the block done, and does every row go on?
            if live_rows == 0:
                break
            # Rows with nothing left to decide in this block are not fed: the step runs over the live rows only
            # (`rows`, their indices) and its results are written back into the whole batch.
            rows = None
            if drop_finished and live_rows < B:
                rows = live_count.nonzero().squeeze(-1)
            pick = row_picker(rows)
            gen_logits, hidden, fed = forward(start, end, block_step, rows, window_start, in_block)
            if mask_id >= gen_logits.shape[-1]:
                raise ValueError(
                    f"mask_token_id={mask_id} is outside the model's {gen_logits.shape[-1]} logits. Pass the id the "
                    "model's tokenizer uses (tokenizer.mask_token_id)."
                )
            gen_s, masked_s, eligible_s = pick(gen), pick(masked), pick(eligible)
            if logits_processor is not None:
                shape = tuple(gen_logits.shape)
                # with a cache the logits tensor lives for the whole block: a processor gets its own copy
                gen_logits = logits_processor(pick(x), gen_logits.clone() if forward.keeps_logits else gen_logits)
                check_processed_scores(gen_logits, shape)
            # [MASK] is never a valid answer: a position that "decided" it would stay masked forever. (In place:
            # the logits are this call's own fresh tensor, and a copy of [B, L, V] per step is measurable.)
            gen_logits.select(-1, mask_id).fill_(float("-inf"))
            if eligible_token_choice and gen_logits.numel() >= ELIGIBLE_TOKEN_CHOICE_MIN_LOGITS:
                proposal, confidence = _choose_tokens_at(gen_logits, gen_s, eligible_s)
            else:
                proposal, confidence = choose_tokens(gen_logits, temperature, generator, top_k, top_p, rows, B)
            # NaN, +inf or all -inf logits give a NaN softmax; the minimum is NaN then (one reduction per step)
            if not float(confidence.amin()) >= 0.0:
                raise_no_distribution(confidence.isnan(), step, rows)
            token_confidence = decided_time = verification = None
            if shadow is not None:  # decided positions of the current block: the shadow's view of their token
                decided = revisable if revisable is not None else Remasking.revisable(masked, in_block, live_count > 0)
                verification = shadow.confidence(gen_s, pick(decided))
            if remasks:
                token_confidence = Remasking.token_confidence(gen_logits, gen_s, masked_s)
                decided_time = pick(remasking.decided_nfe).to(torch.float32) / config.gen_length
            state = DenoisingState(
                confidence=confidence,
                proposal=proposal,
                masked=masked_s,
                eligible=eligible_s,
                nfe=pick(nfe),
                step=step,
                block=block,
                block_start=start,
                block_end=end,
                block_step=block_step,
                block_mask_count=pick(block_mask_count),
                config=config,
                generator=generator,
                hidden_states=hidden,
                rows=rows,
                full_batch_size=None if rows is None else B,
                revisable=None if revisable is None else pick(revisable),
                revision_steps=pick(editing.steps) if revises else None,
                padding_mask=None if padding_mask is None else pick(padding_mask),
                token_confidence=token_confidence,
                decided_time=decided_time,
                verification_confidence=verification,
                _logits=gen_logits,
            )
            guarded = state_tensors(state)
            versions = read_versions(guarded)
            selection, log_prob, revision, remask = normalise_selection(
                strategy(state), state.batch_size, L, revises, remasks
            )
            check_untouched(guarded, versions, "strategy")
            action = selection & eligible_s
            # Keep every row on pace to finish the block within its step budget, and (unless disabled) make a
            # live row unmask at least one position per step.
            # (need never exceeds `remaining`: both terms of the maximum are at most `remaining`)
            if pace_can_bind:
                need = torch.add(pick(remaining), pick(pace), alpha=-(budget - block_step - 1))
                need = torch.maximum(need, pick(live_count)) if fallback else need.clamp_min(0)
                unmask = _top_up(action, eligible_s, confidence, need)
            elif fallback:
                unmask = _top_up(action, eligible_s, confidence, pick(live_count))
            else:
                unmask = action
            unmask_or_revise = unmask
            if revises:
                editing_step = (remaining == 0) & live_count.bool()
                revised, full_revised = editing.revised(
                    state.revisable, revision, proposal, gen_s, row_spreader(rows, B), editing_step
                )
                unmask_or_revise = unmask | revised
            if rows is None:
                torch.where(unmask_or_revise, proposal, gen, out=gen)
                forward_positions += fed * live_count
            else:
                gen.index_copy_(0, rows, torch.where(unmask_or_revise, proposal, gen_s))
                forward_positions.index_add_(0, rows, fed)
            if remasks:
                remask_action = torch.zeros_like(unmask) if remask is None else remask & state.revisable
                allowed = None
                if caps_remasks:  # leave no more masks than the block's remaining steps fill at its pace
                    left_after = pick(remaining) - unmask.sum(-1)
                    allowed = pick(pace) * (budget - block_step - 1) - left_after
                remasked = Remasking.kept(remask_action & ~unmask, token_confidence, allowed)
                gen.masked_fill_(row_spreader(rows, B)(remasked), mask_id)
            time_before = nfe.to(torch.float32) / config.gen_length if record else None
            nfe = nfe + live_count  # a new tensor: the state handed to the strategy keeps its own
            if config.stop_at_eos:
                fill_after_eos(gen, mask_id, eos_tensor, fill_id)
            if remasks:  # every position that got a token this step (strategy, fallback or EOS fill)
                remasking.decided(masked & (gen != mask_id), nfe - live_count)
            if record:
                spread = row_spreader(rows, B)
                traj["confidence"].append(spread(confidence.float()))
                traj["masked"].append(masked)
                traj["eligible"].append(eligible)
                traj["time"].append(time_before)
                traj["action"].append(spread(action))
                traj["unmasked"].append(spread(unmask))
                traj["live"].append(live_count > 0)
                traj["block"].append(torch.tensor(block, device=device))
                if padding_mask is not None:
                    traj["padding_mask"].append(padding_mask)
                if revises:
                    traj["revisable"].append(revisable)
                    traj["revised"].append(full_revised)
                if remasks:
                    traj["revisable"].append(revisable)
                    traj["remask_action"].append(spread(remask_action))
                    traj["remasked"].append(spread(remasked))
                    traj["token_confidence"].append(spread(token_confidence))
                    traj["decided_time"].append(spread(decided_time))
                if verification is not None:
                    traj["verification_confidence"].append(spread(verification))
                if log_prob is not None:
                    traj["log_prob"].append(spread(log_prob.float()))
                if hidden is not None:
                    traj["hidden_states"].append(spread(hidden))
            if history is not None:
                history.append(x[:, :out_length].clone())
            if streamer is not None:
                streamer.put(gen[:, : config.gen_length].clone())
            if callback is not None:
                still_masked = gen == mask_id
                info = DiffusionStep(
                    step=step,
                    block=block,
                    block_step=block_step,
                    sequences=x[:, :out_length].clone(),
                    unmasked=(masked & ~still_masked)[:, : config.gen_length],
                    nfe=nfe.clone(),
                    live=live_count > 0,
                    prompt_length=P,
                    mask_token_id=mask_id,
                    state=state,
                )
                stop = rows_to_stop(callback(info), B, device)
                check_untouched(guarded, versions, "callback_on_step_end")
                if stop is not None:  # only rows with work left count as stopped
                    stopped |= stop & still_masked.any(-1)
            block_step += 1
            step += 1
        if stops_at_eos and eos_ids:
            stop_rows_with_eos(gen, mask_id, eos_ids, fill_id if fill_id is not None else eos_ids[0], end)
    if streamer is not None:
        streamer.end()
    x = x[:, :out_length]
    if not config.return_dict_in_generate:
        return x
    trajectory = None
    if record:
        trajectory = DiffusionTrajectory(**{k: torch.stack(v) for k, v in traj.items() if v})
    return DiffusionGenerateOutput(
        sequences=x,
        nfe=nfe,
        trajectory=trajectory,
        history=torch.stack(history) if history is not None else None,
        stopped=stopped,
        forward_positions=forward_positions,
    )


def _choose_tokens_at(
    gen_logits: torch.Tensor, gen: torch.Tensor, where: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy proposal and confidence at the positions `where` is True; elsewhere the canvas token and 0."""
    rows, cols = where.nonzero(as_tuple=True)
    chosen, chosen_confidence = choose_tokens(gen_logits[rows, cols])
    proposal = gen.index_put((rows, cols), chosen)  # out of place: a copy of the canvas
    confidence = torch.zeros(gen.shape, dtype=chosen_confidence.dtype, device=gen.device)
    return proposal, confidence.index_put_((rows, cols), chosen_confidence)
