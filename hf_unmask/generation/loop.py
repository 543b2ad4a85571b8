"""The diffusion generation loop shared by every model family and every strategy."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any, Optional, Union

import torch
from transformers import GenerationConfig

from ..models.adapters import DiffusionAdapter, get_adapter, unwrap_model
from ..strategies.base import StrategyOutput, as_strategy
from .config import DIFFUSION_DEFAULTS, DiffusionGenerationConfig
from .outputs import DiffusionGenerateOutput, DiffusionTrajectory
from .state import DenoisingState
from .token_choice import choose_tokens

# Below this many logits per step ([B, L, V] elements) the full token choice costs no more than gathering the
# eligible positions and scattering the results back (a handful of extra small ops). Measured on CPU with
# benchmarks/generation_overhead.py: at 16 x 64 x 95 gathering saved ~0.05 ms per step in semi-AR and lost as much
# in full diffusion; at 16 x 64 x 1000 and above it clearly wins.
ELIGIBLE_TOKEN_CHOICE_MIN_LOGITS = 1 << 17

# transformers arguments that make no sense for diffusion; passing one is an error rather than silently ignored.
_AUTOREGRESSIVE_ONLY = ("max_length", "min_length", "min_new_tokens", "num_beams", "num_return_sequences", "use_cache")


@functools.cache
def _plain_generation_defaults() -> dict[str, Any]:
    """The attributes of a default `transformers.GenerationConfig` (built once: it costs ~60 us, as much as a few
    steps of the loop on a small model)."""
    return dict(vars(GenerationConfig()))


def _from_plain_generation_config(generation_config: GenerationConfig) -> DiffusionGenerationConfig:
    """A `DiffusionGenerationConfig` from a plain one, e.g. a checkpoint's generation_config.json as transformers
    loads it. A file saved from a `DiffusionGenerationConfig` holds every diffusion field and is taken whole;
    any other may carry another project's diffusion keys with other meanings (Dream's `steps`, `alg`, `eps`...),
    so only transformers' standard fields and the mask id are kept."""
    defaults = _plain_generation_defaults()
    saved_by_us = all(hasattr(generation_config, name) for name in DIFFUSION_DEFAULTS)
    values = {}
    for name, value in vars(generation_config).items():
        if name in DIFFUSION_DEFAULTS:
            if saved_by_us or (name == "mask_token_id" and value is not None):
                values[name] = value
        elif name in defaults and name != "transformers_version" and value != defaults[name]:
            values[name] = copy.deepcopy(value)
    if generation_config.max_new_tokens is None:
        values.pop("max_new_tokens", None)
    return DiffusionGenerationConfig(**values)


def resolve_generation_config(
    model: Any, generation_config: Optional[GenerationConfig], kwargs: dict[str, Any]
) -> DiffusionGenerationConfig:
    """Copy the given (or the model's) generation config as a `DiffusionGenerationConfig`, then apply kwargs."""
    for name in _AUTOREGRESSIVE_ONLY:
        if kwargs.get(name) is not None:
            raise ValueError(
                f"`{name}` is an autoregressive generation argument that diffusion generation does not use. "
                "Use max_new_tokens (L), block_length, steps or max_steps instead."
            )
        kwargs.pop(name, None)
    if generation_config is None:
        generation_config = getattr(unwrap_model(model), "generation_config", None)
    if generation_config is None:
        config = DiffusionGenerationConfig()
    elif isinstance(generation_config, DiffusionGenerationConfig):
        config = copy.deepcopy(generation_config)
    elif isinstance(generation_config, GenerationConfig):
        config = _from_plain_generation_config(generation_config)
    else:
        raise TypeError(f"generation_config must be a GenerationConfig, got {type(generation_config).__name__}.")
    if kwargs.get("do_sample") is False and kwargs.get("temperature") not in (None, 0, 0.0):
        raise ValueError(
            f"Conflicting arguments: do_sample=False with temperature={kwargs['temperature']}. Drop one: a positive "
            "temperature samples tokens, do_sample=False / temperature=0 is greedy."
        )
    unused = config.update(**kwargs)
    if unused:
        raise TypeError(
            f"generate() got unexpected arguments {sorted(unused)}. Valid ones are the fields of "
            "DiffusionGenerationConfig (max_new_tokens, block_length, steps, max_steps, temperature, top_k, top_p, "
            "mask_token_id, stop_at_eos, progress_fallback, output_trajectory, output_history, "
            "return_dict_in_generate, ...) plus strategy, streamer, logits_processor, generator and seed."
        )
    config.validate_diffusion()
    if (config.output_trajectory or config.output_history) and not config.return_dict_in_generate:
        raise ValueError(
            "output_trajectory/output_history need return_dict_in_generate=True (a bare tensor cannot carry them). "
            "Pass return_dict_in_generate=True."
        )
    return config


def _check_inputs(input_ids: Any, attention_mask: Optional[torch.Tensor]) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype not in (torch.long, torch.int, torch.int32):
        raise TypeError(
            f"input_ids must be an integer torch.Tensor of shape [batch, prompt_length], got {type(input_ids).__name__}"
            f"{'' if not isinstance(input_ids, torch.Tensor) else ' of dtype ' + str(input_ids.dtype)}. "
            "Use tokenizer(..., return_tensors='pt')."
        )
    if input_ids.dim() != 2:
        raise ValueError(
            f"input_ids must have shape [batch, prompt_length], got {tuple(input_ids.shape)}. "
            "Add a batch axis with input_ids.unsqueeze(0)."
        )
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(
            f"Empty prompt (input_ids of shape {tuple(input_ids.shape)}). Diffusion generation conditions on a prompt: "
            "give at least one token per row (e.g. the BOS token or a chat template)."
        )
    if attention_mask is None:
        return
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
        shape = (
            tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
        )
        raise ValueError(
            f"attention_mask must be a tensor of the same shape as input_ids {tuple(input_ids.shape)}, got {shape}. "
            "Pass the attention_mask returned by the tokenizer with the same input_ids."
        )
    am = attention_mask.bool()
    if not am.any(dim=-1).all():
        raise ValueError(
            "A row of attention_mask is all zeros: that row has an empty prompt. Remove it from the batch."
        )
    # left padding: once a row's mask turns on it stays on
    if (am[:, :-1] & ~am[:, 1:]).any():
        raise ValueError(
            "attention_mask has padding after real tokens (right padding). Diffusion generation appends the canvas "
            "after the prompt, so pad on the left: tokenizer.padding_side = 'left'."
        )


def _normalise_selection(out: Any, batch: int, length: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    log_prob = None
    if isinstance(out, StrategyOutput):
        out, log_prob = out.selection, out.log_prob
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
    return out, log_prob


def _pace_can_bind(budget: int, block_length: int, fallback: bool) -> bool:
    """Whether the pace rule (finish the block within `budget` steps) can ever ask a row for more than the
    fallback's one position per step. Not with a budget of BL steps and the fallback on: a block holds at most BL
    masks and each step unmasks at least one, so the rule's count never exceeds one (the loop then skips it)."""
    return budget < block_length or not fallback


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
    **kwargs: Any,
) -> Union[torch.LongTensor, DiffusionGenerateOutput]:
    """Generate with a masked diffusion LM: start from `[prompt | L x MASK]` and let `strategy` choose which
    masked positions to fill at every step. See `DiffusionGenerationConfig` for the options.

    Returns the sequences `[B, P + L]`, or a `DiffusionGenerateOutput` with `return_dict_in_generate=True`.
    """
    if inputs is not None and input_ids is not None:
        raise ValueError("Pass the prompt once: either `inputs` or `input_ids`, not both.")
    input_ids = inputs if input_ids is None else input_ids
    if generator is not None and seed is not None:
        raise ValueError("Pass either `generator` or `seed`, not both (seed builds a generator for you).")
    _check_inputs(input_ids, attention_mask)
    config = resolve_generation_config(model, generation_config, dict(kwargs))
    strategy = as_strategy(strategy)
    adapter = get_adapter(model, adapter)

    mask_id = config.mask_token_id if config.mask_token_id is not None else adapter.mask_token_id()
    if mask_id is None:
        raise ValueError(
            f"No mask token id is known for {type(unwrap_model(model)).__name__}. Pass mask_token_id=..., set "
            "model.generation_config.mask_token_id, or load the model with hf_unmask.AutoDiffusionLM / "
            "enable_diffusion_generate(model, tokenizer=...) so it is read from the tokenizer."
        )
    eos_ids = (
        [
            int(e)
            for e in (config.eos_token_id if isinstance(config.eos_token_id, (list, tuple)) else [config.eos_token_id])
        ]
        if config.eos_token_id is not None
        else adapter.eos_token_ids()
    )
    if config.stop_at_eos and not eos_ids:
        raise ValueError(
            "stop_at_eos=True needs an EOS token id: pass eos_token_id=... or set it in the model config."
        )
    fill_id = config.pad_token_id if config.pad_token_id is not None else (eos_ids[0] if eos_ids else None)

    device = input_ids.device
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(int(seed))
    B, P = input_ids.shape
    L, BL, nb = config.gen_length, config.effective_block_length, config.num_blocks
    budget = config.block_step_budget()

    x = torch.cat([input_ids.long(), torch.full((B, L), mask_id, dtype=torch.long, device=device)], dim=1)
    attn = None
    if attention_mask is not None and not bool(attention_mask.bool().all()):
        attn = torch.cat([attention_mask.long(), torch.ones(B, L, dtype=torch.long, device=device)], dim=1)
    gen = x[:, P:]  # a view: writing into it writes the canvas
    # The mask and positions (Dream's 4-D mask, RoBERTa's positions...) stay the same at every step and the canvas
    # is written in place, so one set of model inputs serves the whole call, unless the adapter copies input_ids.
    model_inputs = adapter.model_inputs(x, attn)
    reuse_model_inputs = model_inputs.get("input_ids") is x
    nfe = torch.zeros(B, dtype=torch.long, device=device)
    positions = torch.arange(L, device=device)
    eos_tensor = torch.tensor(eos_ids, dtype=torch.long, device=device) if config.stop_at_eos else None
    wants_hidden = bool(getattr(strategy, "requires_hidden_states", False))
    record = config.output_trajectory
    temperature = config.temperature if config.do_sample else None
    greedy = temperature is None or temperature <= 0
    # Token choice at eligible positions only, for strategies that read nothing else (most positions of a
    # semi-AR canvas are outside the current block, and decided ones need no new token). Not when sampling (the
    # Gumbel noise drawn for all L positions keeps a seed's tokens the same whatever the strategy) nor when
    # recording (a policy trained on the trajectory reads the confidence of every position).
    eligible_token_choice = greedy and not record and bool(getattr(strategy, "reads_only_eligible", False))
    traj: dict[str, list[torch.Tensor]] = {k: [] for k in DiffusionTrajectory.__dataclass_fields__}
    history = [x.clone()] if config.output_history else None

    block_of_position = positions // BL if nb > 1 else None
    fallback = config.progress_fallback
    pace_can_bind = _pace_can_bind(budget, BL, fallback)
    top_k, top_p = config.top_k, config.top_p

    step = 0
    for block in range(nb):
        start, end = block * BL, (block + 1) * BL
        in_block = None if block_of_position is None else block_of_position == block
        block_mask_count = (gen[:, start:end] == mask_id).sum(-1)
        if pace_can_bind:  # positions per step that finish the block in time
            pace = torch.div(block_mask_count + (budget - 1), budget, rounding_mode="floor")
        block_step = 0
        while True:
            masked = gen == mask_id
            eligible = masked if in_block is None else masked & in_block
            remaining = eligible.sum(-1)
            if not bool(remaining.any()):
                break
            live_count = remaining.clamp_max(1)  # 1 for a live row, else 0
            if block_step >= budget:  # cannot happen: the forced completion below empties the block in time
                raise RuntimeError("internal error: block step budget exceeded")
            if not reuse_model_inputs:
                model_inputs = adapter.model_inputs(x, attn)
            logits, hidden = adapter.forward_inputs(model_inputs, output_hidden_states=wants_hidden)
            gen_logits = logits.narrow(1, P, L)
            if logits_processor is not None:
                gen_logits = logits_processor(x, gen_logits)
            # [MASK] is never a valid answer: a position that "decided" it would stay masked forever. (In place:
            # the logits are this call's own fresh tensor, and a copy of [B, L, V] per step is measurable.)
            gen_logits.select(-1, mask_id).fill_(float("-inf"))
            if eligible_token_choice and gen_logits.numel() >= ELIGIBLE_TOKEN_CHOICE_MIN_LOGITS:
                proposal, confidence = _choose_tokens_at(gen_logits, gen, eligible)
            else:
                proposal, confidence = choose_tokens(gen_logits, temperature, generator, top_k, top_p)
            state = DenoisingState(
                confidence=confidence,
                proposal=proposal,
                masked=masked,
                eligible=eligible,
                nfe=nfe,
                step=step,
                block=block,
                block_start=start,
                block_end=end,
                block_step=block_step,
                block_mask_count=block_mask_count,
                config=config,
                generator=generator,
                hidden_states=None if hidden is None else hidden[:, P:],
                _logits=gen_logits,
            )
            selection, log_prob = _normalise_selection(strategy(state), B, L)
            action = selection & eligible
            # Keep every row on pace to finish the block within its step budget, and (unless disabled) make a
            # live row unmask at least one position per step.
            # (need never exceeds `remaining`: both terms of the maximum are at most `remaining`)
            if pace_can_bind:
                need = torch.add(remaining, pace, alpha=-(budget - block_step - 1))
                need = torch.maximum(need, live_count) if fallback else need.clamp_min(0)
            else:
                need = live_count
            unmask = _top_up(action, eligible, confidence, need)
            torch.where(unmask, proposal, gen, out=gen)
            nfe = nfe + live_count  # a new tensor: the state handed to the strategy keeps its own
            if config.stop_at_eos:
                _fill_after_eos(gen, mask_id, eos_tensor, fill_id)
            if record:
                traj["confidence"].append(confidence.float())
                traj["masked"].append(masked)
                traj["eligible"].append(eligible)
                traj["time"].append(state.time)
                traj["action"].append(action)
                traj["unmasked"].append(unmask)
                traj["live"].append(remaining > 0)
                traj["block"].append(torch.tensor(block, device=device))
                if log_prob is not None:
                    traj["log_prob"].append(log_prob.float())
                if hidden is not None:
                    traj["hidden_states"].append(hidden[:, P:])
            if history is not None:
                history.append(x.clone())
            if streamer is not None:
                streamer.put(gen.clone())
            block_step += 1
            step += 1
    if streamer is not None:
        streamer.end()
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


def _fill_after_eos(gen: torch.Tensor, mask_id: int, eos: torch.Tensor, fill_id: int) -> None:
    """Rows whose first decided EOS has only unmasked tokens before it: fill everything after it with `fill_id`."""
    masked = gen == mask_id
    is_eos = torch.isin(gen, eos) & ~masked
    has_eos = is_eos.any(-1)
    if not bool(has_eos.any()):
        return
    L = gen.shape[-1]
    positions = torch.arange(L, device=gen.device).unsqueeze(0)
    first = torch.where(is_eos, positions, torch.full_like(positions, L)).min(-1).values
    masked_before = (masked & (positions < first.unsqueeze(-1))).any(-1)
    done = has_eos & ~masked_before
    fill = done.unsqueeze(-1) & (positions > first.unsqueeze(-1))
    gen[fill] = fill_id
